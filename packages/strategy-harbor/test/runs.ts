/**
 * Test support for tests that run the strategy (not for the crash test's child, which runs outside
 * vitest): a plan, producing it, and reading its records.
 */
import { assert } from "@effect/vitest"
import { EvalStrategy, type HoldoutError, type Model, SampleIds, TaskStore } from "@holdout/core"
import { makeRun } from "@holdout/testkit"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { datasetId, type Fixture, stack, type StackOptions } from "./support.js"

export const candidate = { id: "cand-1" }

/** The plan of `sampleIds` of the `train` split in run `runId`. */
export const plan = (sampleIds: ReadonlyArray<number>, runId = "run-1"): EvalStrategy.RunPlan => ({
  runId,
  candidate,
  datasetId,
  split: "train",
  sampleIds: SampleIds.fromIterable(sampleIds)
})

/** Creates the run, produces the plan, and returns the stored samples by id. */
export const produce = (
  runPlan: EvalStrategy.RunPlan
): Effect.Effect<
  ReadonlyMap<number, Model.SampleRecord>,
  HoldoutError.StrategyError | HoldoutError.StoreError,
  EvalStrategy.EvalStrategy | TaskStore.TaskStore
> =>
  Effect.gen(function*() {
    const strategy = yield* EvalStrategy.EvalStrategy
    const store = yield* TaskStore.TaskStore
    if ((yield* store.getRun(runPlan.runId))._tag === "None") {
      yield* store.createRun(
        makeRun(runPlan.runId, { candidate, datasetId, split: "train", sampleIds: runPlan.sampleIds })
      )
    }
    yield* strategy.produce(runPlan)
    const samples = yield* Stream.runCollect(TaskStore.streamSamples(store, runPlan.runId))
    return new Map(Chunk.toReadonlyArray(samples).map((sample) => [sample.sampleId, sample] as const))
  })

export const withStack = <A, E>(
  fixture: Fixture,
  options: StackOptions,
  effect: Effect.Effect<A, E, EvalStrategy.EvalStrategy | TaskStore.TaskStore>
): Effect.Effect<A, E | HoldoutError.ConfigError | HoldoutError.StoreError> =>
  effect.pipe(Effect.provide(stack(fixture, options)))

export const sampleOf = (samples: ReadonlyMap<number, Model.SampleRecord>, sampleId: number): Model.SampleRecord => {
  const sample = samples.get(sampleId)
  assert.isDefined(sample, `no record for sample ${sampleId}`)
  return sample!
}
