/**
 * Every failure of a command is one line on stderr, `error: …`, the cause first and then what to do,
 * and exit code 1: never a stack trace. Foreign errors get a sentence of their own (no sidecar at an
 * address, a port in use, an answer that does not decode); a name that is almost a known one gets a
 * "did you mean".
 */
import * as HttpClientError from "@effect/platform/HttpClientError"
import { Stack } from "@holdout/core"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"

/**
 * A command was used wrongly (a missing or malformed option): what was wrong and what to write.
 *
 * @since 0.1.0
 * @category errors
 */
export class UsageError extends Schema.TaggedError<UsageError>()("UsageError", { message: Schema.String }) {}

/**
 * An error of the sidecar or the engine with a hint added (the closest split name): printed as the
 * error it wraps, `<tag>: <message>`.
 *
 * @since 0.1.0
 * @category errors
 */
export class Hinted extends Schema.TaggedError<Hinted>()("Hinted", { tag: Schema.String, message: Schema.String }) {}

/**
 * The closest of `known` to `name` when it is close enough to be a typo, as ` Did you mean "x"?`.
 *
 * @since 0.1.0
 * @category formatting
 */
export const didYouMean = (name: string, known: Iterable<string>): string => {
  const match = Stack.closestName(name, Array.from(known).filter((candidate) => candidate !== name))
  return match === undefined ? "" : ` Did you mean "${match}"?`
}

const firstLine = (text: string) => text.split("\n").find((line) => line.trim().length > 0)?.trim() ?? ""

const hasTag = (error: unknown): error is { readonly _tag: string } =>
  typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string"

const messageOf = (error: unknown): string =>
  typeof error === "object" && error !== null && "message" in error && typeof error.message === "string"
    ? error.message
    : ""

/** The URL a request went to, without its path: the sidecar's address. */
const originOf = (url: string) => {
  try {
    return new URL(url).origin
  } catch {
    return url
  }
}

/**
 * The system error code (`ECONNREFUSED`, `ENOTFOUND`, …) anywhere in a cause chain: `fetch` wraps
 * Node's error in a `TypeError`, Node's `http` module gives it as it is, and a connection tried on
 * several addresses gives an `AggregateError` of them.
 */
const systemCodeOf = (cause: unknown): string | undefined => {
  const seen = new Set<unknown>()
  const pending: Array<unknown> = [cause]
  let found: string | undefined
  while (pending.length > 0) {
    const next = pending.shift()
    if (typeof next !== "object" || next === null || seen.has(next)) continue
    seen.add(next)
    if ("code" in next && typeof next.code === "string" && /^E[A-Z0-9_]+$/.test(next.code)) {
      if (next.code === "ECONNREFUSED") return next.code
      found ??= next.code
    }
    if ("cause" in next) pending.push(next.cause)
    if ("errors" in next && Array.isArray(next.errors)) {
      for (const inner of next.errors as ReadonlyArray<unknown>) pending.push(inner)
    }
  }
  return found
}

/**
 * What a command failed with, as one line (without the `error: ` prefix).
 *
 * @since 0.1.0
 * @category formatting
 */
export const describe = (error: unknown): string => {
  if (HttpClientError.isHttpClientError(error)) {
    const origin = originOf(error.request.url)
    if (error._tag === "RequestError" && error.reason === "Transport") {
      const code = systemCodeOf(error.cause)
      const how = code === "ECONNREFUSED"
        ? "the connection was refused"
        : `the connection failed${code === undefined ? "" : `, ${code}`}`
      return `no sidecar at ${origin} (${how}): start one with \`holdout serve -c holdout.yaml\`, ` +
        `or set HOLDOUT_URL (or --url) to where it listens.`
    }
    if (error._tag === "ResponseError") {
      return `the sidecar at ${origin} answered ${error.methodAndUrl.split(" ")[0]} ${
        new URL(error.request.url).pathname
      } with ${error.response.status}, which this client does not understand: is it a Holdout sidecar of the ` +
        `same version?`
    }
    return `the request to ${origin} could not be made (${error.reason}): check the address in HOLDOUT_URL or --url.`
  }
  if (ParseResult.isParseError(error)) {
    const [issue] = ParseResult.ArrayFormatter.formatErrorSync(error)
    return issue === undefined
      ? "ParseError: an answer did not have the expected shape."
      : `ParseError: ${issue.path.length === 0 ? "" : `"${issue.path.join(".")}" `}${firstLine(issue.message)}`
  }
  if (error instanceof Hinted) return `${error.tag}: ${firstLine(error.message)}`
  if (hasTag(error)) {
    let message = firstLine(messageOf(error))
    if (error._tag === "UnknownSplit" && "known" in error && Array.isArray(error.known) && "split" in error) {
      message += didYouMean(String(error.split), error.known as ReadonlyArray<string>)
    }
    return message.length === 0 ? error._tag : `${error._tag}: ${message}`
  }
  if (error instanceof Error) return firstLine(error.message) || error.name
  return firstLine(String(error))
}

/**
 * Runs a command's work: a failure is one line on stderr and exit code 1.
 *
 * @since 0.1.0
 * @category combinators
 */
export const handled = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<void, never, R> =>
  Effect.catchAll(Effect.asVoid(effect), (error) =>
    Effect.zipRight(
      Console.error(`error: ${describe(error)}`),
      Effect.sync(() => {
        process.exitCode = 1
      })
    ))
