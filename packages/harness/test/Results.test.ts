import * as NodeContext from "@effect/platform-node/NodeContext"
import { Engine, Stack, Task } from "@holdout/core"
import { Results } from "@holdout/harness"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const rows = Array.from({ length: 10 }, (_, index) => ({ index, secret: `label-${index}` }))
const task = Task.make<{ readonly index: number; readonly secret: string }, number, "secret">({
  name: "parity",
  labelFields: ["secret"],
  infer: (row) => row.index,
  score: (row) => (row.index % 2 === 0 ? 1 : 0)
})
const stack = Stack.layerMemory({
  datasets: { ds: { train: rows, validation: rows, test: rows } },
  budgets: [{ datasetId: "ds", split: "train", runs: 5 }, { datasetId: "ds", split: "validation", runs: 5 }],
  policy: { train: "viewable", validation: "non_viewable", test: "no_access" },
  task
})

const evaluate = (split: string, admin = false) =>
  Effect.flatMap(Engine.Engine, (engine) => engine.evaluate({ datasetId: "ds", split, candidate: { id: "c/1" } }, { admin }))

describe("Results: the optimizer's results directory, by tier", () => {
  it.effect("viewable: summary and per-sample files; non_viewable: a summary naming no sample; no_access and admin: nothing", () => {
    const dir = mkdtempSync(join(tmpdir(), "holdout-results-"))
    return Effect.gen(function*() {
      const viewable = yield* Results.write(dir, yield* evaluate("train"))
      assert.isTrue(Option.isSome(viewable))
      const train = Option.getOrThrow(viewable)
      assert.strictEqual(train, join(dir, "train__c_1__e1"))
      assert.sameMembers(readdirSync(train), ["summary.json", ...rows.map((row) => `${row.index}.json`)])
      assert.strictEqual(JSON.parse(readFileSync(join(train, "3.json"), "utf8")).score, 0)

      const hidden = Option.getOrThrow(yield* Results.write(dir, yield* evaluate("validation")))
      assert.deepStrictEqual(readdirSync(hidden), ["summary.json"])
      const text = readFileSync(join(hidden, "summary.json"), "utf8")
      const summary = JSON.parse(text)
      assert.strictEqual(summary.metrics.avgFilledScore, 0.5)
      assert.notInclude(text, "sampleId")
      assert.notInclude(text, "label-")
      assert.notInclude(text, "sampleIds")

      // the verifier's runs and no_access splits leave no trace
      assert.isTrue(Option.isNone(yield* Results.write(dir, yield* evaluate("test", true))))
      assert.isTrue(Option.isNone(yield* Results.write(dir, yield* evaluate("train", true))))
      assert.notInclude(readdirSync(dir).join(" "), "test")
    }).pipe(Effect.provide(stack), Effect.provide(NodeContext.layer), Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true }))))
  })

  it.effect("every evaluation gets a new directory, numbered past the highest one there; no partial directory stays", () => {
    const dir = mkdtempSync(join(tmpdir(), "holdout-results-"))
    mkdirSync(join(dir, "train__c_1__e7"))
    return Effect.gen(function*() {
      const experiments = yield* Effect.all([evaluate("train"), evaluate("train"), evaluate("train")])
      const written = yield* Effect.forEach(experiments, (experiment) => Results.write(dir, experiment), { concurrency: 3 })
      assert.sameMembers(written.map(Option.getOrThrow), ["e8", "e9", "e10"].map((suffix) => join(dir, `train__c_1__${suffix}`)))
      assert.isFalse(readdirSync(dir).some((entry) => entry.startsWith(".")))
      assert.isTrue(existsSync(join(dir, "train__c_1__e7")))
    }).pipe(Effect.provide(stack), Effect.provide(NodeContext.layer), Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true }))))
  })
})
