/**
 * The sidecar: serves an eval stack to an untrusted optimizer over HTTP (`SidecarApi`), and the
 * verifier's routes to whoever holds the admin token.
 *
 * - The token is random (32 bytes), written to `tokenFile` with mode 0600 when the sidecar starts,
 *   and compared in constant time.
 * - Bodies are decoded by schema, strictly: malformed JSON, a missing or mistyped field and a field
 *   the API does not know (at any depth) are 400 `InvalidRequest` naming the field, before anything
 *   is charged. A body over `maxBodyBytes` is refused with 413: before it is read when its length is
 *   sent, else once it is read (keeping at most the limit; past 1 MiB, or 16 times the limit if more,
 *   it is not read on and the connection is closed).
 * - Every error is a JSON body with `_tag` and `message`, also for unknown routes (404) and for
 *   defects (500 `InternalError`, whose cause goes to the log, not to the caller).
 * - Responses are projected by tier (`View`); `/status` never lists a `no_access` split, and shows a
 *   thresholdout split's overfitting budget. Under a release mechanism only the released mean is shown.
 * - `POST /eval` with `async: true` answers 202 with a job id once the evaluation is charged, and
 *   `GET /eval/{jobId}` tells the job's state and result (`Jobs`); jobs outlive their clients.
 * - `/compare` pairs two of the optimizer's runs of a `viewable` split (`Compare.runs`), one at a time.
 * - Every evaluation the optimizer makes is also written to `resultsDir` by tier (`Results`).
 * - Every request is logged in a line (method, path, status, milliseconds, error tag) through the
 *   Effect logger: at info level, the polled `/health` and `/status` at debug level. A stack with a
 *   tracer of its own (an exporter's) gets a span per request but for those two; Effect's default
 *   tracer, which keeps spans nowhere, gets none.
 * - The polled `GET /health` and `GET /status` are answered ahead of the router, with what the API's
 *   handlers answer: a poller costs next to nothing more than the HTTP server itself.
 * - The operator's viewer (`Viewer`) is served under `/view`, behind the admin token (a bearer
 *   header, or a browser session opened with the token on its login form); `view: false` leaves it out.
 * - All state lives in the stack's `Ledger` and `TaskStore`: a restarted sidecar on the same store
 *   has the same budgets, runs, submission and finalize answer.
 *
 * @since 0.1.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import type * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Path from "@effect/platform/Path"
import { type DatasetSource, type Engine, HoldoutError, type Ledger, type SplitAccess, TaskStore } from "@holdout/core"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Agent from "./Agent.js"
import { constantTimeEquals } from "./internal/constantTime.js"
import * as Jobs from "./Jobs.js"
import type { EvalResponse, JobAccepted } from "./SidecarApi.js"
import { Api, Authorization, EvalPayload, PayloadTooLarge, Status, SubmitRequest } from "./SidecarApi.js"
import * as Verifier from "./Verifier.js"
import * as Viewer from "./Viewer.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Where the admin token is written (mode 0600); the verifier reads it from there. */
  readonly tokenFile: string
  /** Where the optimizer's results are written by tier (default: none are written). */
  readonly resultsDir?: string
  /** The largest request body accepted, in bytes (default 64 KiB). */
  readonly maxBodyBytes?: number
  /** Serve the operator's viewer under `/view`, behind the admin token (default true). */
  readonly view?: boolean
}

/**
 * A fresh admin token, written to `file` with mode 0600 (atomically: a reader never sees half).
 *
 * @since 0.1.0
 * @category constructors
 */
export const writeToken = (
  file: string
): Effect.Effect<string, HoldoutError.StoreError, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const bytes = crypto.getRandomValues(new Uint8Array(32))
    const token = btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")
    yield* fs.makeDirectory(path.dirname(file), { recursive: true })
    const temp = `${file}.tmp`
    yield* fs.remove(temp).pipe(Effect.ignore)
    yield* fs.writeFileString(temp, token + "\n", { mode: 0o600 })
    yield* fs.chmod(temp, 0o600)
    yield* fs.rename(temp, file)
    return token
  }).pipe(
    Effect.mapError((error) =>
      new HoldoutError.StoreError({
        op: "writeToken",
        message: `Could not write the token file ${file}: ${error.message}`
      })
    )
  )

