import * as NodeContext from "@effect/platform-node/NodeContext"
import { assert, describe, it } from "@effect/vitest"
import { DatasetSource, Engine, Ledger, LocalStrategy, type Model, Stack, TaskStore } from "@holdout/core"
import { Agent, Verifier } from "@holdout/harness"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { doubleTask as task, rows } from "./helpers.js"

/** A stack whose `ladder` split tells its means through the ladder, and whose `validation` split is exact. */
const stack = Stack.layerWith({
  engine: { releases: { ladder: { _tag: "ladder", eta: 0.05 } } },
  budgets: [
    { datasetId: "ds", split: "train", runs: 5 },
    { datasetId: "ds", split: "validation", runs: 5 },
    { datasetId: "ds", split: "ladder", runs: 5 }
  ],
  policy: { train: "viewable", validation: "non_viewable", ladder: "non_viewable", secret: "no_access" },
  ledger: Ledger.layerMemory,
  store: TaskStore.layerMemory,
  datasets: DatasetSource.layerRecords({
    ds: { train: rows(8), validation: rows(10), ladder: rows(10), secret: rows(5) }
  }),
  strategy: LocalStrategy.layer(task)
}).pipe(Layer.provideMerge(NodeContext.layer))

const layer = Verifier.layer({
  mode: "submit",
  selection: { datasetId: "ds", split: "validation" },
  targets: [{ datasetId: "ds", split: "secret", rewardKey: "accuracy" }]
}).pipe(Layer.provideMerge(stack))

const on = (split: string, id = "c1"): Model.EvalRequest => ({ datasetId: "ds", split, candidate: { id } })

describe("Agent: the optimizer's runs, as its tiers allow", () => {
  it.effect("a run whose split tells means through a release mechanism shows no figure of its scores", () =>
    Effect.gen(function*() {
      const agent = yield* Agent.make()
      const evaluated = yield* agent.evaluate(on("ladder"))
      assert.strictEqual(evaluated.experiment._tag, "non_viewable")
      // the evaluation told the ladder's mean only
      assert.isTrue("release" in evaluated.experiment.summary)
      const runId = evaluated.experiment.summary.runId
      const shown = yield* agent.show(runId)
      assert.deepStrictEqual(shown.tier, "non_viewable")
      assert.isFalse("metrics" in shown.summary)
      assert.deepInclude(shown.summary, { runId, split: "ladder", withheld: "ladder" })
      assert.isUndefined(shown.samples)
      const listed = (yield* agent.runs()).runs.find((entry) => entry.summary.runId === runId)
      assert.deepStrictEqual(listed, { tier: "non_viewable", summary: shown.summary })
      assert.notInclude(JSON.stringify(yield* agent.runs()), "avgFilledScore")
    }).pipe(Effect.provide(layer)))

  it.effect("an exact non_viewable run shows its summary as eval told it; an unfinished one shows no figure", () =>
    Effect.gen(function*() {
      const agent = yield* Agent.make()
      const evaluated = yield* agent.evaluate(on("validation"))
      const shown = yield* agent.show(evaluated.experiment.summary.runId)
      assert.deepStrictEqual<unknown>(shown, { tier: "non_viewable", summary: evaluated.experiment.summary })
      // a run still under way: its figures would be over part of a block
      const store = yield* TaskStore.TaskStore
      const done = yield* Effect.flatMap(store.getRun(evaluated.experiment.summary.runId), Effect.orDie)
      yield* store.createRun({ ...done, runId: "under-way", status: "running", createdAt: done.createdAt + 1 })
      const unfinished = yield* agent.show("under-way")
      assert.deepInclude(unfinished.summary, { runId: "under-way", status: "running", withheld: null })
      assert.isFalse("metrics" in unfinished.summary)
    }).pipe(Effect.provide(layer)))

  it.effect("the verifier's runs and runs on no_access splits are RunNotFound and never listed", () =>
    Effect.gen(function*() {
      const agent = yield* Agent.make()
      const engine = yield* Engine.Engine
      const admin = yield* engine.evaluate(on("train"), { admin: true })
      const secret = yield* engine.evaluate(on("secret"), { admin: true })
      const own = yield* agent.evaluate(on("train"))
      for (const runId of [admin.run.runId, secret.run.runId, "never-made"]) {
        const error = yield* Effect.flip(agent.show(runId))
        assert.deepStrictEqual(error._tag, "RunNotFound")
      }
      assert.deepStrictEqual(
        (yield* agent.runs()).runs.map((entry) => entry.summary.runId),
        [own.experiment.summary.runId]
      )
    }).pipe(Effect.provide(layer)))
})

describe("Agent: status", () => {
  it.effect("the same answer while nothing changed, so the sidecar encodes it once; a charge gives a new one", () =>
    Effect.gen(function*() {
      const agent = yield* Agent.make()
      const first = yield* agent.status()
      assert.deepStrictEqual(first.splits.map((entry) => [entry.split, entry.tier]), [
        ["train", "viewable"],
        ["validation", "non_viewable"],
        ["ladder", "non_viewable"]
      ])
      assert.strictEqual(yield* agent.status(), first)
      yield* agent.evaluate(on("train"))
      const charged = yield* agent.status()
      assert.notStrictEqual(charged, first)
      assert.deepStrictEqual(charged.splits[0]!.spent, { runs: 1, samples: 8 })
      assert.strictEqual(yield* agent.status(), charged)
    }).pipe(Effect.provide(layer)))
})
