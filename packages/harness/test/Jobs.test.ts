/**
 * Asynchronous evaluations through the sidecar: `POST /eval` with `async: true` answers 202 once the
 * evaluation is charged, `GET /eval/{jobId}` answers its state and, once over, exactly what the
 * synchronous call answers; refusals stay synchronous; jobs outlive their clients and the sidecar.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpServer from "@effect/platform/HttpServer"
import { assert, describe, it } from "@effect/vitest"
import { DatasetSource, HoldoutError, Ledger, type Model, SampleIds, Stack, TaskStore } from "@holdout/core"
import { Jobs, Sidecar, Verifier } from "@holdout/harness"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { mkdtempSync, rmSync } from "node:fs"
import { createServer } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { aroundLocal, rows } from "./helpers.js"

const budgets: ReadonlyArray<Model.SplitBudget> = [
  { datasetId: "ds", split: "train", runs: 3 },
  { datasetId: "ds", split: "validation", runs: 3 }
]

/**
 * The local strategy, except that candidate "slow" waits for `gate` before producing, and candidate
 * "broken" fails (a StrategyError, after the charge).
 */
const strategy = (gate: Deferred.Deferred<void>) =>
  aroundLocal((plan, local) =>
    plan.candidate.id === "broken"
      ? Effect.fail(new HoldoutError.StrategyError({ strategy: "test", message: "the workers are down" }))
      : plan.candidate.id === "slow"
      ? Effect.zipRight(Deferred.await(gate), local.produce(plan))
      : local.produce(plan)
  )

interface Stores {
  readonly ledger: Ledger.Ledger["Type"]
  readonly store: TaskStore.TaskStore["Type"]
}

/** A ledger and a store that outlive the sidecars built over them (a restart keeps both). */
const makeStores = Effect.gen(function*() {
  const context = yield* Layer.build(Layer.merge(Ledger.layerMemory(budgets), TaskStore.layerMemory))
  return { ledger: Context.get(context, Ledger.Ledger), store: Context.get(context, TaskStore.TaskStore) } as Stores
})

interface Server {
  readonly url: string
  readonly gate: Deferred.Deferred<void>
  readonly scope: Scope.CloseableScope
}

