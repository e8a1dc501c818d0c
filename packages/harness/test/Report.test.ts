import { assert, describe, it } from "@effect/vitest"
import { DatasetSource, Engine, Ledger, LocalStrategy, Stack } from "@holdout/core"
import { Report } from "@holdout/harness"
import { countingTaskStore } from "@holdout/testkit"
import * as Effect from "effect/Effect"
import { doubleTask as task, rows } from "./helpers.js"

describe("Report", () => {
  it.effect("the tables read no sample (runs carry their metrics); only the HTML page reads them", () => {
    const counting = countingTaskStore()
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
