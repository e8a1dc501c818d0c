/**
 * The configuration of the Harbor strategy, decoded strictly: an unknown or invalid field is a
 * `ConfigError` that names it.
 *
 * @since 0.1.0
 */
import { HoldoutError } from "@holdout/core"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"

const PositiveInt = Schema.Int.pipe(Schema.greaterThanOrEqualTo(1))

/**
 * How one `harbor run` is made. `launcher` is the command prefix (`{candidatePath}` is replaced by
 * the candidate's checkout, `{harbor}` by the sidecar's harbor), e.g.
 * `["uv", "run", "--project", "{candidatePath}", "{harbor}"]`; it never runs a harbor the
 * candidate's checkout supplies (`HarborLauncher`).
 *
 * @since 0.1.0
 * @category models
 */
export const HarborConfig = Schema.Struct({
  /** A local task or dataset directory, or a registry reference `org/name[@version]`. */
  taskSource: Schema.NonEmptyString,
  /** `module:Class` of the candidate's agent. */
  agent: Schema.NonEmptyString,
  model: Schema.optional(Schema.NonEmptyString),
  environment: Schema.optionalWith(Schema.NonEmptyString, { default: () => "docker" }),
  attempts: Schema.optionalWith(PositiveInt, { default: () => 1 }),
  maxRetries: Schema.optionalWith(Schema.Int.pipe(Schema.greaterThanOrEqualTo(0)), { default: () => 2 }),
  concurrency: Schema.optionalWith(PositiveInt, { default: () => 8 }),
  rewardKey: Schema.optional(Schema.NonEmptyString),
  aggregate: Schema.optionalWith(Schema.Literal("best", "mean"), { default: () => "best" as const }),
  launcher: Schema.optionalWith(Schema.NonEmptyArray(Schema.String), { default: () => ["harbor"] as const }),
  /**
   * The sidecar's own harbor, an absolute path outside any candidate's checkout: what `{harbor}` (and a
   * launcher program written `harbor`) runs. Without it, `harbor` is looked up on PATH's absolute
   * directories when the strategy starts (`HarborLauncher`).
   */
  trustedHarbor: Schema.optional(Schema.NonEmptyString),
  /** The whole nested run's timeout, in seconds. */
  timeoutSeconds: Schema.optionalWith(Schema.Number.pipe(Schema.positive()), { default: () => 3600 }),
  extraArgs: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] }),
  /**
   * Rounds of re-running, within the same run, the samples whose every attempt died of an
   * infrastructure failure (an `[infra]` exception type: model-API outages, rate limits, timeouts);
   * 0 (the default) never re-runs. Each round goes to `<run dir>/jobs-infra-retry-<k>` and charges
   * nothing more; a recovered sample's output carries `infraRetry: { recoveredRound, discardedRounds }`.
   */
  infraRetryRounds: Schema.optionalWith(Schema.Int.pipe(Schema.greaterThanOrEqualTo(0)), { default: () => 0 }),
  /** The wait before infra-retry round n is n times this many seconds (default 30). */
  infraRetryDelaySeconds: Schema.optionalWith(
    Schema.Number.pipe(Schema.finite(), Schema.greaterThanOrEqualTo(0)),
    { default: () => 30 }
  ),
  /**
   * Gives a failed sample (score 0, or no reward) the tail of its first failed attempt's transcript
   * (`agent/terminus_2.pane`, else `agent/trajectory.json`) as its `feedback`. Off by default; the
   * feedback is per-sample data, shown only where a split's tier shows samples (`viewable`).
   */
  feedbackTranscripts: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  /** How many bytes of a transcript's end the feedback keeps (default 3000); 0 or less: no feedback. */
  feedbackMaxBytes: Schema.optionalWith(Schema.Int, { default: () => 3000 }),
  /**
   * Adds `attempts: [{ reward, exception }]` to every sample's output, one entry per attempt in the
   * order they finished (`reward` and `exception` null when absent). Off by default.
   */
  exposeAttemptDetail: Schema.optionalWith(Schema.Boolean, { default: () => false })
})

/**
 * @since 0.1.0
 * @category models
 */
export type HarborConfig = typeof HarborConfig.Type

/**
 * A configuration as written by hand or read from JSON (the defaults not yet filled in).
 *
 * @since 0.1.0
 * @category models
 */
export type Input = typeof HarborConfig.Encoded

const decodeConfig = Schema.decodeUnknownEither(HarborConfig, { onExcessProperty: "error", errors: "all" })

/**
 * Decodes a configuration; every problem is named in the `ConfigError`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const decode = (input: unknown): Effect.Effect<HarborConfig, HoldoutError.ConfigError> =>
  Either.match(decodeConfig(input), {
    onLeft: (error) =>
      Effect.fail(
        new HoldoutError.ConfigError({
          // one line, a clause per offending field by its path (never the schema's whole signature)
          message: `Invalid Harbor configuration: ${
            ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) =>
              `${issue.path.length === 0 ? "" : `"${issue.path.join(".")}" `}${
                issue.message.split("\n")[0]!.replace(/^Expected \{.*\}, actual/, "expected a mapping, actual")
              }`
            ).join("; ")
          }. Fix strategy.harbor and run again.`
        })
      ),
    onRight: Effect.succeed
  })
