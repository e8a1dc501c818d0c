/**
 * The staged, resumable local pipeline behind `LocalStrategy`: an inference stage and a scoring
 * stage, each run by a small pool of runner fibers with a per-attempt timeout (one shared watchdog
 * fiber a stage), retries with backoff for retryable failures, and per-sample persistence.
 *
 * The hot path is kept cheap on purpose: a function that returns synchronously costs no timer and
 * no fiber; a Promise is awaited with `Effect.async` and raced by the watchdog; an Effect result
 * runs as a fiber of its own (so that the watchdog can interrupt it), started synchronously so that
 * one that needs no async boundary is done before any watch is set up. Retries are a plain loop.
 * The deadline of an attempt counts from the moment the task function is called.
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Random from "effect/Random"
import * as Runtime from "effect/Runtime"
import * as Stream from "effect/Stream"
import type { DatasetSource } from "../DatasetSource.js"
import type { RunPlan } from "../EvalStrategy.js"
import { type StoreError, StrategyError } from "../HoldoutError.js"
import type { SampleRecord } from "../Model.js"
import * as Task from "../Task.js"
import { streamSamples, type TaskStore } from "../TaskStore.js"

/** @internal */
export const strategyName = "local"

/**
 * The resolved options of the pipeline (times in milliseconds; `timeoutMs` may be `Infinity`).
 *
 * @internal
 */
export interface Settings {
  readonly concurrency: number
  readonly timeoutMs: number
  readonly maxAttempts: number
  readonly baseDelayMs: number
  readonly maxDelayMs: number
  readonly isRetryable: (error: unknown) => boolean
  readonly batchSize: number
}

// ---------------------------------------------------------------------------------------------
// failures
// ---------------------------------------------------------------------------------------------

/** A failed attempt: the error value (for `isRetryable`), its message and its trace. */
class Failed {
  constructor(readonly error: unknown, readonly message: string, readonly trace: string) {}
}

const retryableStatuses = new Set([429, 503, 529])
const retryableMessage = /rate[\s_-]?limit|too many requests/i

const numericStatus = (u: unknown): number | undefined => {
  if (typeof u === "number" && Number.isInteger(u)) return u
  if (typeof u === "string" && /^\d{3}$/.test(u)) return Number(u)
  return undefined
}

/**
 * The HTTP status an error carries, from `status`, `statusCode` or `response.status`.
 *
 * @internal
 */
export const statusOf = (error: object): number | undefined => {
  const record = error as { readonly status?: unknown; readonly statusCode?: unknown; readonly response?: unknown }
  const direct = numericStatus(record.status) ?? numericStatus(record.statusCode)
  if (direct !== undefined) return direct
  const response = record.response
  return typeof response === "object" && response !== null
    ? numericStatus((response as { readonly status?: unknown }).status)
    : undefined
}

/**
 * The default retry rule: timeouts, HTTP 429/503/529, and "rate limit" / "too many requests"
 * messages.
 *
 * @internal
 */
export const defaultIsRetryable = (error: unknown): boolean => {
  if (Cause.isTimeoutException(error)) return true
  if (typeof error === "string") return retryableMessage.test(error)
  if (typeof error !== "object" || error === null) return false
  const status = statusOf(error)
  if (status !== undefined && retryableStatuses.has(status)) return true
  const message = (error as { readonly message?: unknown }).message
  return typeof message === "string" && retryableMessage.test(message)
}

const describe = (u: unknown): string => {
  try {
    const json = JSON.stringify(u)
    return json === undefined ? String(u) : json
  } catch {
    return String(u)
  }
}

/**
 * A one-line message for any failure value.
 *
 * @internal
 */
