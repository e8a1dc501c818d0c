import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpServer from "@effect/platform/HttpServer"
import { assert, describe, it } from "@effect/vitest"
import { DatasetSource, HoldoutError, Ledger, LocalStrategy, type Model, Stack, TaskStore } from "@holdout/core"
import { Agent, FreeBaseline, Sidecar, Verifier } from "@holdout/harness"
import { SqliteStore } from "@holdout/store-sqlite"
import { expectFailure } from "@holdout/testkit"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as TestClock from "effect/TestClock"
import { mkdtempSync, readdirSync, rmSync } from "node:fs"
import { createServer } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { aroundLocal, doubleTask as task, rows } from "./helpers.js"

const budgets: ReadonlyArray<Model.SplitBudget> = [
  { datasetId: "ds", split: "train", runs: 10 },
  { datasetId: "ds", split: "validation", runs: 4 }
]
const policy = {
  train: "viewable",
  validation: "non_viewable",
  "holdout-secret": "no_access",
  open: "viewable"
} as const
const datasets = { ds: { train: rows(8), validation: rows(12), "holdout-secret": rows(6), open: rows(4) } }
const baseline: Model.Candidate = { id: "base" }

/** What the test strategy is told to do: fail the baseline's next `failures` runs, or hold them at `gate`. */
interface Behaviour {
  failures: number
  gate?: Deferred.Deferred<void>
}

const strategy = (behaviour: Behaviour) =>
  aroundLocal((plan, local) =>
    Effect.gen(function*() {
      if (plan.candidate.id === baseline.id && behaviour.gate !== undefined) yield* Deferred.await(behaviour.gate)
      if (plan.candidate.id === baseline.id && behaviour.failures > 0) {
        behaviour.failures--
        return yield* new HoldoutError.StrategyError({ strategy: "test", message: "the workers are down" })
      }
      return yield* local.produce(plan)
    })
  )

const verifierOptions = (freeBaseline: boolean): Verifier.Options => ({
  mode: "auto_best",
  selection: { datasetId: "ds", split: "validation" },
  targets: [{ datasetId: "ds", split: "holdout-secret", rewardKey: "accuracy" }],
  baseline,
  freeBaseline
})

/** A stack over `stores` with the verifier (and its free baseline) on top. */
const stackOn = <E>(
  stores: Layer.Layer<Ledger.Ledger | TaskStore.TaskStore, E>,
  behaviour: Behaviour = { failures: 0 },
  freeBaseline = true
) =>
  Verifier.layer(verifierOptions(freeBaseline)).pipe(
    Layer.provideMerge(
      Stack.layerWith({
        budgets,
        policy,
        ledger: () => stores,
        store: stores,
        datasets: DatasetSource.layerRecords(datasets),
        strategy: strategy(behaviour)
      })
    )
  )

const memoryStores = () => Layer.merge(Ledger.layerMemory(budgets), TaskStore.layerMemory)

/**
 * The memory stores, except that every read and write of the store's state yields first: concurrent
 * callers interleave between reading a claim and writing one, as they do on a store over a network.
 */
const interleavingStores = () =>
  Layer.merge(
    Ledger.layerMemory(budgets),
    Layer.effect(
      TaskStore.TaskStore,
      Effect.map(TaskStore.TaskStore, (memory) => ({
        ...memory,
        getMeta: (key: string) => Effect.zipRight(Effect.yieldNow(), memory.getMeta(key)),
        putMetaIfAbsent: (key: string, value: string) =>
          Effect.zipRight(Effect.yieldNow(), memory.putMetaIfAbsent(key, value))
      }))
    ).pipe(Layer.provide(TaskStore.layerMemory))
  )

/** How many times the store of `countingMetaStores` was asked for a meta key (a free baseline's claim). */
const metaReads = { count: 0 }

