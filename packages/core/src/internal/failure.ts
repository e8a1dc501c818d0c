/**
 * Failures of task calls: what one failed attempt recorded, a one-line message and a trace for any
 * failure value, the default rule of which failures are worth retrying, and the retry policy.
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"

/**
 * A failed attempt: the error value (for `isRetryable`), its message and its trace.
 *
 * @internal
 */
export class Failed {
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

/**
 * A value as JSON when it has a JSON form, else as `String` gives it (numbers always so: `NaN`).
 *
 * @internal
 */
export const describe = (u: unknown): string => {
  if (typeof u === "number") return String(u)
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

/**
 * The stack of an `Error`, else a line naming the thrown value.
 *
 * @internal
 */
export const traceOf = (error: unknown, message: string): string =>
  error instanceof Error && typeof error.stack === "string" && error.stack.length > 0
    ? error.stack
    : `Thrown value: ${message}`

/**
 * The failure of a thrown exception or a rejected Promise.
 *
 * @internal
 */
export const thrown = (error: unknown): Failed => {
  try {
    const message = messageOf(error)
    return new Failed(error, message, traceOf(error, message))
  } catch {
    const message = "A task function failed with a value that cannot be described."
    return new Failed(error, message, message)
  }
}

/**
 * The failure of an Effect that failed, died or was interrupted.
 *
 * @internal
 */
export const fromCause = (cause: Cause.Cause<unknown>): Failed => {
  const failure = Cause.failureOption(cause)
  if (failure._tag === "Some") return new Failed(failure.value, messageOf(failure.value), Cause.pretty(cause))
  const defect = Cause.dieOption(cause)
  if (defect._tag === "Some") return new Failed(defect.value, messageOf(defect.value), Cause.pretty(cause))
  return new Failed(cause, "The task's Effect was interrupted.", Cause.pretty(cause))
}

/**
 * The last failure of a unit, with the messages of the attempts before it appended to its trace.
 *
 * @internal
 */
export const withHistory = (failure: Failed, earlier: ReadonlyArray<string>): Failed => {
  if (earlier.length === 0) return failure
  const history = earlier.map((message, index) => `  attempt ${index + 1}: ${message}`).join("\n")
  return new Failed(failure.error, failure.message, `${failure.trace}\n\nEarlier attempts (retried):\n${history}`)
}

/**
 * The retry policy of `Effect.retry`.
 *
 * @internal
 */
export interface RetryPolicy {
  readonly schedule: Schedule.Schedule<unknown, Failed>
  readonly while: (failure: Failed) => boolean
}

/**
 * Retries up to `maxAttempts` attempts in all, for retryable failures only, waiting
 * `min(maxDelay, baseDelay · 2^(k - 1))` before attempt `k + 1`, jittered down by up to 20%.
 *
 * @internal
 */
export const retryPolicy = (
  settings: {
    readonly maxAttempts: number
    readonly baseDelayMs: number
    readonly maxDelayMs: number
    readonly isRetryable: (error: unknown) => boolean
  },
  strategy: string
): RetryPolicy => ({
  schedule: Schedule.exponential(Duration.millis(settings.baseDelayMs)).pipe(
    Schedule.modifyDelay((_, delay) => Duration.min(delay, Duration.millis(settings.maxDelayMs))),
    Schedule.jitteredWith({ min: 0.8, max: 1 }),
    Schedule.intersect(Schedule.recurs(settings.maxAttempts - 1)),
    Schedule.tapInput((failure: Failed) =>
      Effect.annotateLogs(Effect.logDebug(`Retrying a retryable failure: ${failure.message}`), { strategy })
    )
  ),
  while: (failure) => {
    try {
      return settings.isRetryable(failure.error) === true
    } catch {
      return false
    }
  }
})
