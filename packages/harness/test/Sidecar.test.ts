import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpServer from "@effect/platform/HttpServer"
import { assert, describe, it } from "@effect/vitest"
import { DatasetSource, type Engine, HoldoutError, Ledger, type Model, Stack, TaskStore } from "@holdout/core"
import { Sidecar, Verifier } from "@holdout/harness"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs"
import { createServer } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { aroundLocal, rows } from "./helpers.js"

// "holdout-secret" is no_access; "ghost" is tiered but holds no data (a budget for it would be a
// ConfigError at start: `Stack.checkBudgetedSplits`); "open" is viewable but unbudgeted
const budgets = [
  { datasetId: "ds", split: "train", runs: 3 },
  { datasetId: "ds", split: "validation", runs: 2 }
]

/** The names of a span and of its ancestors, innermost first. */
const spanNames = (span: Tracer.AnySpan): Array<string> =>
  span._tag === "Span"
    ? [span.name, ...Option.match(span.parent, { onNone: () => [], onSome: spanNames })]
    : ["(external)"]

/** What candidate "traced" was evaluated under: the span its strategy ran in, and the span's ancestors. */
const tracedUnder: Array<Array<string>> = []

/**
 * The local strategy, except for candidate "broken" (a StrategyError), "empty" (no sample at all)
 * and "traced" (tells its spans, `tracedUnder`).
 */
const strategy = aroundLocal((plan, local) =>
  plan.candidate.id === "broken"
    ? Effect.fail(new HoldoutError.StrategyError({ strategy: "test", message: "the workers are down" }))
    : plan.candidate.id === "empty"
    ? Effect.void
    : plan.candidate.id === "traced"
    ? Effect.zipRight(
      Effect.map(Effect.option(Effect.currentSpan), (span) => {
        tracedUnder.push(Option.match(span, { onNone: () => [], onSome: spanNames }))
      }),
      local.produce(plan)
    )
    : local.produce(plan)
)

/** The memory store, except that it cannot store a run of candidate "store-down". */
const store = Layer.effect(
  TaskStore.TaskStore,
  Effect.map(TaskStore.TaskStore, (memory) => ({
    ...memory,
    createRun: (run: Parameters<typeof memory.createRun>[0]) =>
      run.candidate.id === "store-down"
        ? Effect.fail(new HoldoutError.StoreError({ op: "createRun", message: "the disk is full" }))
        : memory.createRun(run)
  }))
).pipe(Layer.provide(TaskStore.layerMemory))

/** The memory ledger, except that it cannot tell the budgets' status. */
const ledgerWithoutStatus = (splitBudgets: ReadonlyArray<Model.SplitBudget>) =>
  Layer.effect(
    Ledger.Ledger,
    Effect.map(Ledger.Ledger, (memory) => ({
      ...memory,
      status: () => Effect.fail(new HoldoutError.StoreError({ op: "status", message: "the disk is gone" }))
    }))
  ).pipe(Layer.provide(Ledger.layerMemory(splitBudgets)))

const stack = (
  engine: Engine.EngineOptions = {},
  splitBudgets: ReadonlyArray<Model.SplitBudget> = budgets,
  ledger: typeof Ledger.layerMemory = Ledger.layerMemory
) =>
  Stack.layerWith({
    engine,
    budgets: splitBudgets,
    policy: {
      train: "viewable",
      validation: "non_viewable",
      "holdout-secret": "no_access",
      ghost: "viewable",
      open: "viewable"
    },
    ledger,
    store,
    datasets: DatasetSource.layerRecords({
      ds: { train: rows(8), validation: rows(12), "holdout-secret": rows(6), open: rows(4) }
    }),
    strategy
  })

interface Server {
  readonly url: string
  readonly dir: string
  readonly token: string
  readonly store: TaskStore.TaskStore["Type"]
}