/** The memory stores, counting the reads of meta keys in `metaReads` (from zero). */
const countingMetaStores = () =>
  Layer.merge(
    Ledger.layerMemory(budgets),
    Layer.effect(
      TaskStore.TaskStore,
      Effect.map(TaskStore.TaskStore, (memory) => {
        metaReads.count = 0
        return {
          ...memory,
          getMeta: (key: string) => Effect.zipRight(Effect.sync(() => metaReads.count++), memory.getMeta(key))
        }
      })
    ).pipe(Layer.provide(TaskStore.layerMemory))
  )

/** The optimizer's operations over a stack, in process (as the sidecar and the MCP tools serve them). */
const withAgent = <A, E>(
  stack: Layer.Layer<Stack.Services | Verifier.Verifier, unknown>,
  f: (agent: Agent.Agent) => Effect.Effect<A, E, Stack.Services>
) =>
  Effect.gen(function*() {
    return yield* f(yield* Agent.make())
  }).pipe(Effect.provide(Layer.merge(stack, NodeContext.layer)))

const charged = (runs: ReadonlyArray<Model.RunRecord>) => runs.filter((run) => run.reservationId !== undefined)
const free = (runs: ReadonlyArray<Model.RunRecord>) =>
  runs.filter((run) => !run.admin && run.reservationId === undefined)

const optimizerRuns = Effect.flatMap(TaskStore.TaskStore, (store) => store.listRuns())

const spent = (split: string) =>
  Effect.map(
    Effect.flatMap(Ledger.Ledger, (ledger) => ledger.get({ datasetId: "ds", split })),
    (snapshot) => snapshot.spent
  )

const freeLeft = (agent: Agent.Agent, split: string) =>
  Effect.map(agent.status(), (status) => status.splits.find((entry) => entry.split === split)?.freeBaseline)

