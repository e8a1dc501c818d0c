/**
 * Run metrics, with one error rule everywhere (a sample is an error iff `error` or `evalError` is
 * set), and the Effect metrics Holdout reports about itself.
 *
 * @since 0.1.0
 */
import * as Metric from "effect/Metric"
import * as Statistics from "./internal/statistics.js"
import type { Metrics, RunProgress, RunStatus, TaskResult } from "./Model.js"

/**
 * The error rate at or above which a run is `failed`, unless configured otherwise.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultErrorRateThreshold = 0.1

/**
 * Whether a sample counts as an error: inference or scoring failed.
 *
 * @since 0.1.0
 * @category combinators
 */
export const isError = (sample: Pick<TaskResult, "error" | "evalError">): boolean =>
  sample.error !== undefined || sample.evalError !== undefined

/**
 * The progress of a run with no sample stored.
 *
 * @since 0.1.0
 * @category constructors
 */
export const emptyProgress: RunProgress = { samples: 0, errors: 0, scored: 0, scoreSum: 0, scoreSquares: 0 }

/**
 * What one sample adds to its run's progress: whether it is an error, and its score when it is a
 * success with one (else null). Stores keep these beside each record, so that replacing a record
 * takes back exactly what it added.
 *
 * @since 0.1.0
 * @category combinators
 */
export const contribution = (
  sample: Pick<TaskResult, "error" | "evalError" | "score">
): { readonly error: boolean; readonly score: number | null } =>
  isError(sample)
    ? { error: true, score: null }
    : { error: false, score: sample.score === undefined ? null : sample.score }

/**
 * Adds a record to a progress (`sign` 1), or takes it back (-1), changing the progress in place:
 * for stores that keep a run's progress as samples land.
 *
 * @since 0.1.0
 * @category combinators
 */
export const addInPlace = (
  progress: { -readonly [K in keyof RunProgress]: RunProgress[K] },
  sample: Pick<TaskResult, "error" | "evalError" | "score">,
  sign: 1 | -1
): void => {
  progress.samples += sign
  if (isError(sample)) {
    progress.errors += sign
    return
  }
  const score = sample.score
  if (score === undefined) return
  progress.scored += sign
  progress.scoreSum += sign * score
  progress.scoreSquares += sign * score * score
}

/**
 * The progress after a record is added (`sign` 1) or taken back (`sign` -1).
 *
 * @since 0.1.0
 * @category combinators
 */
export const addToProgress = (
  progress: RunProgress,
  sample: Pick<TaskResult, "error" | "evalError" | "score">,
  sign: 1 | -1 = 1
): RunProgress => {
  const next = { ...progress }
  addInPlace(next, sample, sign)
  return next
}

/**
 * The metrics of a run from its progress; `compute` gives the same for its samples.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromProgress = (progress: RunProgress): Metrics => {
  const numSamples = progress.samples
  const numSuccesses = numSamples - progress.errors
  const mean = numSamples === 0 ? 0 : progress.scoreSum / numSamples
  const spread = Statistics.meanInterval(numSamples, progress.scoreSum, progress.scoreSquares)
  return {
    numSamples,
    numErrors: progress.errors,
    numSuccesses,
    numScored: progress.scored,
    avgScore: numSuccesses === 0 ? null : progress.scoreSum / numSuccesses,
    avgFilledScore: mean,
    errorRate: numSamples === 0 ? 1 : progress.errors / numSamples,
    standardError: spread === undefined ? null : spread.standardError,
    interval: spread === undefined ? null : spread.interval
  }
}

/**
 * The metrics of a set of samples. `avgScore` averages the successes (a success with no score
 * counts 0) and is null when there are none; `avgFilledScore` counts every error as 0; the error
 * rate of no samples is 1.
 *
 * @since 0.1.0
 * @category constructors
 */
export const compute = (samples: Iterable<Pick<TaskResult, "error" | "evalError" | "score">>): Metrics => {
  let progress = emptyProgress
  for (const sample of samples) progress = addToProgress(progress, sample)
  return fromProgress(progress)
}

/**
 * The final status of a run with these metrics: `failed` when the error rate reaches the threshold.
 *
 * @since 0.1.0
 * @category combinators
 */
export const status = (metrics: Metrics, errorRateThreshold: number = defaultErrorRateThreshold): RunStatus =>
  metrics.errorRate >= errorRateThreshold ? "failed" : "completed"

/**
 * Reservations the ledgers accepted.
 *
 * @since 0.1.0
 * @category metrics
 */
export const reservationsAccepted = Metric.counter("holdout_reservations_accepted_total", {
  description: "Reservations charged to a budget",
  incremental: true
})

/**
 * Evaluation requests that ended in an error (refused, or a failed run), by error tag.
 *
 * @since 0.1.0
 * @category metrics
 */
export const requestsRejected = Metric.counter("holdout_requests_rejected_total", {
  description: "Evaluation requests that ended in an error, by error tag",
  incremental: true
})

/**
 * Samples finished by runs, counted once per run.
 *
 * @since 0.1.0
 * @category metrics
 */
export const samplesEvaluated = Metric.counter("holdout_samples_evaluated_total", {
  description: "Samples of finished runs",
  incremental: true
})

/**
 * Runs finished, by status.
 *
 * @since 0.1.0
 * @category metrics
 */
export const runsFinished = Metric.counter("holdout_runs_finished_total", {
  description: "Runs that reached completed or failed",
  incremental: true
})