export const messageOf = (error: unknown): string => {
  if (typeof error === "string") return error.length > 0 ? error : "(an empty error message)"
  if (typeof error === "object" && error !== null) {
    const message = (error as { readonly message?: unknown }).message
    if (typeof message === "string" && message.length > 0) return message
    const tag = (error as { readonly _tag?: unknown })._tag
    const name = typeof tag === "string" ? tag : error instanceof Error ? error.name : undefined
    const fields = describe({ ...error })
    if (name !== undefined) return fields === "{}" ? name : `${name} ${fields}`
    return fields
  }
  return String(error)
}

const traceOf = (error: unknown, message: string): string =>
  error instanceof Error && typeof error.stack === "string" && error.stack.length > 0
    ? error.stack
    : `Thrown value: ${message}`

const thrown = (error: unknown): Failed => {
  try {
    const message = messageOf(error)
    return new Failed(error, message, traceOf(error, message))
  } catch {
    const message = "A task function failed with a value that cannot be described."
    return new Failed(error, message, message)
  }
}

const fromCause = (cause: Cause.Cause<unknown>): Failed => {
  const failure = Cause.failureOption(cause)
  if (failure._tag === "Some") return new Failed(failure.value, messageOf(failure.value), Cause.pretty(cause))
  const defect = Cause.dieOption(cause)
  if (defect._tag === "Some") return new Failed(defect.value, messageOf(defect.value), Cause.pretty(cause))
  return new Failed(cause, "The task's Effect was interrupted.", Cause.pretty(cause))
}

// ---------------------------------------------------------------------------------------------
// the watchdog
// ---------------------------------------------------------------------------------------------

interface Watch {
  readonly deadline: number
  /** Called once the deadline has passed. */
  readonly expire: () => void
  /** Stops the attempt when its stage ends first (an Effect's fiber is interrupted). */
  readonly abandon: (() => void) | undefined
}

/**
 * One fiber a stage that abandons attempts past their deadline. It sleeps (on Effect's `Clock`, so
 * `TestClock` drives it) until the earliest deadline and is idle when nothing is watched, so an
 * attempt costs a `Set` insertion and removal, not a timer and a fiber.
 *
 * Precision: an attempt is abandoned no earlier than `timeout` after it started and at most
 * `slack = min(timeout / 100, 1 s)` later (plus timer latency); deadlines that close together are
 * handled by one wake-up.
 */
class Watchdog {
  readonly watches = new Set<Watch>()
  private wake: (() => void) | undefined = undefined
  readonly slackMs: number

  constructor(readonly clock: Clock.Clock, readonly timeoutMs: number) {
    this.slackMs = Math.min(1000, Math.ceil(timeoutMs / 100))
  }

  add(startedAt: number, expire: () => void, abandon?: () => void): Watch {
    const watch: Watch = { deadline: startedAt + this.timeoutMs, expire, abandon }
    this.watches.add(watch)
    const wake = this.wake
    if (wake !== undefined) {
      this.wake = undefined
      wake()
    }
    return watch
  }

  remove(watch: Watch | undefined): void {
    if (watch !== undefined) this.watches.delete(watch)
  }

  /** Stops every attempt still watched: the stage is over (done, failed or interrupted). */
  readonly abandonAll: Effect.Effect<void> = Effect.sync(() => {
    for (const watch of this.watches) watch.abandon?.()
    this.watches.clear()
  })

  readonly idle: Effect.Effect<void> = Effect.async<void>((resume) => {
    this.wake = () => resume(Effect.void)
    return Effect.sync(() => {
      this.wake = undefined
    })
  })

  readonly run: Effect.Effect<void> = Effect.gen(this, function*() {
    while (true) {
      if (this.watches.size === 0) {
        yield* this.idle
        continue
      }
      // Deadlines are added in (clock) order, so the first watch holds the earliest one.
      const first: Watch = this.watches.values().next().value!
      const now = this.clock.unsafeCurrentTimeMillis()
      if (first.deadline > now) yield* Effect.sleep(first.deadline - now + this.slackMs)
      const after = this.clock.unsafeCurrentTimeMillis()
      for (const watch of this.watches) {
        if (watch.deadline <= after) {
          this.watches.delete(watch)
          watch.expire()
        }
      }
    }
  })
}

