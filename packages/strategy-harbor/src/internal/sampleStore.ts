/**
 * Storing a run's records, and publishing a `SampleScored` event for each when the stack has a
 * `RunEvents` hub. Events carry the run's running counts: a first record counts as scored (and as an
 * error when it is one); an infra-retry round's record replaces an error already counted, so a
 * recovered sample counts one error less and one still failing publishes nothing.
 *
 * @internal
 */
import { type HoldoutError, Metrics, type Model, RunEvents, type TaskStore } from "@holdout/core"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"

/** The running counts of a run, for `SampleScored` events. */
export interface Counts {
  scored: number
  errors: number
}

/** Stores a run's records, keeping its running counts. */
type Put = (records: ReadonlyArray<Model.SampleRecord>, counts: Counts) => Effect.Effect<void, HoldoutError.StoreError>

/** The two ways of storing a run's records: its first records, and an infra-retry round's. */
export interface SampleStore {
  /** Stores records, publishing `SampleScored` for each. */
  readonly putAll: Put
  /** Stores the records of an infra-retry round: only a recovered sample publishes `SampleScored`. */
  readonly putRetried: Put
}

/** The sample store of a task store and, when the stack has one, an event hub. */
export const make = (
  store: TaskStore.TaskStore["Type"],
  events: Option.Option<RunEvents.RunEvents["Type"]>
): SampleStore => {
  /** Stores each record, then publishes when `count` (run only with a hub) says whether it is an error. */
  const put = (
    records: ReadonlyArray<Model.SampleRecord>,
    counts: Counts,
    count: (sample: Model.SampleRecord, counts: Counts) => Option.Option<boolean>
  ) =>
    Effect.forEach(records, (sample) =>
      Effect.zipRight(
        store.putSample(sample),
        Option.isNone(events) ? Effect.void : Effect.suspend(() =>
          Option.match(count(sample, counts), {
            onNone: () => Effect.void,
            onSome: (error) =>
              events.value.publish(
                new RunEvents.SampleScored({
                  runId: sample.runId,
                  sampleId: sample.sampleId,
                  error,
                  scored: counts.scored,
                  errors: counts.errors
                }, true)
              )
          })
        )
      ), { concurrency: 16, discard: true })

  return {
    putAll: (records, counts) =>
      put(records, counts, (sample) => {
        const error = Metrics.isError(sample)
        counts.scored++
        if (error) counts.errors++
        return Option.some(error)
      }),
    putRetried: (records, counts) =>
      put(records, counts, (sample) => {
        if (Metrics.isError(sample)) return Option.none()
        counts.errors--
        return Option.some(false)
      })
  }
}