/** A sidecar on 127.0.0.1 over the stores, in a scope of its own (closing it is stopping the sidecar). */
const serve = (stores: Stores) =>
  Effect.gen(function*() {
    const dir = mkdtempSync(join(tmpdir(), "holdout-jobs-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
    const gate = yield* Deferred.make<void>()
    const stack = Stack.layerWith({
      budgets,
      policy: { train: "viewable", validation: "non_viewable", secret: "no_access" },
      ledger: () => Layer.succeed(Ledger.Ledger, stores.ledger),
      store: Layer.succeed(TaskStore.TaskStore, stores.store),
      datasets: DatasetSource.layerRecords({ ds: { train: rows(8), validation: rows(12), secret: rows(6) } }),
      strategy: strategy(gate)
    })
    const layer = Sidecar.layer({ tokenFile: join(dir, "admin.token"), resultsDir: join(dir, "results") }).pipe(
      Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
      Layer.provide(Verifier.layer({ mode: "submit", targets: [] })),
      Layer.provideMerge(stack),
      Layer.provide(NodeContext.layer)
    )
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const context = yield* Layer.buildWithScope(layer, scope)
    const address = Context.get(context, HttpServer.HttpServer).address
    const port = address._tag === "TcpAddress" ? address.port : 0
    return { url: `http://127.0.0.1:${port}`, gate, scope } satisfies Server
  })

interface Reply {
  readonly status: number
  readonly json: Record<string, unknown>
}

const call = (server: Server, method: string, path: string, body?: unknown) =>
  Effect.promise(async (): Promise<Reply> => {
    const response = await fetch(server.url + path, {
      method,
      ...(body === undefined ? {} : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
    })
    return { status: response.status, json: JSON.parse(await response.text()) as Record<string, unknown> }
  })

const evaluate = (server: Server, body: Record<string, unknown>) =>
  call(server, "POST", "/eval", { datasetId: "ds", split: "train", candidate: { id: "cand-1" }, ...body })

const job = (server: Server, jobId: string) => call(server, "GET", `/eval/${encodeURIComponent(jobId)}`)

/** Polls a job until it is over. */
const settled = (server: Server, jobId: string) =>
  Effect.gen(function*() {
    for (let attempt = 0; attempt < 200; attempt++) {
      const state = yield* job(server, jobId)
      if (state.json["status"] !== "running") return state
      yield* Effect.sleep("20 millis")
    }
    return assert.fail(`job ${jobId} did not end`)
  })

const spentRuns = (stores: Stores, split: string) =>
  Effect.map(stores.ledger.get({ datasetId: "ds", split }), (snapshot) => snapshot.spent.runs)

describe("Jobs: asynchronous evaluations through the sidecar", () => {
  it.scopedLive("202 once charged, running while the strategy works, then exactly the synchronous answer", () =>
    Effect.gen(function*() {
      const stores = yield* makeStores
      const server = yield* serve(stores)
      for (const split of ["train", "validation"]) {
        const accepted = yield* evaluate(server, {
          split,
          candidate: { id: "slow" },
          idempotencyKey: `k-${split}`,
          async: true
        })
        assert.strictEqual(accepted.status, 202, JSON.stringify(accepted.json))
        assert.deepStrictEqual(accepted.json, { jobId: `key:k-${split}`, status: "running" })
        // charged at once, before the strategy produced anything
        assert.strictEqual(yield* spentRuns(stores, split), 1)
        const running = yield* job(server, `key:k-${split}`)
        assert.deepStrictEqual([running.status, running.json], [200, { jobId: `key:k-${split}`, status: "running" }])
      }
      yield* Deferred.succeed(server.gate, undefined)
      for (const split of ["train", "validation"]) {
        const done = yield* settled(server, `key:k-${split}`)
        assert.strictEqual(done.json["status"], "completed")
        assert.notProperty(done.json, "error")
        // the synchronous call with the same key: the same answer, charged nothing again
        const sync = yield* evaluate(server, { split, candidate: { id: "slow" }, idempotencyKey: `k-${split}` })
        assert.strictEqual(sync.status, 200)
        assert.deepStrictEqual(done.json["result"], sync.json)
        assert.strictEqual(yield* spentRuns(stores, split), 1)
      }
      // the non_viewable answer is the summary only, as without async
      const hidden = (yield* job(server, "key:k-validation")).json["result"] as Record<string, unknown>
      const experiment = hidden["experiment"] as Record<string, unknown>
      assert.strictEqual(experiment["_tag"], "non_viewable")
      assert.notProperty(experiment, "run")
      assert.notInclude(JSON.stringify(hidden), "sampleIds")
    }))

  it.scopedLive("without a key the sidecar draws one; a repeat of a live job's key is the same job", () =>
    Effect.gen(function*() {
      const stores = yield* makeStores
      const server = yield* serve(stores)
      const first = yield* evaluate(server, { candidate: { id: "slow" }, async: true })
      assert.strictEqual(first.status, 202)
      const jobId = String(first.json["jobId"])
      assert.match(jobId, /^key:job-[0-9a-f-]{36}$/)
      const again = yield* evaluate(server, {
        candidate: { id: "slow" },
        idempotencyKey: jobId.slice("key:".length),
        async: true
      })
      assert.deepStrictEqual([again.status, again.json], [202, { jobId, status: "running" }])
      const conflict = yield* evaluate(server, {
        candidate: { id: "other" },
        idempotencyKey: jobId.slice("key:".length),
        async: true
      })
      assert.deepStrictEqual([conflict.status, conflict.json["_tag"]], [409, "IdempotencyConflict"])
      assert.strictEqual(yield* spentRuns(stores, "train"), 1)
      yield* Deferred.succeed(server.gate, undefined)
      const done = yield* settled(server, jobId)
      const result = done.json["result"] as { experiment: { summary: { runId: string } } }
      assert.strictEqual(result.experiment.summary.runId, jobId)
    }))

  it.scopedLive("refusals are answered at once with their usual status, and leave no job and no charge", () =>
    Effect.gen(function*() {
      const stores = yield* makeStores
      const server = yield* serve(stores)
      const denied = yield* evaluate(server, { split: "secret", async: true, idempotencyKey: "denied" })
      assert.deepStrictEqual([denied.status, denied.json["_tag"]], [403, "AccessDenied"])
      const invalid = yield* evaluate(server, { sampleIds: [0], numSamples: 2, async: true, idempotencyKey: "bad" })
      assert.deepStrictEqual([invalid.status, invalid.json["_tag"]], [400, "InvalidRequest"])
      const typo = yield* evaluate(server, { async: "yes" })
      assert.deepStrictEqual([typo.status, typo.json["_tag"]], [400, "InvalidRequest"])
      for (let index = 0; index < 3; index++) {
        assert.strictEqual((yield* evaluate(server, { async: true })).status, 202)
      }
      const exhausted = yield* evaluate(server, { async: true, idempotencyKey: "over" })
      assert.deepStrictEqual([exhausted.status, exhausted.json["_tag"]], [429, "BudgetExhausted"])
      for (const key of ["denied", "bad", "over"]) {
        const unknown = yield* job(server, `key:${key}`)
        assert.deepStrictEqual([unknown.status, unknown.json["_tag"]], [404, "JobNotFound"])
      }
      assert.strictEqual(yield* spentRuns(stores, "train"), 3)
    }))

  it.scopedLive("an unknown job, a run that is no job and a verifier's run are the same 404 JobNotFound", () =>
    Effect.gen(function*() {
      const stores = yield* makeStores
      const server = yield* serve(stores)
      const sync = yield* evaluate(server, { idempotencyKey: "plain" })
      assert.strictEqual(sync.status, 200)
      yield* stores.store.createRun({
        runId: "admin:holdout:finalize:x",
        candidate: { id: "cand-1" },
        datasetId: "ds",
        split: "secret",
        sampleIds: SampleIds.fromIterable([0]),
        status: "completed",
        admin: true,
        createdAt: 0
      })
      yield* stores.store.putMetaIfAbsent(
        Jobs.requestKey("admin:holdout:finalize:x"),
        JSON.stringify({ datasetId: "ds", split: "secret", candidate: { id: "cand-1" } })
      )
      for (const jobId of ["nope", "key:plain", "admin:holdout:finalize:x"]) {
        const unknown = yield* job(server, jobId)
        assert.strictEqual(unknown.status, 404, jobId)
        assert.strictEqual(unknown.json["_tag"], "JobNotFound")
        assert.include(String(unknown.json["message"]), jobId)
      }
    }))

  it.scopedLive("a job that fails after the charge reports the synchronous call's error, tag and all", () =>
    Effect.gen(function*() {
      const stores = yield* makeStores
      const server = yield* serve(stores)
      const accepted = yield* evaluate(server, { candidate: { id: "broken" }, async: true, idempotencyKey: "b" })
      assert.deepStrictEqual([accepted.status, accepted.json["jobId"]], [202, "key:b"])
      const failed = yield* settled(server, "key:b")
      assert.strictEqual(failed.json["status"], "failed")
      assert.notProperty(failed.json, "result")
      const sync = yield* evaluate(server, { candidate: { id: "broken" }, idempotencyKey: "b2" })
      assert.strictEqual(sync.status, 500)
      assert.deepStrictEqual(failed.json["error"], sync.json)
      assert.strictEqual((failed.json["error"] as Record<string, unknown>)["_tag"], "StrategyError")
    }))

  it.scopedLive("a client that goes away does not stop its job", () =>
    Effect.gen(function*() {
      const stores = yield* makeStores
      const server = yield* serve(stores)
      const controller = new AbortController()
      const sent = fetch(`${server.url}/eval`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          datasetId: "ds",
          split: "train",
          candidate: { id: "slow" },
          idempotencyKey: "gone",
          async: true
        }),
        signal: controller.signal
      }).catch(() => undefined)
      // the job is charged (its run exists), then the client hangs up
      while ((yield* spentRuns(stores, "train")) === 0) yield* Effect.sleep("10 millis")
      controller.abort()
      yield* Effect.promise(() => sent)
      yield* Deferred.succeed(server.gate, undefined)
      const done = yield* settled(server, "key:gone")
      assert.strictEqual(done.json["status"], "completed")
    }))

  it.scopedLive("a restarted sidecar answers a finished job as before and resumes an unfinished one, charging nothing", () =>
    Effect.gen(function*() {
      const stores = yield* makeStores
      const first = yield* serve(stores)
      const quick = yield* evaluate(first, { candidate: { id: "cand-1" }, async: true, idempotencyKey: "quick" })
      assert.strictEqual(quick.status, 202)
      const finished = yield* settled(first, "key:quick")
      const slow = yield* evaluate(first, { candidate: { id: "slow" }, async: true, idempotencyKey: "slow" })
      assert.strictEqual(slow.status, 202)
      // the sidecar stops while the slow job waits: its run is left unfinished
      yield* Scope.close(first.scope, Exit.void)
      const run = yield* stores.store.getRun("key:slow")
      assert.strictEqual(run._tag === "Some" ? run.value.status : undefined, "running")

      const second = yield* serve(stores)
      const again = yield* job(second, "key:quick")
      assert.strictEqual(again.json["status"], "completed")
      const resultOf = (reply: Reply) => reply.json["result"] as Record<string, unknown>
      assert.deepStrictEqual(resultOf(again)["experiment"], resultOf(finished)["experiment"])
      // exactly what the synchronous replay of its key answers now (the budget left is today's)
      const replay = yield* evaluate(second, { candidate: { id: "cand-1" }, idempotencyKey: "quick" })
      assert.deepStrictEqual(resultOf(again), replay.json)
      const resumed = yield* job(second, "key:slow")
      assert.deepStrictEqual([resumed.status, resumed.json], [200, { jobId: "key:slow", status: "running" }])
      yield* Deferred.succeed(second.gate, undefined)
      const done = yield* settled(second, "key:slow")
      assert.strictEqual(done.json["status"], "completed")
      const summary = (done.json["result"] as { experiment: { summary: { metrics: { numSamples: number } } } })
        .experiment.summary
      assert.strictEqual(summary.metrics.numSamples, 8)
      assert.strictEqual(yield* spentRuns(stores, "train"), 2)
    }))

  it.scopedLive("the OpenAPI document has the job route and the 202 of an asynchronous evaluation", () =>
    Effect.gen(function*() {
      const server = yield* serve(yield* makeStores)
      const openapi = yield* call(server, "GET", "/openapi.json")
      const paths = openapi.json["paths"] as Record<string, Record<string, { responses: Record<string, unknown> }>>
      assert.property(paths, "/eval/{jobId}")
      assert.property(paths["/eval"]!["post"]!.responses, "202")
      assert.property(paths["/eval/{jobId}"]!["get"]!.responses, "404")
    }))
})