describe("FreeBaseline — in process", () => {
  it.effect("the baseline's first evaluation of each split is free; the next ones and other candidates pay", () =>
    withAgent(stackOn(memoryStores()), (agent) =>
      Effect.gen(function*() {
        assert.isTrue(yield* freeLeft(agent, "train"))
        const first = yield* agent.evaluate({ datasetId: "ds", split: "train", candidate: baseline })
        assert.isFalse(yield* freeLeft(agent, "train"))
        assert.isTrue(yield* freeLeft(agent, "validation"))
        yield* agent.evaluate({ datasetId: "ds", split: "train", candidate: baseline })
        yield* agent.evaluate({ datasetId: "ds", split: "train", candidate: { id: "other" } })
        yield* agent.evaluate({ datasetId: "ds", split: "validation", candidate: baseline })
        assert.deepStrictEqual(yield* spent("train"), { runs: 2, samples: 16 })
        assert.deepStrictEqual(yield* spent("validation"), { runs: 0, samples: 0 })
        assert.deepStrictEqual(first.remaining, { runs: 10, samples: null })
        const runs = yield* optimizerRuns
        assert.deepStrictEqual(free(runs).map((run) => [run.split, run.candidate.id]), [
          ["train", "base"],
          ["validation", "base"]
        ])
      })))

  it.effect("of many concurrent requests for the baseline exactly one is free; the others pay or are refused", () =>
    withAgent(stackOn(interleavingStores()), (agent) =>
      Effect.gen(function*() {
        const outcomes = yield* Effect.forEach(
          Array.from({ length: 24 }, (_, index) => index),
          () => Effect.either(agent.evaluate({ datasetId: "ds", split: "train", candidate: baseline })),
          { concurrency: "unbounded" }
        )
        const runs = yield* optimizerRuns
        assert.strictEqual(free(runs).length, 1)
        assert.strictEqual(charged(runs).length, 10)
        const refused = outcomes.filter((outcome) => outcome._tag === "Left")
        assert.strictEqual(refused.length, 24 - 11)
        for (const outcome of refused) assert.deepInclude(outcome.left, { _tag: "BudgetExhausted", reason: "runs" })
        assert.deepStrictEqual(yield* spent("train"), { runs: 10, samples: 80 })
      })))

  it.effect("a free evaluation that fails gives its claim back: the next one is free", () =>
    withAgent(stackOn(memoryStores(), { failures: 2 }), (agent) =>
      Effect.gen(function*() {
        for (let attempt = 0; attempt < 2; attempt++) {
          const failed = yield* expectFailure(agent.evaluate({ datasetId: "ds", split: "train", candidate: baseline }))
          assert.strictEqual(failed._tag, "StrategyError")
          assert.isTrue(yield* freeLeft(agent, "train"))
        }
        // so does a refused one (a subset below the floor of a non_viewable split)
        const small = yield* expectFailure(
          agent.evaluate({ datasetId: "ds", split: "validation", candidate: baseline, numSamples: 2 })
        )
        assert.strictEqual(small._tag, "SubsetTooSmall")
        assert.isTrue(yield* freeLeft(agent, "validation"))
        const third = yield* agent.evaluate({ datasetId: "ds", split: "train", candidate: baseline })
        assert.strictEqual(third.experiment.summary.status, "completed")
        assert.isFalse(yield* freeLeft(agent, "train"))
        assert.deepStrictEqual(yield* spent("train"), { runs: 0, samples: 0 })
        assert.strictEqual(free(yield* optimizerRuns).filter((run) => run.status === "completed").length, 1)
      })))

  it.effect("the free evaluation is the optimizer's: no_access and unbudgeted splits are refused as ever", () =>
    withAgent(stackOn(memoryStores()), (agent) =>
      Effect.gen(function*() {
        const secret = yield* expectFailure(
          agent.evaluate({ datasetId: "ds", split: "holdout-secret", candidate: baseline })
        )
        assert.strictEqual(secret._tag, "AccessDenied")
        const open = yield* expectFailure(agent.evaluate({ datasetId: "ds", split: "open", candidate: baseline }))
        assert.strictEqual(open._tag, "SplitNotBudgeted")
        const ids = yield* expectFailure(
          agent.evaluate({ datasetId: "ds", split: "validation", candidate: baseline, sampleIds: [0, 1, 2, 3, 4] })
        )
        assert.strictEqual(ids._tag, "InvalidRequest")
        assert.strictEqual((yield* optimizerRuns).length, 0)
        // no_access splits are not in the status, and the budgeted ones still have their free evaluation
        const status = yield* agent.status()
        assert.deepStrictEqual(status.splits.map((entry) => [entry.split, entry.freeBaseline]), [
          ["train", true],
          ["validation", true]
        ])
      })))

  it.effect("without freeBaseline the baseline pays like any candidate, and the status says nothing of it", () =>
    withAgent(stackOn(memoryStores(), { failures: 0 }, false), (agent) =>
      Effect.gen(function*() {
        yield* agent.evaluate({ datasetId: "ds", split: "train", candidate: baseline })
        assert.deepStrictEqual(yield* spent("train"), { runs: 1, samples: 8 })
        assert.isUndefined(yield* freeLeft(agent, "train"))
      })))

  it.effect("the status reads the claims with the budgets: its own at once, another process's within statusMaxAge", () =>
    withAgent(stackOn(countingMetaStores()), (agent) =>
      Effect.gen(function*() {
        assert.isTrue(yield* freeLeft(agent, "train"))
        const read = metaReads.count
        assert.isAbove(read, 0)
        for (let poll = 0; poll < 5; poll++) assert.isTrue(yield* freeLeft(agent, "train"))
        assert.strictEqual(metaReads.count, read)
        // another process sharing the store claims train's free evaluation
        const store = yield* TaskStore.TaskStore
        yield* store.putMetaIfAbsent(FreeBaseline.claimKey({ datasetId: "ds", split: "train" }, 0), "elsewhere")
        assert.isTrue(yield* freeLeft(agent, "train"))
        yield* TestClock.adjust("100 millis")
        assert.isFalse(yield* freeLeft(agent, "train"))
        // a claim of this process (it charges nothing) shows at once
        assert.isTrue(yield* freeLeft(agent, "validation"))
        yield* agent.evaluate({ datasetId: "ds", split: "validation", candidate: baseline })
        assert.isFalse(yield* freeLeft(agent, "validation"))
        assert.deepStrictEqual(yield* spent("validation"), { runs: 0, samples: 0 })
      })))

  it.effect("freeBaseline without a baseline is a ConfigError", () =>
    Effect.gen(function*() {
      const error = yield* expectFailure(
        Effect.provide(
          Verifier.Verifier,
          Verifier.layer({
            mode: "auto_best",
            selection: { datasetId: "ds", split: "validation" },
            targets: [],
            freeBaseline: true
          }).pipe(
            Layer.provideMerge(
              Stack.layerWith({
                budgets,
                policy,
                ledger: Ledger.layerMemory,
                store: TaskStore.layerMemory,
                datasets: DatasetSource.layerRecords(datasets),
                strategy: LocalStrategy.layer(task)
              })
            )
          )
        )
      )
      assert.strictEqual((error as { readonly _tag: string })._tag, "ConfigError")
    }))
})