// ---------------------------------------------------------------------------------------------
// one attempt
// ---------------------------------------------------------------------------------------------

/** An attempt that did not finish synchronously. */
class Pending {
  constructor(readonly effect: Effect.Effect<unknown>) {}
}

const isThenable = (u: unknown): u is PromiseLike<unknown> =>
  (typeof u === "object" || typeof u === "function") && u !== null &&
  typeof (u as { readonly then?: unknown }).then === "function"

/**
 * Awaits a Promise, raced by the watchdog. No interruption handler is registered (it would cost
 * several allocations on every attempt): if the runner is interrupted, its watch simply lapses
 * (resuming an abandoned `async` does nothing) and goes away with the stage's watchdog.
 */
const awaitPromise = (
  promise: PromiseLike<unknown>,
  startedAt: number,
  watchdog: Watchdog | undefined,
  timedOut: () => Failed
): Effect.Effect<unknown> =>
  Effect.async<unknown>((resume) => {
    let settled = false
    const watch = watchdog?.add(startedAt, () => {
      if (settled) return
      settled = true
      resume(Effect.succeed(timedOut()))
    })
    const settle = (result: unknown) => {
      if (settled) return
      settled = true
      watchdog?.remove(watch)
      resume(Effect.succeed(result))
    }
    try {
      promise.then(settle, (error: unknown) => settle(thrown(error)))
    } catch (error) {
      settle(thrown(error))
    }
  })

const exitValue = (exit: Exit.Exit<unknown, unknown>): unknown =>
  exit._tag === "Success" ? exit.value : fromCause(exit.cause)

/**
 * Starts an Effect returned by a task function. Without a timeout it runs inline. With one it is
 * started as a fiber of its own that runs synchronously as far as it can (`runFork` starts at
 * once), so an Effect that finishes without an async boundary is done before any watch is set up;
 * otherwise the watchdog watches it and interrupts it when it is late.
 */
const startEffect = (effect: Effect.Effect<unknown, unknown>, startedAt: number, guard: Guard): unknown => {
  const watchdog = guard.watchdog
  if (watchdog === undefined) return new Pending(Effect.map(Effect.exit(effect), exitValue))
  const fiber = Runtime.runFork(guard.runtime)(effect)
  const exit = fiber.unsafePoll()
  if (exit !== null) return exitValue(exit)
  // No interruption handler on the `async` (it costs several allocations an attempt): if the stage
  // ends first, `abandonAll` interrupts the fiber through its watch.
  return new Pending(Effect.async<unknown>((resume) => {
    let settled = false
    const interrupt = () => fiber.unsafeInterruptAsFork(FiberId.none)
    const watch = watchdog.add(startedAt, () => {
      if (settled) return
      settled = true
      resume(Effect.succeed(guard.timedOut()))
      interrupt()
    }, interrupt)
    fiber.addObserver((exit) => {
      if (settled) return
      settled = true
      watchdog.remove(watch)
      resume(Effect.succeed(exitValue(exit)))
    })
  }))
}

/** What one attempt needs from its stage: the watchdog (none without a timeout) and the runtime. */
interface Guard {
  readonly watchdog: Watchdog | undefined
  readonly timedOut: () => Failed
  readonly runtime: Runtime.Runtime<never>
}

/**
 * Calls a task function once: its value when it returns synchronously (or an Effect that finishes
 * synchronously), a `Failed` when it throws, or a `Pending` to await.
 */
const invoke = (spec: StageSpec, unit: Unit, startedAt: number, guard: Guard): unknown => {
  let value: unknown
  try {
    value = spec.call(unit)
  } catch (error) {
    return thrown(error)
  }
  if (Effect.isEffect(value)) {
    if (Exit.isExit(value)) return exitValue(value)
    return startEffect(value as Effect.Effect<unknown, unknown>, startedAt, guard)
  }
  if (isThenable(value)) return new Pending(awaitPromise(value, startedAt, guard.watchdog, guard.timedOut))
  return value
}

