import { DatasetSource, LocalStrategy, Task } from "@holdout/core"
import { PgStore } from "@holdout/store-pg"
import { ledgerConformance, strategyConformance, taskStoreConformance } from "@holdout/testkit"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { freshDatabase } from "./support.js"

// Each location is a database of its own on the test server; opening it again is a reopen.
ledgerConformance("postgres", {
  makeLocation: Effect.map(freshDatabase("ledger"), (url) => (budgets) => PgStore.layer({ url, budgets })),
  persistent: true
})

taskStoreConformance("postgres", {
  makeLocation: Effect.map(freshDatabase("tasks"), (url) => () => PgStore.layer({ url, budgets: [] })),
  persistent: true
})

// The local strategy writing to the PostgreSQL task store (its progress is kept by the store).
interface Row {
  readonly question: number
  readonly answer: number
}

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

strategyConformance("LocalStrategy on postgres", {
  make: () =>
    Layer.unwrapScoped(Effect.map(freshDatabase("strategy"), (url) =>
      LocalStrategy.layer(task).pipe(
        Layer.provideMerge(PgStore.layer({ url, budgets: [] })),
        Layer.provide(DatasetSource.layerRecords({ numbers: { train: rows } }))
      ))),
  datasetId: "numbers",
  split: "train",
  size: rows.length,
  failNextSample: Effect.sync(() => {
    failNext = true
  })
})