/** The verifier's credentials: a well-formed `Bearer` header carrying the token. */
const authorization = (token: string) =>
  Layer.succeed(Authorization, {
    bearer: (presented) =>
      Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
        (request.headers["authorization"] ?? "").startsWith("Bearer ") &&
          constantTimeEquals(Redacted.value(presented), token)
          ? Effect.void
          : Effect.fail(new HoldoutError.Unauthorized()))
  })

/** Why a body over the limit is refused. */
const tooLarge = (bytes: number, maxBytes: number): string =>
  `The request body is ${bytes} bytes; at most ${maxBytes} are accepted. Send a smaller one.`

const unreadable = () =>
  new HoldoutError.InvalidRequest({ message: "The request body could not be read; send it again as JSON." })

/** How far a body sent without a length is read past the limit before its connection is closed. */
const drainBytes = (maxBytes: number): number => Math.max(1024 * 1024, 16 * maxBytes)

/**
 * The text of a body sent without a length header (chunked): read to its end keeping at most
 * `maxBytes` of it, so that one over the limit is answered 413 instead of cut off. Past
 * `drainBytes` it is not read on, and the platform closes its connection.
 */
const unsizedText = (
  request: HttpServerRequest.HttpServerRequest,
  maxBytes: number
): Effect.Effect<string, HoldoutError.InvalidRequest | PayloadTooLarge> =>
  Effect.suspend(() => {
    // a character split between two chunks is decoded whole (`stream: true`)
    const decoder = new TextDecoder()
    let text = ""
    let bytes = 0
    return request.stream.pipe(
      Stream.runForEachWhile((chunk) =>
        Effect.sync(() => {
          bytes += chunk.length
          if (bytes <= maxBytes) text += decoder.decode(chunk, { stream: true })
          return bytes <= drainBytes(maxBytes)
        })
      ),
      Effect.mapError(unreadable),
      Effect.flatMap(() =>
        bytes > maxBytes
          ? Effect.fail(new PayloadTooLarge({ message: tooLarge(bytes, maxBytes) }))
          : Effect.succeed(text + decoder.decode())
      )
    )
  })

/**
 * The text of a request's body: with a length header, read whole (`limitBody` has refused it if it
 * was over the limit); without one, read with the limit (`unsizedText`).
 */
const bodyText = (
  request: HttpServerRequest.HttpServerRequest
): Effect.Effect<string, HoldoutError.InvalidRequest | PayloadTooLarge> =>
  request.headers["content-length"] !== undefined
    ? Effect.mapError(request.text, unreadable)
    : Effect.flatMap(HttpIncomingMessage.MaxBodySize, (maxBytes) =>
      Option.isSome(maxBytes)
        ? unsizedText(request, Number(maxBytes.value))
        : Effect.mapError(request.text, unreadable))

/**
 * Reads and decodes a request body as JSON, strictly (the payload schemas refuse unknown fields).
 * The endpoints that use it are served with `handleRaw`, so that malformed JSON and schema errors
 * are `InvalidRequest`s with a message, like every other refusal, instead of the builder's defaults.
 */
const decodeBody = <A, I>(schema: Schema.Schema<A, I>) => {
  const decode = Schema.decodeUnknown(Schema.parseJson(schema), { errors: "all", onExcessProperty: "error" })
  return (
    request: HttpServerRequest.HttpServerRequest
  ): Effect.Effect<A, HoldoutError.InvalidRequest | PayloadTooLarge> =>
    Effect.flatMap(bodyText(request), (text) =>
      decode(text).pipe(
        Effect.mapError((error) =>
          new HoldoutError.InvalidRequest({
            message:
              `The request body is not valid: ${
                Agent.describeIssues(ParseResult.ArrayFormatter.formatErrorSync(error))
              }. ` +
              `Fix it and send it again; nothing was charged or recorded.`
          })
        )
      ))
}

