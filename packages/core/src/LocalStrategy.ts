/**
 * The local evaluation strategy: runs a `Task` in process as a staged, resumable pipeline. The
 * inference stage infers every planned sample that has no stored record; the scoring stage scores
 * every sample inferred without error that is neither scored nor failed in scoring, as soon as it
 * is inferred. Each sample is written to the `TaskStore` the moment its stage finishes it, so an
 * interrupted run resumes where it stopped. Rows are read and records written as a stream: memory
 * stays flat in the size of the run.
 *
 * Each unit of work (one sample, or one chunk of a batch function) runs under a concurrency limit,
 * a timeout per attempt, and retries with exponential backoff for retryable failures. A failure of
 * the task's code (a throw, a rejected Promise, a failed or dying Effect, a timeout after the last
 * attempt) never fails `produce`: it is recorded as the sample's `error` (inference) or `evalError`
 * (scoring), with a trace. An inference error is terminal: the sample is never scored and never
 * re-inferred. A return value of the wrong shape is recorded the same way.
 *
 * When the stack has a `RunEvents` hub, the strategy publishes `SampleInferred` and `SampleScored`
 * as records land, with the run's running counts.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { DatasetSource } from "./DatasetSource.js"
import { EvalStrategy } from "./EvalStrategy.js"
import { ConfigError } from "./HoldoutError.js"
import * as failure from "./internal/failure.js"
import * as pipeline from "./internal/pipeline.js"
import type * as stage from "./internal/stage.js"
import { RunEvents } from "./RunEvents.js"
import * as Task from "./Task.js"
import { TaskStore } from "./TaskStore.js"

/**
 * How retryable failures are retried. The wait before attempt `k + 1` is drawn uniformly from
 * `[0.8 · d, d]` with `d = min(maxDelay, baseDelay · 2^(k - 1))` (defaults: about 4 s, then 8 s).
 * A unit waiting for its retry holds no concurrency slot. The schedule is Effect's `Schedule.exponential`,
 * capped and jittered.
 *
 * @since 0.1.0
 * @category models
 */
export interface RetryOptions {
  /** Attempts in all, the first included (default 3); 1 disables retries. */
  readonly maxAttempts?: number
  /** The wait before the second attempt (default 4 seconds); it doubles for each further attempt. */
  readonly baseDelay?: Duration.DurationInput
  /** The longest wait between two attempts (default 120 seconds). */
  readonly maxDelay?: Duration.DurationInput
  /**
   * Which failures are retried (default `isRetryable`). It receives the thrown value, the
   * rejection reason, the Effect's failure or defect, or a `Cause.TimeoutException` for a timeout.
   */
  readonly isRetryable?: (error: unknown) => boolean
}

/**
 * The options of the local strategy.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Units of work running at once, inference and scoring together (default 16). A slot is held while
   * the task function runs only: a unit waiting to be retried, or waiting for the store to commit
   * its records, holds none.
   */
  readonly concurrency?: number
  /**
   * The time one attempt may take (default 180 seconds; `Duration.infinity` disables it). A timed-out
   * attempt is abandoned no earlier than `timeout` after it started and at most `min(timeout / 100,
   * 1 second)` later. A Promise cannot be cancelled, so it is left to settle unobserved; an Effect is
   * interrupted; a function that blocks synchronously cannot be preempted (JavaScript runs it to
   * completion) and is therefore never timed out.
   */
  readonly timeout?: Duration.DurationInput
  readonly retry?: RetryOptions
  /** The chunk size of `inferBatch` / `scoreBatch` (default: the task's, else 16). */
  readonly batchSize?: number
}

