/**
 * `holdout view`: a read-only web viewer of a stack, for whoever runs it. One self-contained page
 * (inline script and styles, nothing fetched from elsewhere) shows the runs over time, the score per
 * candidate with 95% intervals, each budget's burn-down, the verifier's answer, the failed runs with
 * their first errors, a per-sample table (filter, sort, pages) and a candidate-vs-candidate diff.
 *
 * - JSON routes beside the page: `api/overview` (everything below at once), `api/runs`,
 *   `api/budgets`, `api/verifier`, `api/runs/:runId/samples?after&limit&status&text`,
 *   `api/compare?runA&runB`, and `api/events` (Server-Sent Events: `change` when runs change).
 * - The tier rule holds here too: per-sample results (the table, error messages, comparisons) are
 *   read and shown only for `viewable` splits; `non_viewable` and `no_access` runs are aggregates.
 * - `layer` serves it on an `HttpServer` (the CLI binds 127.0.0.1); `layerMount` adds it under
 *   `/view` to the sidecar's router, behind the admin token. `report` is the same page with its
 *   data embedded (what `holdout report --html` writes).
 *
 * @since 0.1.0
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import {
  type DatasetSource,
  type Engine,
  type HoldoutError,
  type Ledger,
  RunEvents,
  type SplitAccess,
  TaskStore
} from "@holdout/core"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { createServer } from "node:http"
import { constantTimeEquals } from "./internal/constantTime.js"
import * as Data from "./internal/viewer/data.js"
import * as Page from "./internal/viewer/page.js"
import * as Verifier from "./Verifier.js"

/**
 * What the viewer reads: the stack's engine (budget status), ledger (charges), store, tiers and
 * datasets (a split's size, to tell subset runs from whole-split ones).
 *
 * @since 0.1.0
 * @category models
 */
export type Services =
  | Engine.Engine
  | Ledger.Ledger
  | TaskStore.TaskStore
  | SplitAccess.SplitAccess
  | DatasetSource.DatasetSource

/**
 * Where live updates come from.
 *
 * - `events`: the stack's `RunEvents`, for a viewer in the process that makes the runs (the
 *   sidecar): every run it starts or finishes is pushed at once, and nothing polls the store.
 * - `poll`: the store's runs list, read every `interval`, for a viewer in its own process (`holdout
 *   view` beside a sidecar or `holdout run` sharing the store): another process's events do not
 *   reach this one, and the store is what they share. Reading the runs list reads no sample.
 *   A store shared across processes is the SQLite one; the file store is held by one process, so
 *   while a sidecar holds it, its viewer is the sidecar's `/view`.
 *
 * @since 0.1.0
 * @category models
 */
export type Updates =
  | { readonly _tag: "events" }
  | { readonly _tag: "poll"; readonly interval: Duration.DurationInput }

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly updates: Updates
  /** The page's title (default "Holdout"). */
  readonly title?: string
}

/**
 * The data behind the views.
 *
 * @since 0.1.0
 * @category models
 */
export type Overview = Data.Overview

/**
 * What a report embeds: the overview, the first samples of each viewable run and comparisons.
 *
 * @since 0.1.0
 * @category models
 */
export type Embedded = Data.Embedded

/**
 * The overview as the operator sees it: runs, scores, budgets with burn-down, failed runs, verifier.
 *
 * @since 0.1.0
 * @category constructors
 */
export const overview: Effect.Effect<Overview, HoldoutError.StoreError, Services> = Data.overview

/**
 * The data a report embeds.
 *
 * @since 0.1.0
 * @category constructors
 */
export const embedded: Effect.Effect<Embedded, HoldoutError.StoreError, Services> = Data.embedded

/**
 * The viewer's page with `data` embedded: self-contained, it makes no request at all (the report).
 *
 * @since 0.1.0
 * @category rendering
 */
export const reportPage = (data: Embedded, title: string = "Holdout report"): string =>
  Page.render({ title, embedded: data })

/**
 * The self-contained report page of a stack.
 *
 * @since 0.1.0
 * @category rendering
 */
export const report: Effect.Effect<string, HoldoutError.StoreError, Services> = Effect.map(
  embedded,
  (data) => reportPage(data)
)

const Count = Schema.NumberFromString.pipe(Schema.int(), Schema.nonNegative())

const SamplesQuery = Schema.Struct({
  after: Schema.optional(Count),
  limit: Schema.optionalWith(Count.pipe(Schema.between(1, 1000)), { default: () => 100 }),
  status: Schema.optionalWith(Schema.Literal("all", "errors", "wrong", "right"), { default: () => "all" as const }),
  text: Schema.optionalWith(Schema.String.pipe(Schema.maxLength(200)), { default: () => "" })
})