/** A sidecar on 127.0.0.1 (a free port), over a fresh memory stack. */
const serve = (
  options: {
    readonly maxBodyBytes?: number
    readonly engine?: Engine.EngineOptions
    readonly budgets?: ReadonlyArray<Model.SplitBudget>
    readonly ledger?: typeof Ledger.layerMemory
  } = {}
) =>
  Effect.gen(function*() {
    const { budgets: splitBudgets, engine, ledger, ...sidecar } = options
    const dir = mkdtempSync(join(tmpdir(), "holdout-sidecar-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
    const tokenFile = join(dir, "token", "admin.token")
    const layer = Sidecar.layer({ tokenFile, resultsDir: join(dir, "results"), ...sidecar }).pipe(
      Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
      Layer.provide(
        Verifier.layer({
          mode: "auto_best",
          selection: { datasetId: "ds", split: "validation" },
          targets: [{ datasetId: "ds", split: "holdout-secret", rewardKey: "accuracy" }]
        })
      ),
      Layer.provideMerge(stack(engine, splitBudgets, ledger)),
      Layer.provide(NodeContext.layer)
    )
    const context = yield* Layer.build(layer)
    const address = Context.get(context, HttpServer.HttpServer).address
    assert.strictEqual(address._tag, "TcpAddress")
    const port = address._tag === "TcpAddress" ? address.port : 0
    return {
      url: `http://127.0.0.1:${port}`,
      dir,
      token: readFileSync(tokenFile, "utf8").trim(),
      store: Context.get(context, TaskStore.TaskStore)
    } satisfies Server
  })

interface Reply {
  readonly status: number
  readonly text: string
  readonly json: unknown
}

/** The value at a dotted path of a decoded JSON document (undefined when absent). */
const at = (value: unknown, path: string): unknown =>
  path.split(".").reduce<unknown>(
    (
      current,
      key
    ) => (typeof current === "object" && current !== null ? (current as Record<string, unknown>)[key] : undefined),
    value
  )

const request = (
  server: Server,
  method: string,
  path: string,
  options: { readonly body?: unknown; readonly raw?: string; readonly headers?: Record<string, string> } = {}
) =>
  Effect.promise(async (): Promise<Reply> => {
    const body = options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body))
    const response = await fetch(server.url + path, {
      method,
      headers: { ...(body === undefined ? {} : { "content-type": "application/json" }), ...options.headers },
      ...(body === undefined ? {} : { body })
    })
    const text = await response.text()
    let json: unknown = undefined
    try {
      json = JSON.parse(text)
    } catch {
      // not JSON
    }
    return { status: response.status, text, json }
  })

const runIdOf = (reply: Reply): string => encodeURIComponent(String(at(reply.json, "experiment.summary.runId")))

const evaluate = (server: Server, body: Record<string, unknown>) =>
  request(server, "POST", "/eval", { body: { datasetId: "ds", candidate: { id: "cand-1" }, ...body } })