// ---------------------------------------------------------------------------------------------
// a stage: units of work run by a pool of runners
// ---------------------------------------------------------------------------------------------

/** One unit of work: the samples `[start, end)` of a stage (one sample, or one chunk). */
interface Unit {
  readonly start: number
  readonly end: number
  attempts: number
  startedAt: number
  earlier: Array<string> | undefined
}

/** What a stage does with a unit. */
interface StageSpec {
  readonly call: (unit: Unit) => unknown
  readonly onSuccess: (unit: Unit, value: unknown) => Effect.Effect<void, StoreError>
  readonly onFailure: (unit: Unit, failure: Failed) => Effect.Effect<void, StoreError>
}

/** The wait before attempt `attempts + 1`: uniform in [0.8·d, d], d = min(maxDelay, base·2^(attempts-1)). */
const backoffMs = (settings: Settings, attempts: number, random: number): number => {
  const ceiling = Math.min(settings.maxDelayMs, settings.baseDelayMs * Math.pow(2, attempts - 1))
  return Math.max(0, ceiling * (0.8 + 0.2 * random))
}

const safeIsRetryable = (settings: Settings, error: unknown): boolean => {
  try {
    return settings.isRetryable(error) === true
  } catch {
    return false
  }
}

const withHistory = (unit: Unit, failure: Failed): Failed => {
  if (unit.earlier === undefined || unit.earlier.length === 0) return failure
  const history = unit.earlier.map((message, index) => `  attempt ${index + 1}: ${message}`).join("\n")
  return new Failed(
    failure.error,
    failure.message,
    `${failure.trace}\n\nEarlier attempts (retried):\n${history}`
  )
}

/**
 * Runs `count` samples through `spec` in units of `unitSize`. Units are made as runners take them
 * (not up front), so a stage of many samples holds only the units in flight.
 */
const runStage = (
  count: number,
  unitSize: number,
  spec: StageSpec,
  settings: Settings,
  clock: Clock.Clock
): Effect.Effect<void, StoreError> => {
  if (count === 0) return Effect.void
  return Effect.scoped(Effect.gen(function*() {
    const scope = yield* Effect.scope
    const done = yield* Deferred.make<void, StoreError>()
    const watchdog = Number.isFinite(settings.timeoutMs) ? new Watchdog(clock, settings.timeoutMs) : undefined
    if (watchdog !== undefined) {
      yield* Effect.addFinalizer(() => watchdog.abandonAll)
      yield* Effect.forkIn(watchdog.run, scope)
    }
    const timeoutText = Duration.format(Duration.millis(settings.timeoutMs))
    const timedOut = () => {
      const message = `Timed out: the attempt took longer than the per-attempt timeout of ${timeoutText}.`
      return new Failed(new Cause.TimeoutException(message), message, `TimeoutException: ${message}`)
    }
    const guard: Guard = { watchdog, timedOut, runtime: yield* Effect.runtime<never>() }

    let cursor = 0
    let remaining = Math.ceil(count / unitSize)
    let active = 0
    const ready: Array<Unit> = []
    const next = (): Unit | undefined => {
      if (ready.length > 0) return ready.shift()
      if (cursor >= count) return undefined
      const start = cursor
      cursor = Math.min(count, start + unitSize)
      return { start, end: cursor, attempts: 0, startedAt: 0, earlier: undefined }
    }
    const finished = () => {
      if (--remaining === 0) Deferred.unsafeDone(done, Exit.void)
    }

    // A runner takes units until none is left. It is a loop of `flatMap`s rather than a generator:
    // this is the hot path, and one continuation a unit is cheaper than a generator step.
    const settle = (unit: Unit, result: unknown): Effect.Effect<void, StoreError> => {
      if (!(result instanceof Failed)) return Effect.map(spec.onSuccess(unit, result), finished)
      if (unit.attempts < settings.maxAttempts && safeIsRetryable(settings, result.error)) {
        if (unit.earlier === undefined) unit.earlier = []
        unit.earlier.push(result.message)
        return Effect.logDebug(`Retrying a retryable failure: ${result.message}`).pipe(
          Effect.annotateLogs({ strategy: strategyName, attempt: unit.attempts }),
          Effect.zipRight(Effect.forkIn(retryLater(unit), scope)),
          Effect.asVoid
        )
      }
      return Effect.map(spec.onFailure(unit, withHistory(unit, result)), finished)
    }
    const runner: Effect.Effect<void, StoreError> = Effect.suspend(function loop(): Effect.Effect<void, StoreError> {
      const unit = next()
      if (unit === undefined) {
        active--
        return Effect.void
      }
      const attemptStartedAt = clock.unsafeCurrentTimeMillis()
      if (unit.attempts === 0) unit.startedAt = attemptStartedAt
      unit.attempts++
      const result = invoke(spec, unit, attemptStartedAt, guard)
      const settled = result instanceof Pending
        ? Effect.flatMap(result.effect, (value) => settle(unit, value))
        : settle(unit, result)
      return Effect.flatMap(settled, loop)
    })

    const guarded = Effect.catchAllCause(runner, (cause) => Deferred.failCause(done, cause))

    // A unit waiting for its retry holds no slot: when it is due, it joins the ready queue and a
    // new runner starts if fewer than `concurrency` are running (else a running one picks it up).
    const retryLater = (unit: Unit): Effect.Effect<void> =>
      Effect.flatMap(
        Random.next,
        (random) =>
          Effect.flatMap(Effect.sleep(backoffMs(settings, unit.attempts, random)), () => {
            ready.push(unit)
            if (active >= settings.concurrency) return Effect.void
            active++
            return guarded
          })
      )

    const initial = Math.min(settings.concurrency, remaining)
    active = initial
    for (let index = 0; index < initial; index++) yield* Effect.forkIn(guarded, scope)
    yield* Deferred.await(done)
  }))
}