const CompareQuery = Schema.Struct({ runA: Schema.String, runB: Schema.String })

const json = (body: unknown, status = 200) =>
  HttpServerResponse.unsafeJson(body, { status, headers: { "cache-control": "no-store" } })

const failure = (tag: string, message: string, status: number) => json({ _tag: tag, message }, status)

/** Every refusal as JSON with `_tag` and `message`; a store failure is logged with its cause. */
const answered = <E extends { readonly _tag: string; readonly message: string }, R>(
  effect: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
) =>
  Effect.catchAll(effect, (error) => {
    switch (error._tag) {
      case "UnknownRun":
        return Effect.succeed(failure(error._tag, error.message, 404))
      case "AggregateOnly":
      case "AccessDenied":
        return Effect.succeed(failure(error._tag, error.message, 403))
      case "InvalidRequest":
      case "ParseError":
        return Effect.succeed(
          failure("InvalidRequest", `The query is not valid: ${error.message.split("\n")[0]}`, 400)
        )
      default:
        return Effect.as(
          Effect.logError("Viewer: reading the stack failed", error),
          failure(error._tag, `${error.message} (the viewer shows only what the store holds)`, 500)
        )
    }
  })

const encoder = new TextEncoder()
const frame = (text: string) => encoder.encode(text)

/**
 * A fingerprint of what the views show: the runs list (it changes when a run starts, advances or
 * ends) and the verifier's state (a submission makes no run).
 */
const fingerprint = (store: TaskStore.TaskStore["Type"]) =>
  Effect.all([
    Effect.map(
      store.listRuns(),
      (runs) => runs.map((run) => `${run.runId}:${run.status}:${run.progress?.samples ?? 0}`)
    ),
    Effect.map(store.getMeta(Verifier.stateKeys.submission), Option.isSome),
    Effect.map(store.getMeta(Verifier.stateKeys.answer), Option.isSome)
  ]).pipe(Effect.map(([runs, submitted, answered]) => [...runs, `${submitted}:${answered}`]))

/** The changes the page is told of, as `event: change` frames. */
const changes = (
  updates: Updates,
  context: Context.Context<TaskStore.TaskStore>
): Stream.Stream<string> => {
  if (updates._tag === "events") {
    return Stream.unwrapScoped(Effect.gen(function*() {
      const events = yield* Effect.serviceOption(RunEvents.RunEvents)
      if (Option.isNone(events)) return Stream.never
      const queue = yield* events.value.subscribe
      // a run's samples come fast: one frame per quarter second at most
      return Stream.fromQueue(queue).pipe(
        Stream.groupedWithin(10_000, "250 millis"),
        Stream.map((chunk) => JSON.stringify({ events: chunk.length }))
      )
    }))
  }
  const store = Context.get(context, TaskStore.TaskStore)
  const read = Effect.map(
    fingerprint(store).pipe(
      Effect.tapError((error) => Effect.logWarning("Viewer: could not read the runs list", error)),
      Effect.orElseSucceed(() => [] as ReadonlyArray<string>)
    ),
    (parts) => parts.join("|")
  )
  return Stream.repeatEffectWithSchedule(read, Schedule.spaced(updates.interval)).pipe(
    Stream.changes,
    Stream.drop(1),
    Stream.map(() => JSON.stringify({ runs: "changed" }))
  )
}

/**
 * The viewer's routes (the page at `/`, the JSON routes under `/api`), reading the services it was
 * built with. Its event streams end when the scope it was built in closes, so a server shuts down
 * with pages still open.
 *
 * @since 0.1.0
 * @category constructors
 */
