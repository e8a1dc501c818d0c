import { assert, describe, it } from "@effect/vitest"
import { DatasetSource, EvalStrategy, SampleIds, TaskStore } from "@holdout/core"
import { strategyConformance } from "@holdout/testkit"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as FunctionPool from "../src/index.js"

const rows = Array.from({ length: 8 }, (_, index) => ({ value: index }))
const datasets = DatasetSource.layerRecords({ numbers: { train: rows } })
// Set by the suite's failNextSample hook: the next call of a worker throws, once.
let failNext = false
const even: FunctionPool.Worker = (row) => {
  if (failNext) {
    failNext = false
    throw new Error("injected failure")
  }
  return (row as { value: number }).value % 2 === 0 ? 1 : 0
}

strategyConformance("function pool", {
  make: () =>
    FunctionPool.layer([even, even, even]).pipe(Layer.provideMerge(TaskStore.layerMemory), Layer.provide(datasets)),
  datasetId: "numbers",
  split: "train",
  size: rows.length,
  failNextSample: Effect.sync(() => {
    failNext = true
  })
})

describe("function pool", () => {
  it.effect("never runs more samples at once than it has workers, and records worker failures", () => {
    let inFlight = 0
    let maxInFlight = 0
    const slow: FunctionPool.Worker = async (row) => {
      inFlight++
      maxInFlight = Math.max(maxInFlight, inFlight)
      await new Promise((resolve) => setTimeout(resolve, 2))
      inFlight--
      if ((row as { value: number }).value === 5) throw new Error("worker crashed")
      return 1
    }
    return Effect.gen(function*() {
      const strategy = yield* EvalStrategy.EvalStrategy
      const store = yield* TaskStore.TaskStore
      yield* strategy.produce({
        runId: "r",
        candidate: { id: "c" },
        datasetId: "numbers",
        split: "train",
        sampleIds: SampleIds.fromIterable([0, 1, 2, 3, 4, 5, 6, 7])
      })
      const samples = Chunk.toReadonlyArray(yield* Stream.runCollect(TaskStore.streamSamples(store, "r")))
      assert.strictEqual(samples.length, 8)
      assert.strictEqual(maxInFlight, 2)
      assert.match(samples[5]!.evalError!, /worker crashed/)
    }).pipe(
      Effect.provide(
        FunctionPool.layer([slow, slow]).pipe(Layer.provideMerge(TaskStore.layerMemory), Layer.provide(datasets))
      )
    )
  })
  it.effect("an empty pool is a ConfigError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Layer.build(FunctionPool.layer([])).pipe(
          Effect.scoped,
          Effect.provide(Layer.merge(TaskStore.layerMemory, datasets))
        )
      )
      assert.strictEqual(error._tag, "ConfigError")
    }))
})
