/**
 * Planned samples a strategy left without a record are a broken strategy contract: they are
 * recorded as errors, so the run's numbers stay honest and nothing planned silently disappears.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { StoreError } from "../HoldoutError.js"
import type { RunRecord } from "../Model.js"
import * as SampleIds from "../SampleIds.js"
import * as TaskStore from "../TaskStore.js"

/** Records an error for every planned sample of `run` without a record; reads the stored ids page by page. */
export const fill = (
  store: TaskStore.TaskStore["Type"],
  strategyName: string,
  run: RunRecord
): Effect.Effect<void, StoreError> =>
  Effect.gen(function*() {
    const largest = SampleIds.upperBound(run.sampleIds) - 1
    const present = new Uint8Array(largest + 1)
    yield* Stream.runForEach(
      TaskStore.streamSamples(store, run.runId),
      (sample) =>
        Effect.sync(() => {
          if (sample.sampleId <= largest) present[sample.sampleId] = 1
        })
    )
    const now = yield* Clock.currentTimeMillis
    let missing = 0
    for (const sampleId of run.sampleIds) {
      if (present[sampleId] === 1) continue
      missing++
      yield* store.putSample({
        runId: run.runId,
        sampleId,
        datasetId: run.datasetId,
        split: run.split,
        candidateId: run.candidate.id,
        output: null,
        error: `The "${strategyName}" strategy produced no record for this sample.`,
        metrics: {},
        attempts: 0,
        startedAt: now,
        finishedAt: now
      })
    }
    yield* Effect.logWarning(`Strategy "${strategyName}" left ${missing} planned samples without a record`)
  })
