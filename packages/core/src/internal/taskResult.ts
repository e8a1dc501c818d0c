/**
 * What task functions return, decoded with `Schema` into the fields of a sample record. A value
 * of the wrong shape is not a failure of the run: it becomes the sample's error, with a message
 * that names the function, what it returned and the shape it must return.
 */
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Task from "../Task.js"
import { describe, messageOf, traceOf } from "./failure.js"

type Mutable<A> = { -readonly [K in keyof A]: A[K] }

/**
 * The inference fields of a record.
 *
 * @internal
 */
export interface InferenceFields {
  readonly output: unknown
  readonly trace?: unknown
  readonly error?: string
  readonly errorTrace?: string
}

/**
 * The scoring fields of a record.
 *
 * @internal
 */
export interface ScoreFields {
  readonly score?: number
  readonly feedback?: string
  readonly metrics: Record<string, number>
  readonly evalError?: string
  readonly evalTrace?: unknown
}

/** A leaf that, when it does not match, says what it got and what it is not. */
const expecting = <S extends Schema.Schema.Any>(schema: S, what: string): S =>
  schema.annotations({
    message: (issue) => ({ message: `${describe(issue.actual)}, which is not ${what}`, override: true })
  }) as S

const FiniteNumber = expecting(Schema.Finite, "a finite number")
const Text = expecting(Schema.String, "a string")

/** The object form of a score (`Task.Score`); unknown keys are ignored. */
const ScoreObject = Schema.Struct({
  score: Schema.optional(FiniteNumber),
  feedback: Schema.optional(Text),
  metrics: Schema.optional(
    Schema.Record({ key: Schema.String, value: FiniteNumber }).annotations({
      message: (issue) => `${describe(issue.actual)}, which is not a record of numbers`
    })
  ),
  evalError: Schema.optional(Text),
  evalTrace: Schema.optional(Schema.Unknown)
})

/** The fields of a value made by `Task.output`. */
const OutputFields = Schema.Struct({
  value: Schema.Unknown,
  trace: Schema.optional(Schema.Unknown),
  error: Schema.optional(
    expecting(Schema.Union(Schema.String, Schema.instanceOf(Error)), "a string or an Error")
  )
})

const decodeScoreNumber = Schema.decodeUnknownEither(FiniteNumber)
const decodeScoreObject = Schema.decodeUnknownEither(ScoreObject, { errors: "first" })
const decodeOutputFields = Schema.decodeUnknownEither(OutputFields, { errors: "first" })
const decodeArray = Schema.decodeUnknownEither(Schema.Array(Schema.Unknown))

/** The first problem of a decoding failure: `at` the path when there is one, and what is wrong. */
const problem = (error: ParseResult.ParseError, at: (path: string) => string): string => {
  const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
  if (issue === undefined) return "a value of the wrong shape"
  return issue.path.length === 0 ? issue.message : `${at(issue.path.join("."))}${issue.message}`
}

const kind = (value: unknown): string =>
  value === null ? "null" : Array.isArray(value) ? "an array" : value === undefined ? "undefined" : `a ${typeof value}`

const errorFields = (error: unknown, fallback: string): { readonly error: string; readonly errorTrace: string } => {
  const message = typeof error === "string" ? (error.length > 0 ? error : fallback) : messageOf(error)
  return { error: message, errorTrace: error instanceof Error ? traceOf(error, message) : message }
}

/**
 * The inference fields of what `fn` returned: a `Task.output(...)`, an `Error` (the sample failed)
 * or the output itself (`undefined` is stored as `null`).
 *
 * @internal
 */
export const decodeOutput = (value: unknown, fn: string): InferenceFields => {
  if (value instanceof Error) return { output: null, ...errorFields(value, "") }
  if (!Task.isOutput(value)) return { output: value === undefined ? null : value }
  const decoded = decodeOutputFields(value)
  if (Either.isLeft(decoded)) {
    const message = `${fn} returned Task.output(...) whose ${problem(decoded.left, (path) => `${path} is `)}.`
    return { output: null, error: message, errorTrace: message }
  }
  const fields: Mutable<InferenceFields> = { output: decoded.right.value === undefined ? null : decoded.right.value }
  if (decoded.right.trace !== undefined) fields.trace = decoded.right.trace
  if (decoded.right.error !== undefined) {
    Object.assign(fields, errorFields(decoded.right.error, "Inference reported an error without a message."))
  }
  return fields
}

const scoreShape = "a number or { score?, feedback?, metrics?, evalError?, evalTrace? }"

/**
 * The scoring fields of what `fn` returned: a finite number (the score), a `Task.Score` object, or
 * an `Error` (scoring failed).
 *
 * @internal
 */
export const decodeScore = (value: unknown, fn: string): ScoreFields => {
  const invalid = (what: string): ScoreFields => {
    const message = `${fn} returned ${what}; it must return ${scoreShape}.`
    return { metrics: {}, evalError: message, evalTrace: message }
  }
  if (typeof value === "number") {
    // the common case needs no decoding
    if (Number.isFinite(value)) return { score: value, metrics: {} }
    const score = decodeScoreNumber(value)
    return Either.isRight(score) ? { score: score.right, metrics: {} } : invalid(problem(score.left, String))
  }
  if (value instanceof Error) {
    const message = messageOf(value)
    return { metrics: {}, evalError: message, evalTrace: traceOf(value, message) }
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return invalid(kind(value))
  const decoded = decodeScoreObject(value)
  if (Either.isLeft(decoded)) return invalid(`an object whose ${problem(decoded.left, (path) => `${path} is `)}`)
  const raw = decoded.right
  const fields: Mutable<ScoreFields> = { metrics: raw.metrics === undefined ? {} : { ...raw.metrics } }
  if (raw.score !== undefined) fields.score = raw.score
  if (raw.feedback !== undefined) fields.feedback = raw.feedback
  if (raw.evalError !== undefined) {
    fields.evalError = raw.evalError.length > 0 ? raw.evalError : "Scoring reported an error without a message."
  }
  if (raw.evalTrace !== undefined) fields.evalTrace = raw.evalTrace
  return fields
}

/**
 * The results of a batch call of `fn` for `count` samples, or why they cannot be paired with the
 * samples (not an array, or not one result per sample).
 *
 * @internal
 */
export const decodeBatch = (
  value: unknown,
  fn: string,
  count: number
): Either.Either<ReadonlyArray<unknown>, string> => {
  const results = decodeArray(value)
  if (Either.isLeft(results)) {
    return Either.left(
      `${fn} returned ${kind(value)} for a chunk of ${count} samples; it must return an array with one result ` +
        `per sample, in order.`
    )
  }
  if (results.right.length !== count) {
    return Either.left(
      `${fn} returned ${results.right.length} results for ${count} samples; results are paired with samples by ` +
        `position, so the whole chunk is marked as failed. Return exactly one result per sample, in order.`
    )
  }
  return Either.right(results.right)
}
