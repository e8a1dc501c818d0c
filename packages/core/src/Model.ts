/**
 * The data Holdout works with: budgets, reservations, candidates, requests, sample and run records,
 * metrics and experiments. Every shape is an Effect `Schema`, JSON-serialisable, camelCase.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { SampleIdsFromArray } from "./internal/sampleIdsSchema.js"
import { Released } from "./Release.js"

/**
 * How far an optimizer may see a split: full results, an aggregate summary only, or nothing.
 *
 * @since 0.1.0
 * @category models
 */
export const AccessTier = Schema.Literal("viewable", "non_viewable", "no_access")

/**
 * @since 0.1.0
 * @category models
 */
export type AccessTier = typeof AccessTier.Type

/**
 * One entry of an access policy: the tier of one split name.
 *
 * @since 0.1.0
 * @category models
 */
export const SplitTier = Schema.Struct({ split: Schema.String, tier: AccessTier })

/**
 * @since 0.1.0
 * @category models
 */
export type SplitTier = typeof SplitTier.Type

const Count = Schema.Int.pipe(Schema.greaterThanOrEqualTo(0))
const PositiveCount = Schema.Int.pipe(Schema.greaterThanOrEqualTo(1))

/**
 * Identifies one budgeted pair: a split of a dataset.
 *
 * @since 0.1.0
 * @category models
 */
export const BudgetKey = Schema.Struct({
  datasetId: Schema.String,
  split: Schema.String
})

/**
 * @since 0.1.0
 * @category models
 */
export type BudgetKey = typeof BudgetKey.Type

/**
 * The configured limits of one split: runs, samples and a per-run cap. An absent limit is unlimited;
 * at least one of `runs` and `samples` must be given. `reservedForFinalize` (opt-in) holds part of the
 * runs and samples back for the verifier: the optimizer may spend only up to `limit - reserved`, and
 * the verifier's evaluations of the split are then charged too, against the whole limit.
 *
 * @since 0.1.0
 * @category models
 */
export const SplitBudget = Schema.Struct({
  datasetId: Schema.String,
  split: Schema.String,
  runs: Schema.optional(Count),
  samples: Schema.optional(Count),
  maxSamplesPerRun: Schema.optional(PositiveCount),
  reservedForFinalize: Schema.optional(Schema.Struct({ runs: Schema.optional(Count), samples: Schema.optional(Count) }))
})

/**
 * @since 0.1.0
 * @category models
 */
export type SplitBudget = typeof SplitBudget.Type

const Limit = Schema.NullOr(Schema.Int)

/**
 * The state of one budgeted split: limits, what was spent, what remains for the optimizer (`null` =
 * unlimited), and, when the split reserves some for the verifier, what of the reserve is left.
 *
 * @since 0.1.0
 * @category models
 */
export const BudgetSnapshot = Schema.Struct({
  datasetId: Schema.String,
  split: Schema.String,
  limits: Schema.Struct({ runs: Limit, samples: Limit, maxSamplesPerRun: Limit }),
  spent: Schema.Struct({ runs: Schema.Int, samples: Schema.Int }),
  remaining: Schema.Struct({ runs: Limit, samples: Limit }),
  reserved: Schema.optional(Schema.Struct({ runs: Schema.Int, samples: Schema.Int }))
})

/**
 * @since 0.1.0
 * @category models
 */
export type BudgetSnapshot = typeof BudgetSnapshot.Type

/**
 * One charged evaluation: one run and `samples` samples of a split, paid for by `runId`.
 * `at` is the time of the charge in epoch milliseconds.
 *
 * @since 0.1.0
 * @category models
 */
export const Reservation = Schema.Struct({
  id: Schema.String,
  datasetId: Schema.String,
  split: Schema.String,
  samples: Count,
  runId: Schema.String,
  at: Schema.Number
})

/**
 * @since 0.1.0
 * @category models
 */
export type Reservation = typeof Reservation.Type

/**
 * What is being evaluated: a commit sha, a config hash, a model name…
 *
 * @since 0.1.0
 * @category models
 */