// ---------------------------------------------------------------------------------------------
// records
// ---------------------------------------------------------------------------------------------

type Mutable<A> = { -readonly [K in keyof A]: A[K] }

/**
 * A copy of a plain-object row without the label fields; any other row is returned as is.
 *
 * @internal
 */
export const scrub = (row: unknown, labels: ReadonlySet<string>): unknown => {
  if (labels.size === 0 || typeof row !== "object" || row === null || Array.isArray(row)) return row
  const proto = Object.getPrototypeOf(row)
  if (proto !== Object.prototype && proto !== null) return row
  const copy: Record<string, unknown> = {}
  for (const key of Object.keys(row)) {
    if (!labels.has(key)) copy[key] = (row as Record<string, unknown>)[key]
  }
  return copy
}

interface InferenceFields {
  readonly output: unknown
  readonly trace?: unknown
  readonly error?: string
  readonly errorTrace?: string
}

const errorFields = (error: unknown, fallback: string): { readonly error: string; readonly errorTrace: string } => {
  const message = typeof error === "string" ? (error.length > 0 ? error : fallback) : messageOf(error)
  return { error: message, errorTrace: error instanceof Error ? traceOf(error, message) : message }
}

const castOutput = (value: unknown): InferenceFields => {
  if (Task.isOutput(value)) {
    const fields: Mutable<InferenceFields> = { output: value.value === undefined ? null : value.value }
    if (value.trace !== undefined) fields.trace = value.trace
    if (value.error !== undefined) {
      const { error, errorTrace } = errorFields(value.error, "Inference reported an error without a message.")
      fields.error = error
      fields.errorTrace = errorTrace
    }
    return fields
  }
  if (value instanceof Error) return { output: null, ...errorFields(value, "") }
  return { output: value === undefined ? null : value }
}

interface ScoreFields {
  readonly score?: number
  readonly feedback?: string
  readonly metrics: Record<string, number>
  readonly evalError?: string
  readonly evalTrace?: unknown
}