export const router = (
  options: Options
): Effect.Effect<HttpRouter.HttpRouter, never, Services | Scope.Scope> =>
  Effect.gen(function*() {
    const context = yield* Effect.context<Services>()
    const verifier = yield* Effect.serviceOption(Verifier.Verifier)
    const events = yield* Effect.serviceOption(RunEvents.RunEvents)
    const withServices = <A, E>(effect: Effect.Effect<A, E, Services | Verifier.Verifier | RunEvents.RunEvents>) => {
      let provided = context as Context.Context<Services | Verifier.Verifier | RunEvents.RunEvents>
      if (Option.isSome(verifier)) provided = Context.add(provided, Verifier.Verifier, verifier.value)
      if (Option.isSome(events)) provided = Context.add(provided, RunEvents.RunEvents, events.value)
      return Effect.provide(effect, provided)
    }
    const closed = yield* Deferred.make<void>()
    yield* Effect.addFinalizer(() => Deferred.succeed(closed, undefined))
    const title = options.title ?? "Holdout"
    const page = HttpServerResponse.html(Page.render({ title })).pipe(
      HttpServerResponse.setHeaders({
        "content-security-policy": Page.contentSecurityPolicy(true),
        "cache-control": "no-store",
        "x-content-type-options": "nosniff"
      })
    )
    const overviewJson = (pick: (overview: Overview) => unknown) =>
      answered(withServices(Effect.map(Data.overview, (overview) => json(pick(overview)))))
    return HttpRouter.empty.pipe(
      HttpRouter.get("/", Effect.succeed(page)),
      HttpRouter.get("/api/overview", overviewJson((overview) => overview)),
      HttpRouter.get("/api/runs", overviewJson((overview) => ({ runs: overview.runs, scores: overview.scores }))),
      HttpRouter.get(
        "/api/budgets",
        overviewJson((overview) => ({ generatedAt: overview.generatedAt, budgets: overview.budgets }))
      ),
      HttpRouter.get("/api/verifier", answered(withServices(Effect.map(Data.verifierState, json)))),
      HttpRouter.get(
        "/api/runs/:runId/samples",
        answered(Effect.gen(function*() {
          const { runId } = yield* HttpRouter.schemaPathParams(Schema.Struct({ runId: Schema.String }))
          const query = yield* HttpServerRequest.schemaSearchParams(SamplesQuery)
          const page = yield* withServices(Data.samples(runId, {
            limit: query.limit,
            filter: { status: query.status, text: query.text },
            ...(query.after === undefined ? {} : { after: query.after })
          }))
          return json(page)
        }))
      ),
      HttpRouter.get(
        "/api/compare",
        answered(Effect.gen(function*() {
          const query = yield* HttpServerRequest.schemaSearchParams(CompareQuery)
          return json(yield* withServices(Data.compare(query.runA, query.runB)))
        }))
      ),
      HttpRouter.get(
        "/api/events",
        Effect.sync(() => {
          const keepAlive = Stream.map(Stream.tick("15 seconds"), () => ": keep-alive\n\n")
          const frames = Stream.map(changes(options.updates, context), (data) => `event: change\ndata: ${data}\n\n`)
          const body = Stream.concat(Stream.make("retry: 3000\n\n"), Stream.merge(frames, keepAlive)).pipe(
            Stream.map(frame),
            Stream.interruptWhenDeferred(closed),
            Stream.provideContext(
              Option.isSome(events) ? Context.add(context, RunEvents.RunEvents, events.value) : context
            )
          )
          return HttpServerResponse.stream(body, {
            contentType: "text/event-stream",
            headers: { "cache-control": "no-store", "x-accel-buffering": "no" }
          })
        })
      )
    )
  })

/** What is not a route of the viewer: 404 as JSON. */
const notFound = (app: HttpRouter.HttpRouter): HttpApp.Default =>
  Effect.catchTag(app, "RouteNotFound", (error) =>
    Effect.succeed(
      failure(
        "RouteNotFound",
        `No route ${error.request.method} ${error.request.url.split("?")[0]}. The viewer serves its page at / and ` +
          `read-only JSON under /api.`,
        404
      )
    ))

/**
 * The viewer served on the `HttpServer` it is given (the CLI gives it 127.0.0.1 and a port).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<never, never, HttpServer.HttpServer | Services> =>
  Layer.unwrapScoped(
    Effect.map(router(options), (routes) => HttpServer.serve(notFound(routes)))
  )

/** The cookie of a browser that gave the admin token on the login form. */
const sessionCookie = "holdout_view_session"

const randomId = () => {
  const bytes = crypto.getRandomValues(new Uint8Array(32))
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("")
}