/**
 * The default concurrency.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultConcurrency = 16

/**
 * The default timeout of one attempt.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultTimeout: Duration.Duration = Duration.seconds(180)

/**
 * The default chunk size of batch functions.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultBatchSize = 16

/**
 * The default retry rule: a timeout (`Cause.TimeoutException`); an error carrying the HTTP status
 * 429, 503 or 529 in `status`, `statusCode` or `response.status`; or a message matching "rate
 * limit" (also "rate_limit", "ratelimit") or "too many requests", case-insensitively. Compose it
 * in a custom rule: `isRetryable: (e) => LocalStrategy.isRetryable(e) || e instanceof MyError`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const isRetryable: (error: unknown) => boolean = failure.defaultIsRetryable

const positiveInteger = (value: unknown): value is number =>
  typeof value === "number" && Number.isInteger(value) && value >= 1

const resolveSettings = (
  task: Task.Task<unknown, unknown, unknown>,
  options: Options
): Effect.Effect<stage.Settings, ConfigError> => {
  const problems: Array<string> = []
  const duration = (name: string, input: Duration.DurationInput | undefined, fallback: Duration.Duration) => {
    if (input === undefined) return Duration.toMillis(fallback)
    const decoded = Duration.decodeUnknown(input)
    if (Option.isNone(decoded)) {
      problems.push(`${name} must be a duration (e.g. "30 seconds" or a number of milliseconds), got ${String(input)}.`)
      return Number.NaN
    }
    return Duration.toMillis(decoded.value)
  }
  const concurrency = options.concurrency ?? defaultConcurrency
  if (!positiveInteger(concurrency)) problems.push(`concurrency must be an integer >= 1, got ${String(concurrency)}.`)
  const timeoutMs = duration("timeout", options.timeout, defaultTimeout)
  if (timeoutMs <= 0) problems.push(`timeout must be longer than zero, got ${String(options.timeout)}.`)
  const retry = options.retry ?? {}
  const maxAttempts = retry.maxAttempts ?? 3
  if (!positiveInteger(maxAttempts)) {
    problems.push(`retry.maxAttempts must be an integer >= 1, got ${String(maxAttempts)}.`)
  }
  const baseDelayMs = duration("retry.baseDelay", retry.baseDelay, Duration.seconds(4))
  const maxDelayMs = duration("retry.maxDelay", retry.maxDelay, Duration.seconds(120))
  if (baseDelayMs === Infinity) problems.push("retry.baseDelay must be finite.")
  if (maxDelayMs === Infinity) problems.push("retry.maxDelay must be finite.")
  if (retry.isRetryable !== undefined && typeof retry.isRetryable !== "function") {
    problems.push("retry.isRetryable must be a function (error) => boolean.")
  }
  const batchSize = options.batchSize ?? task.batchSize ?? defaultBatchSize
  if (!positiveInteger(batchSize)) problems.push(`batchSize must be an integer >= 1, got ${String(batchSize)}.`)
  if (problems.length > 0) {
    return Effect.fail(new ConfigError({ message: `Invalid options of the local strategy: ${problems.join(" ")}` }))
  }
  return Effect.succeed({
    concurrency,
    timeoutMs,
    maxAttempts,
    baseDelayMs,
    maxDelayMs,
    isRetryable: retry.isRetryable ?? failure.defaultIsRetryable,
    batchSize
  })
}

/**
 * Builds the strategy service for a task: checks the task and the options (a `ConfigError` lists
 * every problem) and takes the `TaskStore` and `DatasetSource` it writes to and reads from.
 *
 * `produce` fails only with a `StrategyError` (the rows cannot be read: unknown dataset or split,
 * ids out of range) or a `StoreError` (the store failed); the task's own failures are sample errors.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <Row, Out, Input>(
  task: Task.Task<Row, Out, Input>,
  options: Options = {}
): Effect.Effect<EvalStrategy["Type"], ConfigError, TaskStore | DatasetSource> =>
  Effect.gen(function*() {
    yield* Task.validate(task)
    const erased = task as unknown as Task.Task<unknown, unknown, unknown>
    const settings = yield* resolveSettings(erased, options)
    const retry = failure.retryPolicy(settings, pipeline.strategyName)
    const store = yield* TaskStore
    const source = yield* DatasetSource
    const events = yield* Effect.serviceOption(RunEvents)
    return {
      name: pipeline.strategyName,
      produce: (plan) => pipeline.produce(erased, settings, retry, store, source, events, plan)
    }
  })

/**
 * The local strategy as a layer.
 *
 * @example
 * ```ts
 * const strategy = LocalStrategy.layer(task, { concurrency: 32, timeout: "60 seconds" })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <Row, Out, Input>(
  task: Task.Task<Row, Out, Input>,
  options: Options = {}
): Layer.Layer<EvalStrategy, ConfigError, TaskStore | DatasetSource> => Layer.effect(EvalStrategy, make(task, options))