const scoreShape = "a number or { score?, feedback?, metrics?, evalError?, evalTrace? }"

const castScore = (value: unknown, fn: string): ScoreFields => {
  const invalid = (what: string): ScoreFields => {
    const message = `${fn} returned ${what}; it must return ${scoreShape}.`
    return { metrics: {}, evalError: message, evalTrace: message }
  }
  if (typeof value === "number") {
    return Number.isFinite(value) ? { score: value, metrics: {} } : invalid(`the non-finite score ${value}`)
  }
  if (value instanceof Error) {
    const message = messageOf(value)
    return { metrics: {}, evalError: message, evalTrace: traceOf(value, message) }
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return invalid(value === null ? "null" : Array.isArray(value) ? "an array" : `a ${typeof value}`)
  }
  const raw = value as Task.Score
  const fields: Mutable<ScoreFields> = { metrics: {} }
  if (raw.score !== undefined) {
    if (typeof raw.score !== "number" || !Number.isFinite(raw.score)) {
      return invalid(`the score ${describe(raw.score)}, which is not a finite number`)
    }
    fields.score = raw.score
  }
  if (raw.feedback !== undefined) {
    if (typeof raw.feedback !== "string") return invalid(`feedback ${describe(raw.feedback)}, which is not a string`)
    fields.feedback = raw.feedback
  }
  if (raw.metrics !== undefined) {
    if (typeof raw.metrics !== "object" || raw.metrics === null || Array.isArray(raw.metrics)) {
      return invalid(`metrics ${describe(raw.metrics)}, which is not a record of numbers`)
    }
    for (const [key, metric] of Object.entries(raw.metrics)) {
      if (typeof metric !== "number" || !Number.isFinite(metric)) {
        return invalid(`the metric "${key}" = ${describe(metric)}, which is not a finite number`)
      }
      fields.metrics[key] = metric
    }
  }
  if (raw.evalError !== undefined) {
    if (typeof raw.evalError !== "string") return invalid(`evalError ${describe(raw.evalError)}, not a string`)
    fields.evalError = raw.evalError.length > 0 ? raw.evalError : "Scoring reported an error without a message."
  }
  if (raw.evalTrace !== undefined) fields.evalTrace = raw.evalTrace
  return fields
}

const storedOutput = (record: SampleRecord): Task.StoredOutput<unknown> =>
  record.trace === undefined ? { output: record.output } : { output: record.output, trace: record.trace }

/** Samples that still need scoring: inferred without error, neither scored nor failed in scoring. */
const needsScoring = (record: SampleRecord): boolean =>
  record.error === undefined && record.score === undefined && record.evalError === undefined

// ---------------------------------------------------------------------------------------------
// produce
// ---------------------------------------------------------------------------------------------

/**
 * The samples of one stage, as parallel arrays (one object a sample would cost memory for nothing):
 * ids, full rows, label-scrubbed rows, and the records as they are stored.
 */
interface Samples {
  readonly sampleIds: Array<number>
  readonly rows: Array<unknown>
  readonly inputs: Array<unknown>
  readonly records: Array<SampleRecord | undefined>
}

const emptySamples = (): Samples => ({ sampleIds: [], rows: [], inputs: [], records: [] })

/**
 * Runs the pipeline for one plan.
 *
 * @internal
 */
