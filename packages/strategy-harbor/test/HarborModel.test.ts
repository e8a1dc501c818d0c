/**
 * The model of a nested run: the configured one, except on an admin run whose candidate carries the
 * verifier's model (a transfer target's, `EvalStrategy.modelOverrideKey`); an optimizer's run never
 * chooses it.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { EvalStrategy, SampleIds, TaskStore } from "@holdout/core"
import { makeRun } from "@holdout/testkit"
import * as Effect from "effect/Effect"
import { datasetId, invocations, makeFixture, removeFixtures, stack } from "./support.js"

afterAll(() => removeFixtures())

const modelOf = (argv: ReadonlyArray<string>) => {
  const index = argv.indexOf("-m")
  return index < 0 ? undefined : argv[index + 1]
}

describe("HarborStrategy — the model of a nested run", () => {
  it.live("-m is the verifier's model on an admin run only, the configured one otherwise", () => {
    const fixture = makeFixture([{ dir: "a" }])
    const runs = [
      { runId: "plain", admin: false, metadata: {} },
      { runId: "optimizer-says", admin: false, metadata: { [EvalStrategy.modelOverrideKey]: "cheap/model" } },
      { runId: "admin-plain", admin: true, metadata: {} },
      { runId: "transfer", admin: true, metadata: { [EvalStrategy.modelOverrideKey]: "other/model" } }
    ]
    return Effect.gen(function*() {
      const strategy = yield* EvalStrategy.EvalStrategy
      const store = yield* TaskStore.TaskStore
      for (const { admin, metadata, runId } of runs) {
        const candidate = { id: "cand-1", metadata }
        yield* store.createRun(makeRun(runId, { candidate, datasetId, split: "train", sampleIds: [0], admin }))
        yield* strategy.produce({ runId, candidate, datasetId, split: "train", sampleIds: SampleIds.fromIterable([0]) })
      }
      const models = invocations(fixture).map((call) => modelOf(call.argv))
      assert.deepStrictEqual(models, ["base/model", "base/model", "base/model", "other/model"])
    }).pipe(
      Effect.provide(stack(fixture, { partition: { train: ["a"] }, config: { model: "base/model" } }))
    )
  })
})