describe("Sidecar over HTTP on 127.0.0.1", () => {
  it.scoped("health, OpenAPI, and a viewable evaluation with its results directory", () =>
    Effect.gen(function*() {
      const server = yield* serve()
      const health = yield* request(server, "GET", "/health")
      assert.deepStrictEqual([health.status, health.json], [200, { ok: true }])
      const openapi = yield* request(server, "GET", "/openapi.json")
      assert.strictEqual(openapi.status, 200)
      for (
        const path of [
          "/health",
          "/eval",
          "/runs",
          "/runs/{runId}",
          "/runs/{runId}/samples",
          "/compare",
          "/status",
          "/submit",
          "/finalize",
          "/experiments"
        ]
      ) {
        assert.property(at(openapi.json, "paths"), path)
      }

      const train = yield* evaluate(server, { split: "train" })
      assert.strictEqual(train.status, 200, train.text)
      assert.strictEqual(at(train.json, "experiment._tag"), "viewable")
      assert.strictEqual(at(train.json, "experiment.samples"), undefined)
      assert.strictEqual(at(train.json, "experiment.summary.metrics.avgFilledScore"), 0.75)
      assert.deepStrictEqual(at(train.json, "remaining"), { runs: 2, samples: null })
      const path = String(at(train.json, "resultPath"))
      assert.sameMembers(readdirSync(path), ["summary.json", ...rows(8).map((row) => `${row.index}.json`)])
    }))

  it.scoped("a viewable run's samples come in pages with a cursor; nothing else shows per-sample data", () =>
    Effect.gen(function*() {
      const server = yield* serve()
      const train = yield* evaluate(server, { split: "train" })
      const runId = String(at(train.json, "experiment.summary.runId"))
      const seen: Array<number> = []
      let after: number | null = null
      for (let page = 0; page < 10; page++) {
        const reply = yield* request(
          server,
          "GET",
          `/runs/${encodeURIComponent(runId)}/samples?limit=3${after === null ? "" : `&after=${after}`}`
        )
        assert.strictEqual(reply.status, 200, reply.text)
        const samples = at(reply.json, "samples") as ReadonlyArray<{ sampleId: number; runId: string }>
        assert.isAtMost(samples.length, 3)
        seen.push(...samples.map((sample) => sample.sampleId))
        after = at(reply.json, "next") as number | null
        if (after === null) break
      }
      assert.deepStrictEqual(seen, rows(8).map((row) => row.index))
      const all = yield* request(server, "GET", `/runs/${encodeURIComponent(runId)}/samples`)
      assert.deepStrictEqual([at(all.json, "samples.length"), at(all.json, "next")], [8, null])
      assert.strictEqual(at(all.json, "samples.3.score"), 0)

      // non_viewable: refused, naming the split and nothing of its samples
      const validation = yield* evaluate(server, { split: "validation" })
      const hidden = String(at(validation.json, "experiment.summary.runId"))
      const refused = yield* request(server, "GET", `/runs/${encodeURIComponent(hidden)}/samples`)
      assert.deepStrictEqual([refused.status, at(refused.json, "_tag")], [403, "AccessDenied"])
      assert.notMatch(refused.text, /sampleId|"samples"|"output"/)

      // the verifier's run on a no_access split, an optimizer's run on a split since made no_access,
      // and a run never made: the same answer, so not even the existence of the first two is confirmed
      yield* request(server, "POST", "/finalize", { headers: { authorization: `Bearer ${server.token}` } })
      const listed = yield* request(server, "GET", "/experiments", {
        headers: { authorization: `Bearer ${server.token}` }
      })
      const verifierRun = (at(listed.json, "experiments") as ReadonlyArray<{ runId: string; split: string }>)
        .find((entry) => entry.split === "holdout-secret")!.runId
      const run = yield* Effect.orDie(server.store.getRun(runId))
      assert.isTrue(run._tag === "Some")
      if (run._tag === "Some") {
        yield* Effect.orDie(server.store.createRun({ ...run.value, runId: "old-secret", split: "holdout-secret" }))
      }
      const probe = (id: string) => request(server, "GET", `/runs/${encodeURIComponent(id)}/samples`)
      const unknown = yield* probe("no-such-run")
      assert.deepStrictEqual([unknown.status, at(unknown.json, "_tag")], [404, "RunNotFound"])
      for (const id of [verifierRun, "old-secret"]) {
        const secret = yield* probe(id)
        assert.strictEqual(secret.status, 404)
        assert.strictEqual(secret.text.replaceAll(id, "ID"), unknown.text.replaceAll("no-such-run", "ID"))
      }

      // bad cursors are 400
      for (const query of ["limit=0", "limit=1001", "after=-1", "after=x"]) {
        const bad = yield* request(server, "GET", `/runs/${encodeURIComponent(runId)}/samples?${query}`)
        assert.strictEqual(bad.status, 400, query)
      }
    }))

  it.scoped("a non_viewable response and its results directory hold no sample id and no per-sample data", () =>
    Effect.gen(function*() {
      const server = yield* serve()
      const validation = yield* evaluate(server, { split: "validation" })
      assert.strictEqual(validation.status, 200, validation.text)
      assert.strictEqual(at(validation.json, "experiment._tag"), "non_viewable")
      assert.deepStrictEqual(Object.keys(at(validation.json, "experiment") as object).sort(), ["_tag", "summary"])
      assert.notMatch(JSON.stringify(at(validation.json, "experiment")), /sampleId|"samples"|"output"|"input"/)
      assert.strictEqual(at(validation.json, "experiment.summary.metrics.numSamples"), 12)
      const path = String(at(validation.json, "resultPath"))
      assert.deepStrictEqual(readdirSync(path), ["summary.json"])
      assert.notMatch(readFileSync(join(path, "summary.json"), "utf8"), /sampleId|"samples"|"output"|"input"/)
    }))

  it.scoped("a no_access split never appears: refused with 403, absent from /status and from the results", () =>
    Effect.gen(function*() {
      const server = yield* serve()
      const secret = yield* evaluate(server, { split: "holdout-secret" })
      assert.strictEqual(secret.status, 403)
      assert.strictEqual(at(secret.json, "_tag"), "AccessDenied")
      const status = yield* request(server, "GET", "/status")
      assert.strictEqual(status.status, 200)
      assert.notInclude(status.text, "holdout-secret")
      assert.deepStrictEqual(
        (at(status.json, "splits") as ReadonlyArray<{ split: string; tier: string }>).map((
          split
        ) => [split.split, split.tier]),
        [["train", "viewable"], ["validation", "non_viewable"]]
      )
      assert.strictEqual(at(status.json, "submitEnabled"), false)
      assert.isFalse(
        existsSync(join(server.dir, "results")) &&
          readdirSync(join(server.dir, "results")).some((entry) => entry.includes("secret"))
      )
    }))

  it.scoped("every error tag has its status code", () =>
    Effect.gen(function*() {
      const server = yield* serve()
      const cases: ReadonlyArray<readonly [Record<string, unknown>, number, string]> = [
        [{ split: "train", sampleIds: [99] }, 400, "InvalidRequest"],
        [{ split: "ghost" }, 400, "UnknownSplit"],
        [{ split: "validation", numSamples: 2 }, 400, "SubsetTooSmall"],
        [{ split: "validation", sampleIds: [0, 1, 2, 3, 4] }, 400, "InvalidRequest"],
        [{ split: "holdout-secret" }, 403, "AccessDenied"],
        [{ split: "unlisted" }, 403, "AccessDenied"],
        [{ split: "open" }, 403, "SplitNotBudgeted"],
        [{ split: "train", candidate: { id: "broken" } }, 500, "StrategyError"],
        [{ split: "train", candidate: { id: "empty" } }, 500, "RunFailed"],
        [{ split: "train", candidate: { id: "store-down" } }, 500, "StoreError"]
      ]
      for (const [body, status, tag] of cases) {
        const reply = yield* evaluate(server, body)
        assert.deepStrictEqual(
          [reply.status, at(reply.json, "_tag")],
          [status, tag],
          `${JSON.stringify(body)}: ${reply.text}`
        )
        if (tag === "StoreError") {
          // a store failure shows its tag, op and a message naming no file; its cause stays in the log
          assert.deepStrictEqual(Object.keys(reply.json as object).sort(), ["_tag", "message", "op"])
          assert.notInclude(reply.text, "the disk is full")
        }
      }
      for (let run = 0; run < 2; run++) {
        assert.strictEqual((yield* evaluate(server, { split: "validation" })).status, 200)
      }
      const exhausted = yield* evaluate(server, { split: "validation" })
      assert.deepStrictEqual([exhausted.status, at(exhausted.json, "_tag"), at(exhausted.json, "reason")], [
        429,
        "BudgetExhausted",
        "runs"
      ])
      const submit = yield* request(server, "POST", "/submit", { body: { candidate: { id: "cand-1" } } })
      assert.deepStrictEqual([submit.status, at(submit.json, "_tag")], [400, "InvalidRequest"])
    }))

  it.scoped("malformed bodies are 400, oversized ones 413, and nothing is charged for them", () =>
    Effect.gen(function*() {
      const server = yield* serve({ maxBodyBytes: 1024 })
      const notJson = yield* request(server, "POST", "/eval", {
        raw: "{ not json",
        headers: { "content-type": "application/json" }
      })
      assert.strictEqual(notJson.status, 400)
      const missing = yield* request(server, "POST", "/eval", { body: { split: "train" } })
      assert.strictEqual(missing.status, 400)
      const wrongType = yield* evaluate(server, { split: "train", sampleIds: "all" })
      assert.strictEqual(wrongType.status, 400)
      const huge = yield* evaluate(server, { split: "train", candidate: { id: "x".repeat(4096) } })
      assert.strictEqual(huge.status, 413)
      assert.strictEqual(at(huge.json, "_tag"), "PayloadTooLarge")
      const status = yield* request(server, "GET", "/status")
      assert.deepStrictEqual(at(status.json, "splits.0.spent"), { runs: 0, samples: 0 })
    }))

  it.scoped("a body sent without a length is read with the limit: over it 413, far over it the connection is closed", () =>
    Effect.gen(function*() {
      const server = yield* serve({ maxBodyBytes: 1024 })
      // a streamed body is sent chunked, without a length: the limit is only known once it is read
      const streamed = (body: string) =>
        Effect.promise(() =>
          fetch(server.url + "/eval", {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: new ReadableStream({
              start: (controller) => {
                const bytes = new TextEncoder().encode(body)
                for (let at = 0; at < bytes.length; at += 4096) controller.enqueue(bytes.slice(at, at + 4096))
                controller.close()
              }
            }),
            duplex: "half"
          } as RequestInit).then(
            async (response) => [response.status, at(await response.json(), "_tag") ?? null] as const,
            () => "closed" as const
          )
        )
      const payload = (id: string) => JSON.stringify({ datasetId: "ds", split: "train", candidate: { id } })
      assert.deepStrictEqual(yield* streamed(payload("x".repeat(4096))), [413, "PayloadTooLarge"])
      // past 1 MiB (or 16 times the limit, if more) the body is not read on
      assert.strictEqual(yield* streamed(payload("x".repeat(2 * 1024 * 1024))), "closed")
      const after = yield* request(server, "GET", "/status")
      assert.deepStrictEqual(at(after.json, "splits.0.spent"), { runs: 0, samples: 0 })
      // within the limit, a body without a length is a body like any other
      assert.deepStrictEqual((yield* streamed(payload("streamed")))[0], 200)
    }))

  it.scoped("every request is logged in a line with its fields; the polled routes at debug level", () =>
    Effect.gen(function*() {
      const lines: Array<{ readonly level: string; readonly message: unknown; readonly fields: unknown }> = []
      const capture = Logger.make(({ annotations, logLevel, message }) => {
        lines.push({
          level: logLevel.label,
          message: Array.isArray(message) ? message[0] : message,
          fields: Object.fromEntries(HashMap.toEntries(annotations))
        })
      })
      const logged = <A, E, R>(level: LogLevel.LogLevel, effect: Effect.Effect<A, E, R>) =>
        effect.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)), Logger.withMinimumLogLevel(level))
      const requests = (server: Server) =>
        Effect.gen(function*() {
          lines.length = 0
          assert.strictEqual((yield* evaluate(server, { split: "train" })).status, 200)
          assert.strictEqual((yield* evaluate(server, { split: "ghost" })).status, 400)
          assert.strictEqual((yield* request(server, "GET", "/status?x=1")).status, 200)
          assert.strictEqual((yield* request(server, "GET", "/health")).status, 200)
          // the line is written as the response is sent: the client may have it first (a real wait:
          // the test's clock does not move by itself)
          yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 50)))
          return lines.filter((line) =>
            String(line.message).startsWith("GET /") || String(line.message).startsWith("POST /")
          )
        })
      const debug = yield* logged(LogLevel.Debug, Effect.flatMap(serve(), requests))
      assert.deepStrictEqual(debug.map((line) => [line.level, String(line.message).replace(/ \d+ms/, " _ms")]), [
        ["INFO", "POST /eval 200 _ms"],
        ["INFO", "POST /eval 400 _ms UnknownSplit"],
        ["DEBUG", "GET /status 200 _ms"],
        ["DEBUG", "GET /health 200 _ms"]
      ])
      const fields = debug[1]!.fields as Record<string, unknown>
      assert.deepStrictEqual({ ...fields, ms: typeof fields["ms"] }, {
        method: "POST",
        path: "/eval",
        status: 400,
        ms: "number",
        error: "UnknownSplit"
      })
      const info = yield* logged(LogLevel.Info, Effect.flatMap(serve(), requests))
      assert.deepStrictEqual(info.map((line) => line.level), ["INFO", "INFO"])
    }))

  it.scoped("a request makes a tracing span when the stack has a tracer, and none that would reach no one", () =>
    Effect.gen(function*() {
      const spansOfAnEvaluation = (server: Server) =>
        Effect.gen(function*() {
          tracedUnder.length = 0
          assert.strictEqual((yield* evaluate(server, { split: "train", candidate: { id: "traced" } })).status, 200)
          assert.strictEqual(tracedUnder.length, 1)
          return tracedUnder[0]
        })
      // Effect's own tracer keeps its spans nowhere: the engine's span only, no span per request
      assert.deepStrictEqual(yield* spansOfAnEvaluation(yield* serve()), ["Engine.evaluate"])
      // any other tracer (an exporter's) gets the request's span, the engine's inside it
      const own = yield* Effect.tracer
      const exporter = Tracer.make({ span: (...options) => own.span(...options), context: own.context })
      const traced = yield* Effect.withTracer(serve(), exporter)
      assert.deepStrictEqual(yield* spansOfAnEvaluation(traced), ["Engine.evaluate", "http.server POST"])
    }))

  it.scoped("the polled routes answer what the API answers: status, headers and body, an error included", () =>
    Effect.gen(function*() {
      // `/health` and `/status` are answered ahead of the router, `/status?x=1` by the API's handler
      const same = (server: Server, path: string) =>
        Effect.gen(function*() {
          const [polled, routed] = yield* Effect.promise(() =>
            Promise.all([path, `${path}?x=1`].map(async (url) => {
              const response = await fetch(server.url + url)
              // every header but the date: a header the router's path adds, the polled one must too
              const headers: Array<readonly [string, string]> = []
              response.headers.forEach((value, name) => {
                if (name !== "date") headers.push([name, value])
              })
              return [response.status, response.headers.get("content-type"), await response.text(), headers] as const
            }))
          )
          assert.deepStrictEqual(polled, routed)
          return polled!
        })
      const server = yield* serve()
      assert.deepStrictEqual(
        (yield* same(server, "/health")).slice(0, 3),
        [200, "application/json", JSON.stringify({ ok: true })]
      )
      assert.strictEqual((yield* evaluate(server, { split: "train" })).status, 200)
      const [status, , body] = yield* same(server, "/status")
      assert.strictEqual(status, 200)
      assert.deepStrictEqual(at(JSON.parse(String(body)), "splits.0.spent"), { runs: 1, samples: 8 })
      // POST is not polled: the router answers it, as for any route it does not serve
      assert.strictEqual((yield* request(server, "POST", "/status")).status, 404)
      const broken = yield* serve({ ledger: ledgerWithoutStatus })
      const [failed, , error] = yield* same(broken, "/status")
      assert.deepStrictEqual([failed, at(JSON.parse(String(error)), "_tag")], [500, "StoreError"])
    }))

  it.scoped("the verifier's routes need the token: missing, wrong or malformed → 401; the token file is private", () =>
    Effect.gen(function*() {
      const server = yield* serve()
      const tokenFile = join(server.dir, "token", "admin.token")
      assert.strictEqual(statSync(tokenFile).mode & 0o777, 0o600)
      assert.isAtLeast(server.token.length, 40)
      const refusals = [
        {},
        { authorization: "Bearer wrong-token" },
        { authorization: `Basic ${server.token}` },
        { authorization: `Bearer${server.token}` },
        { authorization: `Bearer ${server.token}x` },
        { authorization: `bearer ${server.token}` }
      ]
      for (const headers of refusals) {
        for (const [method, path] of [["POST", "/finalize"], ["GET", "/experiments"]] as const) {
          const reply = yield* request(server, method, path, { headers })
          assert.deepStrictEqual(
            [reply.status, at(reply.json, "_tag")],
            [401, "Unauthorized"],
            `${JSON.stringify(headers)} ${path}`
          )
        }
      }
      yield* evaluate(server, { split: "validation", candidate: { id: "good" } })
      const auth = { authorization: `Bearer ${server.token}` }
      const experiments = yield* request(server, "GET", "/experiments", { headers: auth })
      assert.strictEqual(experiments.status, 200)
      const listed = at(experiments.json, "experiments") as ReadonlyArray<{ candidateId: string }>
      assert.deepStrictEqual(listed.map((entry) => entry.candidateId), ["good"])
      const answer = yield* request(server, "POST", "/finalize", { headers: auth })
      assert.strictEqual(answer.status, 200, answer.text)
      assert.strictEqual(at(answer.json, "candidate"), "good")
      assert.deepStrictEqual(at(answer.json, "rewards"), { accuracy: 5 / 6 })
      const again = yield* request(server, "POST", "/finalize", { headers: auth })
      assert.deepStrictEqual(again.json, answer.json)
    }))
})