const loginPage = (message: string, action: string) =>
  HttpServerResponse.html(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Holdout viewer: sign in</title>
<style>body{font-family:system-ui,sans-serif;margin:3rem;max-width:36rem}input{width:100%;font:inherit;margin:.5rem 0}</style>
</head><body><h1>Holdout viewer</h1><p>${message}</p>
<form method="post" action="${action}"><label>Admin token <input name="token" type="password" autocomplete="off" autofocus></label>
<button type="submit">Open the viewer</button></form></body></html>`).pipe(
    HttpServerResponse.setStatus(401),
    HttpServerResponse.setHeaders({
      "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'",
      "cache-control": "no-store"
    })
  )

const LoginForm = Schema.Struct({ token: Schema.String })

/**
 * Serves the viewer only to whoever holds the admin token: a request with `Authorization: Bearer
 * <token>`, or a browser that gave the token on the login form (`POST login`), which gets a random
 * session cookie (HttpOnly, SameSite=Strict, for `cookiePath` only; the token itself is never put
 * in a cookie, and sessions end with the process).
 *
 * @since 0.1.0
 * @category combinators
 */
export const requireToken = (token: string, options: { readonly cookiePath?: string } = {}) => {
  const sessions = new Set<string>()
  const cookiePath = options.cookiePath ?? "/"
  const prefix = cookiePath.replace(/\/$/, "")
  const login = (message: string) => loginPage(message, `${prefix}/login`)
  return <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
      const header = request.headers["authorization"] ?? ""
      if (header.startsWith("Bearer ") && constantTimeEquals(header.slice("Bearer ".length), token)) return app
      const session = request.cookies[sessionCookie]
      if (session !== undefined && sessions.has(session)) return app
      const path = request.url.split("?")[0] ?? ""
      if (request.method === "POST" && path.endsWith("/login")) {
        return HttpServerRequest.schemaBodyUrlParams(LoginForm).pipe(
          Effect.map(({ token: given }) => {
            if (!constantTimeEquals(given, token)) return login("That is not the admin token. Try again.")
            const id = randomId()
            sessions.add(id)
            return HttpServerResponse.redirect(`${prefix}/`, { status: 303 }).pipe(
              HttpServerResponse.unsafeSetCookie(sessionCookie, id, {
                httpOnly: true,
                sameSite: "strict",
                path: cookiePath
              })
            )
          }),
          Effect.orElseSucceed(() => login("Send the admin token from the form."))
        )
      }
      if ((request.headers["accept"] ?? "").includes("text/html")) {
        return Effect.succeed(
          login("The viewer is the operator's: give the admin token (the sidecar's token file holds it).")
        )
      }
      return Effect.succeed(
        failure(
          "Unauthorized",
          "The viewer is the operator's: send the admin token as `Authorization: Bearer <token>` (the sidecar's " +
            "token file holds it), or run `holdout view` on the stack instead.",
          401
        )
      )
    })
}

/**
 * The viewer under `/view` of the sidecar's router (`HttpApiBuilder.Router`), behind the admin
 * token. The sidecar makes the runs itself, so updates come from its `RunEvents`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMount = (
  options: { readonly token: string; readonly title?: string }
): Layer.Layer<never, never, Services> =>
  HttpApiBuilder.Router.use((sidecarRouter) =>
    Effect.gen(function*() {
      const routes = yield* router({ updates: { _tag: "events" }, ...options })
      yield* sidecarRouter.mountApp("/view", requireToken(options.token, { cookiePath: "/view" })(notFound(routes)))
    })
  )

/**
 * A port the viewer could not listen on.
 *
 * @since 0.1.0
 * @category errors
 */
export class ListenError extends Schema.TaggedError<ListenError>()("ListenError", {
  host: Schema.String,
  port: Schema.Number,
  reason: Schema.String
}) {
  override get message() {
    return `The viewer cannot listen on ${this.host}:${this.port} (${this.reason}); ` +
      `pass another --port (0 picks a free one).`
  }
}

/**
 * Serves the viewer on 127.0.0.1 (Node's HTTP server) until interrupted, polling the store for
 * changes (`holdout view` runs beside the processes that make the runs), and tells where.
 *
 * @since 0.1.0
 * @category constructors
 */
export const launch = (
  options: { readonly port: number; readonly host?: string; readonly pollInterval?: Duration.DurationInput }
): Effect.Effect<never, ListenError, Services> => {
  const host = options.host ?? "127.0.0.1"
  const announce = Layer.effectDiscard(
    HttpServer.addressFormattedWith((address) => Console.log(`holdout viewer on ${address} (Ctrl-C stops it)`))
  )
  return Layer.launch(
    announce.pipe(
      Layer.provide(layer({ updates: { _tag: "poll", interval: options.pollInterval ?? "2 seconds" } })),
      Layer.provideMerge(NodeHttpServer.layer(createServer, { port: options.port, host }))
    )
  ).pipe(
    Effect.catchTag("ServeError", (error) =>
      Effect.fail(
        new ListenError({
          host,
          port: options.port,
          reason: error.cause instanceof Error ? error.cause.message : String(error.cause)
        })
      ))
  )
}