export const produce = (
  task: Task.Task<unknown, unknown, unknown>,
  settings: Settings,
  store: TaskStore["Type"],
  source: DatasetSource["Type"],
  plan: RunPlan
): Effect.Effect<void, StrategyError | StoreError> =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const stored = yield* Stream.runCollect(streamSamples(store, plan.runId))
    const byId = new Map<number, SampleRecord>()
    for (const record of stored) byId.set(record.sampleId, record)

    // The samples to read: those with no record (to infer) and those inferred but not yet scored.
    const wanted: Array<number> = []
    const seen = new Set<number>()
    for (const sampleId of plan.sampleIds) {
      if (seen.has(sampleId)) continue
      seen.add(sampleId)
      const record = byId.get(sampleId)
      if (record === undefined || needsScoring(record)) wanted.push(sampleId)
    }
    seen.clear()
    if (wanted.length === 0) return

    const rows = yield* source.rows(plan.datasetId, plan.split, wanted).pipe(
      Effect.catchTags({
        InvalidRequest: (error) => Effect.fail(readError(plan, error.message)),
        UnknownSplit: (error) => Effect.fail(readError(plan, error.message))
      })
    )
    if (rows.length !== wanted.length) {
      return yield* Effect.fail(
        readError(plan, `the dataset source returned ${rows.length} rows for ${wanted.length} sample ids`)
      )
    }

    const labels = new Set(task.labelFields)
    const toInfer = emptySamples()
    const toScore = emptySamples()
    for (let index = 0; index < wanted.length; index++) {
      const sampleId = wanted[index]!
      const row = rows[index]
      const record = byId.get(sampleId)
      const samples = record === undefined ? toInfer : toScore
      samples.sampleIds.push(sampleId)
      samples.rows.push(row)
      samples.inputs.push(record === undefined ? scrub(row, labels) : record.input)
      samples.records.push(record)
    }
    byId.clear()

    yield* runStage(
      toInfer.sampleIds.length,
      task.infer === undefined ? settings.batchSize : 1,
      inferenceSpec(task, plan, store, clock, toInfer),
      settings,
      clock
    )

    // Inferred without error: on to scoring, after the samples resumed from an earlier run.
    for (let index = 0; index < toInfer.sampleIds.length; index++) {
      const record = toInfer.records[index]
      if (record === undefined || !needsScoring(record)) continue
      toScore.sampleIds.push(toInfer.sampleIds[index]!)
      toScore.rows.push(toInfer.rows[index])
      toScore.inputs.push(undefined)
      toScore.records.push(record)
    }
    toInfer.sampleIds.length =
      toInfer.rows.length =
      toInfer.inputs.length =
      toInfer.records.length =
        0

    yield* runStage(
      toScore.sampleIds.length,
      task.score === undefined ? settings.batchSize : 1,
      scoringSpec(task, plan, store, clock, toScore),
      settings,
      clock
    )
  })

const readError = (plan: RunPlan, message: string) =>
  new StrategyError({
    strategy: strategyName,
    message: `Cannot read the rows of run "${plan.runId}" (split "${plan.split}" of dataset "${plan.datasetId}"): ` +
      `${message}`
  })

const batchMismatch = (fn: string, value: unknown, count: number): string | undefined => {
  if (!Array.isArray(value)) {
    return `${fn} returned ${value === null ? "null" : `a ${typeof value}`} for a chunk of ${count} samples; it must ` +
      `return an array with one result per sample, in order.`
  }
  if (value.length !== count) {
    return `${fn} returned ${value.length} results for ${count} samples; results are paired with samples by ` +
      `position, so the whole chunk is marked as failed. Return exactly one result per sample, in order.`
  }
  return undefined
}

