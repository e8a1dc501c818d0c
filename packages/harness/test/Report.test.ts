import { assert, describe, it } from "@effect/vitest"
import { DatasetSource, Engine, Ledger, LocalStrategy, Stack, TaskStore } from "@holdout/core"
import { Report } from "@holdout/harness"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { doubleTask as task, rows } from "./helpers.js"

/** A memory store that counts the reads of samples. */
const countingStore = () => {
  const reads = { samples: 0 }
  const layer = Layer.sync(TaskStore.TaskStore, () => {
    const store = TaskStore.makeMemory()
    return {
      ...store,
      getSample: (runId, sampleId) =>
        Effect.zipRight(Effect.sync(() => reads.samples++), store.getSample(runId, sampleId)),
      listSamples: (runId, page) => Effect.zipRight(Effect.sync(() => reads.samples++), store.listSamples(runId, page))
    }
  })
  return { reads, layer }
}

describe("Report", () => {
  it.effect("the tables read no sample (runs carry their metrics); only the HTML page reads them", () => {
    const counting = countingStore()
    return Effect.gen(function*() {
      const engine = yield* Engine.Engine
      for (const id of ["a", "b"]) {
        yield* engine.evaluate({ datasetId: "ds", split: "train", candidate: { id } })
      }
      const before = counting.reads.samples
      const data = yield* Report.collect
      assert.deepStrictEqual(data.rows.map((row) => [row.candidate, row.runs, row.mean]), [["a", 1, 0.75], [
        "b",
        1,
        0.75
      ]])
      assert.include(Report.text(data), "a ")
      assert.strictEqual(counting.reads.samples, before, "the tables read a sample")
      const page = yield* Report.html
      assert.include(page, "Holdout report")
      assert.isAbove(counting.reads.samples, before, "the page embeds the viewable runs' samples")
    }).pipe(Effect.provide(Stack.layerWith({
      budgets: [{ datasetId: "ds", split: "train", runs: 5 }],
      policy: { train: "viewable" },
      ledger: Ledger.layerMemory,
      store: counting.layer,
      datasets: DatasetSource.layerRecords({ ds: { train: rows(8) } }),
      strategy: LocalStrategy.layer(task)
    })))
  })
})