describe("FreeBaseline — durable", () => {
  const sqliteStack = (dir: string, behaviour: Behaviour = { failures: 0 }) =>
    stackOn(
      SqliteStore.layerLibsql({ filename: join(dir, "holdout.db"), budgets }).pipe(Layer.provide(NodeContext.layer)),
      behaviour
    )

  it.live("the claim is the store's: after a restart the baseline pays, also when the free run was cut short", () => {
    const dir = mkdtempSync(join(tmpdir(), "holdout-free-baseline-"))
    return Effect.gen(function*() {
      // a free evaluation of train, then one of validation interrupted mid-run (as by a crash)
      const gate = yield* Deferred.make<void>()
      yield* withAgent(sqliteStack(dir, { failures: 0, gate }), (agent) =>
        Effect.gen(function*() {
          yield* Deferred.succeed(gate, undefined)
          yield* agent.evaluate({ datasetId: "ds", split: "train", candidate: baseline })
        }))
      const held = yield* Deferred.make<void>()
      yield* withAgent(sqliteStack(dir, { failures: 0, gate: held }), (agent) =>
        Effect.gen(function*() {
          const fiber = yield* Effect.fork(
            agent.evaluate({ datasetId: "ds", split: "validation", candidate: baseline })
          )
          // wait until the run exists, then cut it short
          for (let tries = 0; tries < 200; tries++) {
            const runs = yield* optimizerRuns
            if (runs.some((run) => run.split === "validation")) break
            yield* Effect.sleep("10 millis")
          }
          yield* Fiber.interrupt(fiber)
          assert.isFalse(yield* freeLeft(agent, "validation"))
        }))
      // a new process on the same store
      yield* withAgent(sqliteStack(dir), (agent) =>
        Effect.gen(function*() {
          assert.isFalse(yield* freeLeft(agent, "train"))
          assert.isFalse(yield* freeLeft(agent, "validation"))
          const train = yield* agent.evaluate({ datasetId: "ds", split: "train", candidate: baseline })
          const validation = yield* agent.evaluate({ datasetId: "ds", split: "validation", candidate: baseline })
          assert.deepStrictEqual(train.remaining, { runs: 9, samples: null })
          assert.deepStrictEqual(validation.remaining, { runs: 3, samples: null })
          const runs = yield* optimizerRuns
          assert.deepStrictEqual(free(runs).map((run) => [run.split, run.status]), [
            ["train", "completed"],
            ["validation", "running"]
          ])
          assert.strictEqual(charged(runs).length, 2)
        }))
    }).pipe(Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true }))))
  })

  it.live("two processes sharing a store: one free evaluation between them", () => {
    const dir = mkdtempSync(join(tmpdir(), "holdout-free-baseline-"))
    return Effect.gen(function*() {
      const outcomes = yield* Effect.all(
        Array.from({ length: 2 }, () =>
          withAgent(sqliteStack(dir), (agent) =>
            Effect.forEach(
              Array.from({ length: 3 }, (_, index) => index),
              () => agent.evaluate({ datasetId: "ds", split: "train", candidate: baseline }),
              { concurrency: "unbounded" }
            ))),
        { concurrency: 2 }
      )
      assert.strictEqual(outcomes.flat().length, 6)
      yield* withAgent(sqliteStack(dir), () =>
        Effect.gen(function*() {
          const runs = yield* optimizerRuns
          assert.strictEqual(free(runs).length, 1)
          assert.strictEqual(charged(runs).length, 5)
          assert.deepStrictEqual(yield* spent("train"), { runs: 5, samples: 40 })
        }))
    }).pipe(Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true }))))
  })
})

