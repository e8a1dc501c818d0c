/**
 * The sidecar: serves an eval stack to an untrusted optimizer over HTTP (`SidecarApi`), and the
 * verifier's routes to whoever holds the admin token.
 *
 * - The token is random (32 bytes), written to `tokenFile` with mode 0600 when the sidecar starts,
 *   and compared in constant time.
 * - Bodies are decoded by schema; a body over `maxBodyBytes` is refused with 413 before it is read.
 * - Responses are projected by tier (`View`); `/status` never lists a `no_access` split.
 * - Every evaluation the optimizer makes is also written to `resultsDir` by tier (`Results`).
 * - All state lives in the stack's `Ledger` and `TaskStore`: a restarted sidecar on the same store
 *   has the same budgets, runs, submission and finalize answer.
 *
 * @since 0.1.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import type * as HttpRouter from "@effect/platform/HttpRouter"
import type * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Path from "@effect/platform/Path"
import { Engine, HoldoutError, type SplitAccess, TaskStore, View } from "@holdout/core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Results from "./Results.js"
import { Api, Authorization } from "./SidecarApi.js"
import * as Verifier from "./Verifier.js"

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
}

/** Compares two strings in time that depends only on their lengths. */
const constantTimeEquals = (left: string, right: string): boolean => {
  const length = Math.max(left.length, right.length)
  let difference = left.length ^ right.length
  for (let index = 0; index < length; index++) {
    difference |= (left.charCodeAt(index) || 0) ^ (right.charCodeAt(index) || 0)
  }
  return difference === 0
}

/**
 * A fresh admin token, written to `file` with mode 0600 (atomically: a reader never sees half).
 *
 * @since 0.1.0
 * @category constructors
 */
export const writeToken = (file: string): Effect.Effect<string, HoldoutError.StoreError, FileSystem.FileSystem | Path.Path> =>
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
    Effect.mapError((error) => new HoldoutError.StoreError({ op: "writeToken", message: `Could not write the token file ${file}: ${error.message}` }))
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

const agentHandlers = (resultsDir: string | undefined) =>
  HttpApiBuilder.group(Api, "agent", (handlers) =>
    Effect.gen(function*() {
      const engine = yield* Engine.Engine
      const verifier = yield* Verifier.Verifier
      const context = yield* Effect.context<SplitAccess.SplitAccess | FileSystem.FileSystem | Path.Path>()
      const submitEnabled = verifier.mode === "submit"
      return handlers
        .handle("health", () => Effect.succeed({ ok: true }))
        .handle("eval", ({ payload }) =>
          Effect.gen(function*() {
            const experiment = yield* engine.evaluate(payload)
            const view = yield* View.experiment(experiment).pipe(Effect.provide(context))
            const resultPath = resultsDir === undefined
              ? Option.none()
              : yield* Results.write(resultsDir, experiment).pipe(Effect.provide(context))
            const split = (yield* engine.status()).find((entry) =>
              entry.datasetId === payload.datasetId && entry.split === payload.split
            )
            return {
              experiment: view,
              resultPath: Option.getOrNull(resultPath),
              remaining: split === undefined ? null : split.remaining
            }
          }))
        .handle("status", () =>
          Effect.map(engine.status(), (splits) => ({
            submitEnabled,
            splits: splits.flatMap((entry) =>
              entry.tier === "no_access" ? [] : [{
                datasetId: entry.datasetId,
                split: entry.split,
                tier: entry.tier,
                limits: entry.limits,
                spent: entry.spent,
                remaining: entry.remaining
              }]
            )
          })))
        .handle("submit", ({ payload }) =>
          submitEnabled
            ? Effect.map(verifier.submit(payload.candidate), (submitted) => ({ submitted }))
            : Effect.fail(new HoldoutError.InvalidRequest({
              message: "Submissions are disabled: the verifier picks the best candidate itself (auto_best)."
            })))
    }))

const adminHandlers = HttpApiBuilder.group(Api, "admin", (handlers) =>
  Effect.gen(function*() {
    const store = yield* TaskStore.TaskStore
    const verifier = yield* Verifier.Verifier
    return handlers
      .handle("finalize", () => verifier.finalize())
      .handle("experiments", () =>
        Effect.gen(function*() {
          // a finished run carries its metrics: no sample is read
          const experiments = (yield* store.listRuns()).filter((run) => !Verifier.isVerifierRecord(run)).map((run) => ({
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
        }))
  }))

/** Refuses a body over the limit (413) from its length header, and caps what is read otherwise. */
const limitBody = (maxBytes: number) => <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const length = Number(request.headers["content-length"] ?? "0")
    if (Number.isFinite(length) && length > maxBytes) {
      return HttpServerResponse.unsafeJson(
        { _tag: "PayloadTooLarge", message: `The request body is ${length} bytes; at most ${maxBytes} are accepted.` },
        { status: 413 }
      )
    }
    return yield* HttpIncomingMessage.withMaxBodySize(app, Option.some(maxBytes))
  })

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
  | TaskStore.TaskStore
  | SplitAccess.SplitAccess
  | Verifier.Verifier
  | FileSystem.FileSystem
  | Path.Path
> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const token = yield* writeToken(options.tokenFile)
    yield* Effect.logInfo(`Sidecar: the verifier's token is in ${options.tokenFile}`)
    const api = HttpApiBuilder.api(Api).pipe(
      Layer.provide(agentHandlers(options.resultsDir)),
      Layer.provide(adminHandlers),
      Layer.provide(authorization(token))
    )
    return HttpApiBuilder.serve(limitBody(options.maxBodyBytes ?? 64 * 1024)).pipe(
      Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/openapi.json" })),
      Layer.provide(api)
    )
  }))