const decodeEval = decodeBody(EvalPayload)
const decodeSubmit = decodeBody(SubmitRequest)

const logStoreErrors = Agent.logStoreErrors

/** The largest request body accepted when `Options.maxBodyBytes` does not say (64 KiB). */
const defaultMaxBodyBytes = 64 * 1024

/**
 * The JSON answer of a value, encoded by `schema` once for as long as the same value is answered: a
 * polled route whose value has not changed (`Agent.status`) costs no encoding.
 */
const answerOnce = <A, I>(schema: Schema.Schema<A, I>) => {
  const encode = Schema.encode(schema)
  let last: { readonly value: A; readonly response: HttpServerResponse.HttpServerResponse } | undefined
  return (value: A): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
    last !== undefined && last.value === value ? Effect.succeed(last.response) : Effect.map(
      Effect.orDie(encode(value)),
      (encoded) => {
        const response = HttpServerResponse.unsafeJson(encoded)
        last = { value, response }
        return response
      }
    )
}

/**
 * The answers of the routes a client polls, keyed by path (`GET` only): the API's handlers give
 * them, and `answerPolled` gives the same ones ahead of the router.
 */
interface Polled {
  readonly "/health": Effect.Effect<HttpServerResponse.HttpServerResponse>
  readonly "/status": Effect.Effect<HttpServerResponse.HttpServerResponse, HoldoutError.StoreError>
}

const healthAnswer = HttpServerResponse.unsafeJson({ ok: true })

const polledAnswers = (agent: Agent.Agent): Polled => {
  const statusAnswer = answerOnce(Status)
  return { "/health": Effect.succeed(healthAnswer), "/status": Effect.flatMap(agent.status(), statusAnswer) }
}

/**
 * Serves `GET /health` and `GET /status` (the exact paths) before the router: a poller is answered
 * without the routing and the API's handler, which cost more than the answer itself. Every other
 * request goes to `app`, and so does a polled one whose answer fails, which the API then answers
 * with its error.
 */
const answerPolled = (polled: Polled) => <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const answer = request.method === "GET" && Object.hasOwn(polled, request.url)
      ? polled[request.url as keyof Polled]
      : undefined
    return answer === undefined ? app : Effect.catchAll(answer, () => app)
  })

/** The optimizer's routes: each one an operation of `Agent`, which the MCP tools share. */
const agentHandlers = (agent: Agent.Agent, jobs: Jobs.Jobs, polled: Polled) =>
  HttpApiBuilder.group(Api, "agent", (handlers) =>
    handlers
      .handle("health", () => polled["/health"])
      .handleRaw("eval", ({ request }) =>
        Effect.flatMap(
          decodeEval(request),
          ({ async, ...payload }): Effect.Effect<
            typeof EvalResponse.Type | typeof JobAccepted.Type,
            Engine.EvaluateError
          > => async === true ? jobs.start(payload) : agent.evaluate(payload)
        ))
      .handle("job", ({ path: { jobId } }) => logStoreErrors(jobs.get(jobId)))
      .handle("samples", ({ path: { runId }, urlParams }) => agent.samples(runId, urlParams))
      .handle("compare", ({ urlParams }) => agent.compare(urlParams.runA, urlParams.runB))
      .handle("runs", () => agent.runs())
      .handle("show", ({ path: { runId }, urlParams }) => agent.show(runId, urlParams))
      .handle("status", () => polled["/status"])
      .handleRaw("submit", ({ request }) =>
        Effect.flatMap(decodeSubmit(request), (payload) => agent.submit(payload.candidate))))