const inferenceSpec = (
  task: Task.Task<unknown, unknown, unknown>,
  plan: RunPlan,
  store: TaskStore["Type"],
  clock: Clock.Clock,
  samples: Samples
): StageSpec => {
  const persist = (unit: Unit, index: number, fields: InferenceFields) => {
    const record: Mutable<SampleRecord> = {
      runId: plan.runId,
      sampleId: samples.sampleIds[index]!,
      datasetId: plan.datasetId,
      split: plan.split,
      candidateId: plan.candidate.id,
      input: samples.inputs[index],
      output: fields.output,
      metrics: {},
      attempts: unit.attempts,
      startedAt: unit.startedAt,
      finishedAt: clock.unsafeCurrentTimeMillis()
    }
    if (fields.trace !== undefined) record.trace = fields.trace
    if (fields.error !== undefined) record.error = fields.error
    if (fields.errorTrace !== undefined) record.errorTrace = fields.errorTrace
    samples.records[index] = record
    return store.putSample(record)
  }
  const persistAll = (unit: Unit, fields: InferenceFields) =>
    Effect.gen(function*() {
      for (let index = unit.start; index < unit.end; index++) yield* persist(unit, index, fields)
    })
  const onFailure = (unit: Unit, failure: Failed) =>
    persistAll(unit, { output: null, error: failure.message, errorTrace: failure.trace })

  const infer = task.infer
  if (infer !== undefined) {
    return {
      call: (unit) => infer(samples.inputs[unit.start], plan),
      onSuccess: (unit, value) => persist(unit, unit.start, castOutput(value)),
      onFailure
    }
  }
  const inferBatch = task.inferBatch!
  return {
    call: (unit) => inferBatch(samples.inputs.slice(unit.start, unit.end), plan),
    onSuccess: (unit, value) => {
      const mismatch = batchMismatch("inferBatch", value, unit.end - unit.start)
      if (mismatch !== undefined) return persistAll(unit, { output: null, error: mismatch, errorTrace: mismatch })
      const outputs = value as ReadonlyArray<unknown>
      return Effect.gen(function*() {
        for (let index = unit.start; index < unit.end; index++) {
          yield* persist(unit, index, castOutput(outputs[index - unit.start]))
        }
      })
    },
    onFailure
  }
}

const scoringSpec = (
  task: Task.Task<unknown, unknown, unknown>,
  plan: RunPlan,
  store: TaskStore["Type"],
  clock: Clock.Clock,
  samples: Samples
): StageSpec => {
  const persist = (unit: Unit, index: number, fields: ScoreFields) => {
    // Object.assign, not a spread: V8 turns a spread of a record this wide into a dictionary-mode
    // object that takes twice the memory, and a store may hold hundreds of thousands of them.
    const record: Mutable<SampleRecord> = Object.assign({}, samples.records[index]!)
    record.metrics = fields.metrics
    record.attempts = unit.attempts
    record.finishedAt = clock.unsafeCurrentTimeMillis()
    if (fields.score !== undefined) record.score = fields.score
    if (fields.feedback !== undefined) record.feedback = fields.feedback
    if (fields.evalError !== undefined) record.evalError = fields.evalError
    if (fields.evalTrace !== undefined) record.evalTrace = fields.evalTrace
    samples.records[index] = record
    return store.putSample(record)
  }
  const persistAll = (unit: Unit, fields: ScoreFields) =>
    Effect.gen(function*() {
      for (let index = unit.start; index < unit.end; index++) yield* persist(unit, index, fields)
    })
  const onFailure = (unit: Unit, failure: Failed) =>
    persistAll(unit, { metrics: {}, evalError: failure.message, evalTrace: failure.trace })

  const score = task.score
  if (score !== undefined) {
    return {
      call: (unit) => score(samples.rows[unit.start], storedOutput(samples.records[unit.start]!), plan),
      onSuccess: (unit, value) => persist(unit, unit.start, castScore(value, "score")),
      onFailure
    }
  }
  const scoreBatch = task.scoreBatch!
  return {
    call: (unit) =>
      scoreBatch(
        samples.rows.slice(unit.start, unit.end),
        samples.records.slice(unit.start, unit.end).map((record) => storedOutput(record!)),
        plan
      ),
    onSuccess: (unit, value) => {
      const mismatch = batchMismatch("scoreBatch", value, unit.end - unit.start)
      if (mismatch !== undefined) return persistAll(unit, { metrics: {}, evalError: mismatch, evalTrace: mismatch })
      const results = value as ReadonlyArray<unknown>
      return Effect.gen(function*() {
        for (let index = unit.start; index < unit.end; index++) {
          yield* persist(unit, index, castScore(results[index - unit.start], "scoreBatch"))
        }
      })
    },
    onFailure
  }
}