describe("FreeBaseline — over HTTP", () => {
  /** A sidecar on 127.0.0.1 (a free port) over a fresh memory stack with the free baseline. */
  const serve = Effect.gen(function*() {
    const dir = mkdtempSync(join(tmpdir(), "holdout-free-sidecar-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
    const layer = Sidecar.layer({ tokenFile: join(dir, "admin.token"), resultsDir: join(dir, "results") }).pipe(
      Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
      Layer.provideMerge(stackOn(memoryStores())),
      Layer.provide(NodeContext.layer)
    )
    const context = yield* Layer.build(layer)
    const address = Context.get(context, HttpServer.HttpServer).address
    const port = address._tag === "TcpAddress" ? address.port : 0
    return { url: `http://127.0.0.1:${port}`, dir, store: Context.get(context, TaskStore.TaskStore) }
  })

  const post = (url: string, body: unknown) =>
    Effect.promise(async () => {
      const response = await fetch(`${url}/eval`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body)
      })
      return { status: response.status, text: await response.text() }
    })

  it.scoped("a free evaluation of a non_viewable split is projected like a paid one: its summary only", () =>
    Effect.gen(function*() {
      const server = yield* serve
      const reply = yield* post(server.url, { datasetId: "ds", split: "validation", candidate: baseline })
      assert.strictEqual(reply.status, 200, reply.text)
      const body = JSON.parse(reply.text) as {
        readonly experiment: Record<string, unknown>
        readonly remaining: unknown
        readonly resultPath: string
      }
      assert.strictEqual(body.experiment["_tag"], "non_viewable")
      assert.deepStrictEqual(Object.keys(body.experiment).sort(), ["_tag", "summary"])
      assert.notMatch(JSON.stringify(body.experiment), /sampleId|"samples"|"output"|"input"/)
      // uncharged
      assert.deepStrictEqual(body.remaining, { runs: 4, samples: null })
      assert.deepStrictEqual(readdirSync(body.resultPath), ["summary.json"])
      // the optimizer may not read its samples, as for any non_viewable run
      const runs = yield* Effect.orDie(server.store.listRuns())
      const runId = encodeURIComponent(runs[0]!.runId)
      const samples = yield* Effect.promise(() => fetch(`${server.url}/runs/${runId}/samples`))
      assert.strictEqual(samples.status, 403)
      // the status tells that the free evaluation of validation is spent, not that of train
      const status = yield* Effect.promise(() => fetch(`${server.url}/status`).then((response) => response.json()))
      assert.deepStrictEqual(
        (status as { splits: ReadonlyArray<{ split: string; freeBaseline?: boolean }> }).splits.map((
          entry
        ) => [entry.split, entry.freeBaseline]),
        [["train", true], ["validation", false]]
      )
    }))

  it.scoped("many parallel requests for the baseline: exactly one is free", () =>
    Effect.gen(function*() {
      const server = yield* serve
      const replies = yield* Effect.forEach(
        Array.from({ length: 16 }, (_, index) => index),
        () => post(server.url, { datasetId: "ds", split: "train", candidate: baseline }),
        { concurrency: "unbounded" }
      )
      const runs = yield* Effect.orDie(server.store.listRuns())
      assert.strictEqual(free(runs).length, 1)
      assert.strictEqual(charged(runs).length, 10)
      assert.deepStrictEqual(
        replies.map((reply) => reply.status).sort(),
        [...Array.from({ length: 11 }, () => 200), ...Array.from({ length: 5 }, () => 429)]
      )
    }))
})