const adminHandlers = HttpApiBuilder.group(Api, "admin", (handlers) =>
  Effect.gen(function*() {
    const store = yield* TaskStore.TaskStore
    const verifier = yield* Verifier.Verifier
    return handlers
      .handle("finalize", () => logStoreErrors(verifier.finalize()))
      .handle("experiments", () =>
        Effect.gen(function*() {
          // a finished run carries its metrics: no sample is read
          const experiments = (yield* store.listRuns()).map((run) => ({
            runId: run.runId,
            candidateId: run.candidate.id,
            datasetId: run.datasetId,
            split: run.split,
            admin: run.admin,
            status: run.status,
            createdAt: run.createdAt,
            metrics: run.metrics ?? null
          }))
          return { experiments }
        }).pipe(logStoreErrors))
  }))

/**
 * Refuses a body over the limit (413) from its length header, before it is read. A body without one
 * is read with the limit (`bodyText`), which `HttpIncomingMessage.MaxBodySize`, provided with the
 * server, tells.
 */
const limitBody = (maxBytes: number) => <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const length = Number(request.headers["content-length"] ?? "0")
    return Number.isFinite(length) && length > maxBytes
      ? Effect.succeed(HttpServerResponse.unsafeJson(
        { _tag: "PayloadTooLarge", message: tooLarge(length, maxBytes) },
        { status: 413 }
      ))
      : app
  })

/** The `_tag` of an error response's JSON body (bodies of errors are small), if it has one. */
const errorTagOf = (response: HttpServerResponse.HttpServerResponse): string | undefined => {
  if (response.status < 400 || response.body._tag !== "Uint8Array") return undefined
  try {
    const parsed: unknown = JSON.parse(new TextDecoder().decode(response.body.body))
    return typeof parsed === "object" && parsed !== null && "_tag" in parsed && typeof parsed._tag === "string"
      ? parsed._tag
      : undefined
  } catch {
    return undefined
  }
}

/**
 * A log line per request, through the Effect logger: `POST /eval 429 12ms BudgetExhausted`, with the
 * same fields as annotations (method, path, status, ms, error). The routes a client polls are logged
 * at debug level, every other at info; a request whose level the logger leaves out costs nothing more.
 */
const requestLog = <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const path = request.url.split("?")[0] ?? request.url
    const level = pollRoutes.includes(path) ? LogLevel.Debug : LogLevel.Info
    return Effect.flatMap(
      FiberRef.get(FiberRef.currentMinimumLogLevel),
      (minimum) => LogLevel.lessThan(level, minimum) ? app : logged(app, request.method, path, level)
    )
  })

/** Serves `app` and logs its answer at `level`. */
const logged = <E, R>(
  app: HttpApp.Default<E, R>,
  method: string,
  path: string,
  level: LogLevel.LogLevel
): HttpApp.Default<E, R> =>
  Effect.gen(function*() {
    const started = yield* Clock.currentTimeMillis
    const exit = yield* Effect.exit(app)
    const ms = (yield* Clock.currentTimeMillis) - started
    const status = Exit.isSuccess(exit) ? exit.value.status : 500
    const error = Exit.isSuccess(exit) ? errorTagOf(exit.value) : "InternalError"
    yield* Effect.logWithLevel(level, `${method} ${path} ${status} ${ms}ms${error === undefined ? "" : ` ${error}`}`)
      .pipe(Effect.annotateLogs({ method, path, status, ms, ...(error === undefined ? {} : { error }) }))
    return yield* exit
  })

/** Effect's own tracer, which keeps its spans nowhere (a stack that installs none has it). */
const untraced = Effect.runSync(Effect.tracer)

/**
 * The routes a client polls: logged at debug level, served without a tracing span of their own, and
 * answered ahead of the router (`answerPolled`).
 */
const pollRoutes: ReadonlyArray<string> = ["/health", "/status"] satisfies ReadonlyArray<keyof Polled>

const routes =
  "GET /health, POST /eval, GET /eval/{jobId}, GET /runs, GET /runs/{runId}, GET /runs/{runId}/samples, GET /compare, GET /status, POST /submit, " +
  "POST /finalize, GET /experiments, GET /openapi.json"

/**
 * What the API's own error encoding leaves over, as JSON with `_tag` and `message`: an unknown route
 * (404), a body the platform could not read (400), and defects (500, the cause logged and not shown).
 */