describe("Sidecar: uncertainty, release mechanisms and paired comparisons", () => {
  it.scoped("summaries show the 95% interval: per sample on a viewable split, at block level on a non_viewable one", () =>
    Effect.gen(function*() {
      const server = yield* serve()
      const train = yield* evaluate(server, { split: "train" })
      const metrics = at(train.json, "experiment.summary.metrics") as Record<string, unknown>
      // 6 of 8 right: mean 0.75, sample standard deviation 0.463, standard error 0.164
      assert.strictEqual(metrics["numScored"], 8)
      assert.closeTo(metrics["standardError"] as number, Math.sqrt(0.75 * 0.25 * 8 / 7 / 8), 1e-12)
      const interval = metrics["interval"] as { lower: number; upper: number }
      assert.isBelow(interval.lower, 0.75)
      assert.isAbove(interval.upper, 0.75)
      const summary = JSON.parse(readFileSync(join(String(at(train.json, "resultPath")), "summary.json"), "utf8"))
      assert.deepStrictEqual(summary.metrics.interval, interval, "the results directory shows the same summary")

      const validation = yield* evaluate(server, { split: "validation" })
      const runId = String(at(validation.json, "experiment.summary.runId"))
      const stored = yield* Effect.orDie(server.store.getRun(runId))
      const blocks = stored._tag === "Some" ? stored.value.metrics?.blocks : undefined
      assert.isDefined(blocks)
      const hidden = at(validation.json, "experiment.summary.metrics") as Record<string, unknown>
      // the spread of whole secret blocks, never that of the samples
      assert.deepStrictEqual([hidden["standardError"], hidden["interval"]], [blocks!.standardError, blocks!.interval])
      assert.notProperty(hidden, "blocks")
    }))

  it.scoped("under thresholdout only the released mean is shown; /status shows the overfitting budget", () =>
    Effect.gen(function*() {
      const server = yield* serve({
        engine: {
          releases: {
            validation: { _tag: "thresholdout", reference: "train", threshold: 0.04, sigma: 0.01, overfitBudget: 2 }
          }
        }
      })
      const before = yield* request(server, "GET", "/status")
      assert.deepStrictEqual(at(before.json, "splits.1.split"), "validation")
      assert.deepStrictEqual(at(before.json, "splits.1.overfit"), { limit: 2, spent: 0, remaining: 2 })
      assert.strictEqual(at(before.json, "splits.0.overfit"), undefined, "train has no mechanism")

      assert.strictEqual((yield* evaluate(server, { split: "train" })).status, 200)
      const told = yield* evaluate(server, { split: "validation" })
      assert.strictEqual(told.status, 200, told.text)
      const summary = at(told.json, "experiment.summary") as Record<string, unknown>
      assert.strictEqual(at(summary, "release.mechanism"), "thresholdout")
      assert.isNumber(at(summary, "release.mean"))
      assert.notProperty(summary, "metrics")
      assert.notMatch(told.text, /avgFilledScore|standardError|interval|numScored|sampleId/)
      const file = readFileSync(join(String(at(told.json, "resultPath")), "summary.json"), "utf8")
      assert.notMatch(file, /avgFilledScore|standardError|interval|numScored|sampleId/)
      // the optimizer's run of validation is in no other answer either
      const compared = yield* request(server, "GET", `/compare?runA=${runIdOf(told)}&runB=${runIdOf(told)}`)
      assert.deepStrictEqual([compared.status, at(compared.json, "_tag")], [403, "AccessDenied"])
      assert.notMatch(compared.text, /avgFilledScore|mean/)
      const after = yield* request(server, "GET", "/status")
      assert.deepStrictEqual(at(after.json, "splits.1.spent"), { runs: 1, samples: 12 })
      assert.strictEqual(at(after.json, "splits.1.overfit.limit"), 2)
    }))

  it.scoped("GET /compare pairs two of the optimizer's viewable runs; other runs are refused as for their samples", () =>
    Effect.gen(function*() {
      const server = yield* serve()
      const first = yield* evaluate(server, { split: "train" })
      const second = yield* evaluate(server, { split: "train", candidate: { id: "cand-2" } })
      const compared = yield* request(server, "GET", `/compare?runA=${runIdOf(first)}&runB=${runIdOf(second)}`)
      assert.strictEqual(compared.status, 200, compared.text)
      assert.deepStrictEqual(
        [at(compared.json, "split"), at(compared.json, "runA"), at(compared.json, "runB")],
        ["train", runIdOf(first), runIdOf(second)]
      )
      // the fixture scores by row, whatever the candidate: no difference
      assert.deepStrictEqual(
        ["shared", "meanA", "meanB", "difference", "pValue", "pValueGreater"].map((key) =>
          at(compared.json, `comparison.${key}`)
        ),
        [8, 0.75, 0.75, 0, 1, 1]
      )
      assert.deepStrictEqual(at(compared.json, "comparison.interval"), { lower: 0, upper: 0 })

      const hidden = yield* evaluate(server, { split: "validation" })
      const denied = yield* request(server, "GET", `/compare?runA=${runIdOf(first)}&runB=${runIdOf(hidden)}`)
      assert.deepStrictEqual([denied.status, at(denied.json, "_tag")], [403, "AccessDenied"])
      const unknown = yield* request(server, "GET", `/compare?runA=${runIdOf(first)}&runB=no-such-run`)
      assert.deepStrictEqual([unknown.status, at(unknown.json, "_tag")], [404, "RunNotFound"])
      // the verifier's runs are as unknown as runs never made
      yield* request(server, "POST", "/finalize", { headers: { authorization: `Bearer ${server.token}` } })
      const listed = yield* request(server, "GET", "/experiments", {
        headers: { authorization: `Bearer ${server.token}` }
      })
      const admin = (at(listed.json, "experiments") as ReadonlyArray<{ runId: string; admin: boolean }>)
        .find((entry) => entry.admin)!.runId
      const secret = yield* request(server, "GET", `/compare?runA=${encodeURIComponent(admin)}&runB=${runIdOf(first)}`)
      assert.deepStrictEqual([secret.status, at(secret.json, "_tag")], [404, "RunNotFound"])
      // two viewable runs of different splits are no pair
      const run = yield* Effect.orDie(server.store.getRun(runIdOf(first)))
      if (run._tag === "Some") {
        yield* Effect.orDie(server.store.createRun({ ...run.value, runId: "other-split", split: "open" }))
      }
      const apart = yield* request(server, "GET", `/compare?runA=${runIdOf(first)}&runB=other-split`)
      assert.deepStrictEqual([apart.status, at(apart.json, "_tag")], [400, "InvalidRequest"])
      assert.include(String(at(apart.json, "message")), "different splits")
      const missing = yield* request(server, "GET", `/compare?runA=${runIdOf(first)}`)
      assert.strictEqual(missing.status, 400)
    }))
})

