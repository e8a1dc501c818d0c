/**
 * The parts of Harbor's on-disk results that collation reads, as tolerant schemas: unknown fields
 * are ignored, and both the legacy and the current job statistics are accepted.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

const Optional = <S extends Schema.Schema.Any>(schema: S) => Schema.optional(Schema.NullOr(schema))

/**
 * The first exception of a trial.
 *
 * @since 0.1.0
 * @category models
 */
export const ExceptionInfo = Schema.Struct({
  exception_type: Schema.String,
  exception_message: Optional(Schema.String),
  exception_traceback: Optional(Schema.String)
})

/**
 * A trial's `result.json`: the record of one attempt at one task. `task_name` is the collation key
 * (`org/name` for registry and named tasks, else the task directory name).
 *
 * @since 0.1.0
 * @category models
 */
export const TrialResult = Schema.Struct({
  task_name: Schema.String,
  trial_name: Optional(Schema.String),
  verifier_result: Optional(
    Schema.Struct({ rewards: Optional(Schema.Record({ key: Schema.String, value: Schema.Number })) })
  ),
  exception_info: Optional(ExceptionInfo),
  started_at: Optional(Schema.String),
  finished_at: Optional(Schema.String)
})

/**
 * @since 0.1.0
 * @category models
 */
export type TrialResult = typeof TrialResult.Type

/**
 * A verifier's `reward.json`: metric names to numbers.
 *
 * @since 0.1.0
 * @category models
 */
export const RewardJson = Schema.Record({ key: Schema.String, value: Schema.Number.pipe(Schema.finite()) })

/**
 * A verifier's `reward.txt`: one number, read as `{ reward: n }`.
 *
 * @since 0.1.0
 * @category models
 */
export const RewardTxt = Schema.transform(
  Schema.String.pipe(Schema.pattern(/^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/)),
  Schema.Struct({ reward: Schema.Number }),
  {
    strict: true,
    decode: (text) => ({ reward: Number(text.trim()) }),
    encode: (rewards) => `${rewards.reward}\n`
  }
)

const LegacyStats = Schema.Struct({ n_trials: Schema.Int, n_errors: Schema.Int })
const CurrentStats = Schema.Struct({ n_completed_trials: Schema.Int, n_errored_trials: Schema.Int })

/**
 * A job's `result.json` (the summary of one `harbor run`; it has no `task_name`). Its statistics
 * come in the legacy form (`n_trials`, `n_errors`) or the current one; either is read as
 * `{ trials, errors }`.
 *
 * @since 0.1.0
 * @category models
 */
export const JobResult = Schema.Struct({
  id: Schema.String,
  n_total_trials: Schema.optional(Schema.Int),
  stats: Schema.Union(
    Schema.transform(LegacyStats, Schema.Struct({ trials: Schema.Int, errors: Schema.Int }), {
      strict: true,
      decode: (stats) => ({ trials: stats.n_trials, errors: stats.n_errors }),
      encode: (stats) => ({ n_trials: stats.trials, n_errors: stats.errors })
    }),
    Schema.transform(CurrentStats, Schema.Struct({ trials: Schema.Int, errors: Schema.Int }), {
      strict: true,
      decode: (stats) => ({ trials: stats.n_completed_trials, errors: stats.n_errored_trials }),
      encode: (stats) => ({ n_completed_trials: stats.trials, n_errored_trials: stats.errors })
    })
  )
})

/**
 * @since 0.1.0
 * @category models
 */
export type JobResult = typeof JobResult.Type