export const Candidate = Schema.Struct({
  id: Schema.String.pipe(Schema.minLength(1, { message: () => "candidate.id must be a non-empty string" })),
  label: Schema.optional(Schema.String),
  metadata: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
})

/**
 * @since 0.1.0
 * @category models
 */
export type Candidate = typeof Candidate.Type

/**
 * A request to evaluate a candidate on a split: the whole split, the first `numSamples` ids, or the
 * listed `sampleIds`. A repeated `idempotencyKey` returns the first run and charges nothing.
 *
 * Integers are checked by the engine (so that a bad id is named in the error), not by this schema.
 *
 * @since 0.1.0
 * @category models
 */
export const EvalRequest = Schema.Struct({
  datasetId: Schema.String.pipe(Schema.minLength(1, { message: () => "datasetId must be a non-empty string" })),
  split: Schema.String.pipe(Schema.minLength(1, { message: () => "split must be a non-empty string" })),
  candidate: Candidate,
  sampleIds: Schema.optional(Schema.Array(Schema.Number)),
  numSamples: Schema.optional(Schema.Number),
  idempotencyKey: Schema.optional(
    Schema.String.pipe(Schema.minLength(1, { message: () => "idempotencyKey must be a non-empty string" }))
  )
})

/**
 * @since 0.1.0
 * @category models
 */
export type EvalRequest = typeof EvalRequest.Type

/**
 * What inference produced for one sample. `error` marks a failed inference; `errorTrace` holds its
 * stack or cause; `trace` is whatever execution trace the task chose to keep.
 *
 * @since 0.1.0
 * @category models
 */
export const TaskOutput = Schema.Struct({
  output: Schema.Unknown,
  error: Schema.optional(Schema.String),
  errorTrace: Schema.optional(Schema.String),
  trace: Schema.optional(Schema.Unknown)
})

/**
 * @since 0.1.0
 * @category models
 */
export type TaskOutput = typeof TaskOutput.Type

const taskResultFields = {
  ...TaskOutput.fields,
  score: Schema.optional(Schema.Number),
  feedback: Schema.optional(Schema.String),
  metrics: Schema.Record({ key: Schema.String, value: Schema.Number }),
  evalError: Schema.optional(Schema.String),
  evalTrace: Schema.optional(Schema.Unknown)
}

/**
 * The inference output of a sample plus what scoring made of it.
 *
 * @since 0.1.0
 * @category models
 */
export const TaskResult = Schema.Struct(taskResultFields)

/**
 * @since 0.1.0
 * @category models
 */
export type TaskResult = typeof TaskResult.Type

/**
 * The stored record of one sample of one run. `input` is the row without its label fields.
 * `attempts` counts the attempts of the last stage that ran; times are epoch milliseconds.
 *
 * @since 0.1.0
 * @category models
 */
export const SampleRecord = Schema.Struct({
  ...taskResultFields,
  runId: Schema.String,
  sampleId: Schema.Int,
  datasetId: Schema.String,
  split: Schema.String,
  candidateId: Schema.String,
  input: Schema.optional(Schema.Unknown),
  attempts: Schema.Int,
  startedAt: Schema.Number,
  finishedAt: Schema.Number
})

/**
 * @since 0.1.0
 * @category models
 */
export type SampleRecord = typeof SampleRecord.Type

/**
 * The lifecycle state of a run.
 *
 * @since 0.1.0
 * @category models
 */
export const RunStatus = Schema.Literal("pending", "running", "completed", "failed")

/**
 * @since 0.1.0
 * @category models
 */
export type RunStatus = typeof RunStatus.Type

/**
 * A 95% interval of a mean.
 *
 * @since 0.1.0
 * @category models
 */
export const Interval = Schema.Struct({
  lower: Schema.Number,
  upper: Schema.Number
})

/**
 * @since 0.1.0
 * @category models
 */
export type Interval = typeof Interval.Type