describe("Sidecar — a budget reserved for finalize", () => {
  it.scoped("/status shows what is left for the optimizer and the reserve; /eval is 429 at the reserve; finalize spends it", () =>
    Effect.gen(function*() {
      const server = yield* serve({
        budgets: [
          { datasetId: "ds", split: "train", runs: 3 },
          { datasetId: "ds", split: "validation", runs: 4, reservedForFinalize: { runs: 2 } }
        ]
      })
      const validationOf = (reply: Reply) =>
        (at(reply.json, "splits") as ReadonlyArray<Record<string, unknown>>).find((entry) =>
          entry["split"] === "validation"
        )
      const before = validationOf(yield* request(server, "GET", "/status"))
      assert.deepStrictEqual([before?.["remaining"], before?.["reserved"]], [
        { runs: 2, samples: null },
        { runs: 2, samples: 0 }
      ])
      for (const id of ["a", "b"]) {
        const reply = yield* evaluate(server, { split: "validation", candidate: { id } })
        assert.strictEqual(reply.status, 200, reply.text)
      }
      const refused = yield* evaluate(server, { split: "validation", candidate: { id: "c" } })
      assert.deepStrictEqual([refused.status, at(refused.json, "_tag"), at(refused.json, "remaining")], [
        429,
        "BudgetExhausted",
        0
      ])
      const answer = yield* request(server, "POST", "/finalize", {
        headers: { authorization: `Bearer ${server.token}` }
      })
      assert.strictEqual(answer.status, 200, answer.text)
      assert.strictEqual((at(answer.json, "shortlist") as ReadonlyArray<unknown>).length, 2)
      const after = validationOf(yield* request(server, "GET", "/status"))
      assert.deepStrictEqual([after?.["spent"], after?.["remaining"], after?.["reserved"]], [
        { runs: 4, samples: 48 },
        { runs: 0, samples: null },
        { runs: 0, samples: 0 }
      ])
    }))
})