const jsonErrors = <R>(app: HttpApp.Default<never, R>): HttpApp.Default<never, R> =>
  Effect.catchAllCause(app, (cause) =>
    Effect.gen(function*() {
      if (Cause.isInterruptedOnly(cause)) return yield* Effect.failCause(cause)
      const error = Cause.squash(cause)
      if (HttpServerError.isServerError(error) && error._tag === "RouteNotFound") {
        const request = yield* HttpServerRequest.HttpServerRequest
        return HttpServerResponse.unsafeJson({
          _tag: "RouteNotFound",
          message: `No route ${request.method} ${request.url.split("?")[0]}. The sidecar serves ${routes}.`
        }, { status: 404 })
      }
      if (HttpServerError.isServerError(error) && error._tag === "RequestError") {
        return HttpServerResponse.unsafeJson({
          _tag: "InvalidRequest",
          message: "The request could not be read; send it again (JSON bodies, at most the size limit)."
        }, { status: 400 })
      }
      yield* Effect.logError("Sidecar: a request failed unexpectedly", cause)
      return HttpServerResponse.unsafeJson({
        _tag: "InternalError",
        message: "The sidecar failed unexpectedly; the cause is in its log. Retry later or tell the operator."
      }, { status: 500 })
    }))

/**
 * The sidecar, served on the `HttpServer` it is given.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<
  never,
  HoldoutError.StoreError,
  | HttpServer.HttpServer
  | HttpRouter.HttpRouter.DefaultServices
  | Engine.Engine
  | Ledger.Ledger
  | TaskStore.TaskStore
  | SplitAccess.SplitAccess
  | Verifier.Verifier
  | DatasetSource.DatasetSource
  | FileSystem.FileSystem
  | Path.Path
> =>
  Layer.unwrapScoped(Effect.gen(function*() {
    const token = yield* writeToken(options.tokenFile)
    yield* Effect.logInfo(`Sidecar: the verifier's token is in ${options.tokenFile}`)
    // A span per request only when the stack has a tracer that keeps spans (an exporter's): Effect's
    // own keeps them nowhere, and the request's span, its attributes and its place in every effect's
    // context cost a tenth of a small evaluation. The polled routes make none either way: a poller's
    // spans would drown the evaluations' ones.
    const tracing = (yield* Effect.tracer) !== untraced
    const agent = yield* Agent.make(options.resultsDir === undefined ? {} : { resultsDir: options.resultsDir })
    const jobs = yield* Jobs.make(agent)
    const polled = polledAnswers(agent)
    const api = HttpApiBuilder.api(Api).pipe(
      Layer.provide(agentHandlers(agent, jobs, polled)),
      Layer.provide(adminHandlers),
      Layer.provide(authorization(token))
    )
    // `HttpApiBuilder.serve`, except that `jsonErrors` wraps the API's app itself: a middleware given
    // to `serve` runs after the platform has already answered what the API left unanswered
    const served = HttpApiBuilder.httpApp.pipe(
      Effect.map((app) =>
        HttpServer.serve(
          jsonErrors(answerPolled(polled)(app)),
          (app) => requestLog(limitBody(options.maxBodyBytes ?? defaultMaxBodyBytes)(app))
        )
      ),
      Layer.unwrapEffect,
      Layer.provide(Layer.succeed(
        HttpIncomingMessage.MaxBodySize,
        Option.some(FileSystem.Size(options.maxBodyBytes ?? defaultMaxBodyBytes))
      )),
      HttpMiddleware.withTracerDisabledWhen((request) => !tracing || pollRoutes.includes(request.url)),
      Layer.provide([
        options.view === false
          ? HttpApiBuilder.Router.Live
          : Layer.provideMerge(Viewer.layerMount({ token }), HttpApiBuilder.Router.Live),
        HttpApiBuilder.Middleware.layer
      ])
    )
    return served.pipe(
      Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/openapi.json" })),
      Layer.provide(api)
    )
  }))