/**
 * Aggregate results of a run. A sample is an error iff `error` or `evalError` is set; `avgScore`
 * averages the successes (null when there are none); `avgFilledScore` counts errors as 0.
 * `numScored` counts the successes with a score; `standardError` and `interval` (95%, Student's t)
 * are those of `avgFilledScore`, null below two samples. (Metrics stored before these three fields
 * existed read back with 0 and null.)
 *
 * @since 0.1.0
 * @category models
 */
export const Metrics = Schema.Struct({
  numSamples: Schema.Int,
  numErrors: Schema.Int,
  numSuccesses: Schema.Int,
  numScored: Schema.optionalWith(Schema.Int, { default: () => 0 }),
  avgScore: Schema.NullOr(Schema.Number),
  avgFilledScore: Schema.Number,
  errorRate: Schema.Number,
  standardError: Schema.optionalWith(Schema.NullOr(Schema.Number), { default: () => null }),
  interval: Schema.optionalWith(Schema.NullOr(Interval), { default: () => null }),
  /** A run of whole secret blocks (an optimizer's on a `non_viewable` split): the spread at block level. */
  blocks: Schema.optional(Schema.Struct({
    count: Schema.Int,
    standardError: Schema.NullOr(Schema.Number),
    interval: Schema.NullOr(Interval)
  }))
})

/**
 * @since 0.1.0
 * @category models
 */
export type Metrics = typeof Metrics.Type

/**
 * What a store holds of a run's samples, kept up to date as samples land: the records stored,
 * the errors among them, the successes with a score, and the sum and sum of squares of those
 * scores. The run's metrics derive from it (`Metrics.fromProgress`), so reading or resuming a run
 * never re-reads its samples.
 *
 * @since 0.1.0
 * @category models
 */
export const RunProgress = Schema.Struct({
  samples: Count,
  errors: Count,
  scored: Count,
  scoreSum: Schema.Number,
  scoreSquares: Schema.Number
})

/**
 * @since 0.1.0
 * @category models
 */
export type RunProgress = typeof RunProgress.Type

/**
 * A run's sample ids (`SampleIdSet`, see `SampleIds`) and their schemas, from and to an int array.
 *
 * @since 0.1.0
 * @category models
 */
export { type SampleIdSet, SampleIdsFromArray, SampleIdsFromSelf } from "./internal/sampleIdsSchema.js"

/**
 * The record of one evaluation run. `idempotencyKey` is kept when the request carried one.
 *
 * @since 0.1.0
 * @category models
 */
export const RunRecord = Schema.Struct({
  runId: Schema.String,
  candidate: Candidate,
  datasetId: Schema.String,
  split: Schema.String,
  sampleIds: SampleIdsFromArray,
  status: RunStatus,
  reservationId: Schema.optional(Schema.String),
  idempotencyKey: Schema.optional(Schema.String),
  admin: Schema.Boolean,
  createdAt: Schema.Number,
  finishedAt: Schema.optional(Schema.Number),
  metrics: Schema.optional(Metrics),
  /** Filled in by the store when it is read: what it holds of the run's samples now. */
  progress: Schema.optional(RunProgress)
})

/**
 * @since 0.1.0
 * @category models
 */
export type RunRecord = typeof RunRecord.Type

/**
 * The fields of a run that change after it is created.
 *
 * @since 0.1.0
 * @category models
 */
export type RunUpdate = {
  readonly status?: RunStatus
  readonly finishedAt?: number
  readonly metrics?: Metrics
}

/**
 * The engine's result of one run: the run and its metrics, unredacted. Its samples are read apart,
 * in pages or as a stream (`Engine.samples`, `TaskStore.streamSamples`), so a result costs the
 * same whatever the run's size. Frontends project it by tier (see `View`).
 *
 * @since 0.1.0
 * @category models
 */
export const Experiment = Schema.Struct({
  run: RunRecord,
  metrics: Metrics,
  /** What a `non_viewable` split's release mechanism told the optimizer, when it has one (DESIGN §12). */
  release: Schema.optional(Released)
})

/**
 * @since 0.1.0
 * @category models
 */
export type Experiment = typeof Experiment.Type
