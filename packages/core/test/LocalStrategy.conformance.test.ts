import { strategyConformance } from "@holdout/testkit"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as DatasetSource from "../src/DatasetSource.js"
import * as LocalStrategy from "../src/LocalStrategy.js"
import * as Task from "../src/Task.js"
import * as TaskStore from "../src/TaskStore.js"

interface Row {
  readonly question: number
  readonly answer: number
}

// Set by the suite's failNextSample hook: the next inference throws, once.
let failNext = false

const task = Task.make<Row, number, "answer">({
  name: "double",
  labelFields: ["answer"],
  infer: (row) => {
    if (failNext) {
      failNext = false
      throw new Error("injected failure")
    }
    return row.question * 2
  },
  score: (row, stored) => (stored.output === row.answer ? 1 : 0)
})

const rows: ReadonlyArray<Row> = Array.from({ length: 6 }, (_, index) => ({ question: index, answer: index * 2 }))

strategyConformance("LocalStrategy", {
  make: () =>
    LocalStrategy.layer(task).pipe(
      Layer.provideMerge(TaskStore.layerMemory),
      Layer.provide(DatasetSource.layerRecords({ numbers: { train: rows } }))
    ),
  datasetId: "numbers",
  split: "train",
  size: rows.length,
  failNextSample: Effect.sync(() => {
    failNext = true
  })
})
