/**
 * One budget across machines: three hosts (network namespaces, see `network.ts`), each running its own
 * `holdout serve` against one PostgreSQL database (a server of the test's own, `database.ts`, on the
 * hosts' gateway address), and an optimizer in this namespace reaching them over their veth
 * addresses. Needs root and PostgreSQL; without either every test here fails with the reason.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as FileSystem from "@effect/platform/FileSystem"
import { assert, describe, layer } from "@effect/vitest"
import { Ledger, type Model, TaskStore } from "@holdout/core"
import { StackConfig } from "@holdout/harness"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { holdout, serve, type Served, stackFixture, stopAll } from "../../packages/harness/test/helpers.js"
import { type Database, database } from "./database.js"
import { gateway, type Host, hosts } from "./network.js"

const datasetId = "qa"

/** Splits of the test's dataset: their sizes and their run budgets. */
const splits = {
  burst: { size: 4, runs: 100 },
  crash: { size: 8, runs: 20 },
  outage: { size: 8, runs: 30 }
} as const

/** The port every sidecar listens on, each in its own namespace. */
const port = 8000

/** The fixture task's candidate prefix that takes 400 ms a sample (with concurrency 2: 1.6 s a run of 8). */
const slow = "slow-"

/** A host's configuration: the shared store, the dataset, the fixture's task, and its own sidecar address. */
const configText = (dir: string, host: Host, storeUrl: string) =>
  `store: { kind: postgres, url: ${JSON.stringify(storeUrl)} }
datasets: { kind: jsonl, dir: ${JSON.stringify(`${dir}/data`)} }
strategy: { kind: task, module: ${JSON.stringify(`${stackFixture}/task.ts`)}, concurrency: 2 }
budgets:
${
    Object.entries(splits).map(([split, { runs }]) => `  - { datasetId: ${datasetId}, split: ${split}, runs: ${runs} }`)
      .join("\n")
  }
policy: { ${Object.keys(splits).map((split) => `${split}: viewable`).join(", ")} }
sidecar: { tokenFile: admin.token, host: ${host.address}, port: ${port} }
`

/** Three hosts, their configurations and the sidecars they run (a restarted host's sidecar replaces its entry). */
interface Deployed {
  readonly hosts: ReadonlyArray<Host>
  readonly database: Database
  readonly configs: ReadonlyArray<string>
  readonly sidecars: Array<Served>
}

/**
 * The deployment, or how making it failed: each test then fails with that reason (a layer that fails
 * would fail the suite's set-up, and vitest would report its tests as skipped).
 */
class Deployment extends Context.Tag("MultiHost/Deployment")<Deployment, Exit.Exit<Deployed, unknown>>() {}

/** The deployment the tests share; fails as making it failed. */
const deployed = Effect.flatten(Deployment)

/** What an optimizer saw of one `POST /eval`: a status and a body, or a connection that broke. */
type Answer =
  | { readonly _tag: "Answered"; readonly status: number; readonly body: unknown }
  | { readonly _tag: "Lost"; readonly message: string }

/** `POST /eval` of `candidate` on `split` (the whole split) to the sidecar at `url`. */
const evaluate = (url: string, split: string, candidate: string) =>
  Effect.promise(async (): Promise<Answer> => {
    try {
      const response = await fetch(`${url}/eval`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ datasetId, split, candidate: { id: candidate } })
      })
      return { _tag: "Answered", status: response.status, body: await response.json() }
    } catch (error) {
      return { _tag: "Lost", message: String(error) }
    }
  })

/** The run id of a 2xx answer. */
const runIdOf = (answer: Answer): string | undefined => {
  if (answer._tag !== "Answered" || answer.status >= 300) return undefined
  const body = answer.body as { experiment?: { summary?: { runId?: unknown } } }
  const runId = body.experiment?.summary?.runId
  return typeof runId === "string" ? runId : undefined
}

/** The error tag of an answer's body. */
const tagOf = (answer: Answer): unknown =>
  answer._tag === "Answered" && typeof answer.body === "object" && answer.body !== null && "_tag" in answer.body
    ? answer.body._tag
    : undefined

/** The shared store, read through a host's configuration (the same layers its sidecar runs). */
const withStore = <A, E>(
  config: string,
  use: (services: { ledger: Ledger.Ledger["Type"]; store: TaskStore.TaskStore["Type"] }) => Effect.Effect<A, E>
) =>
  Effect.scoped(
    Effect.gen(function*() {
      const ledger = yield* Ledger.Ledger
      const store = yield* TaskStore.TaskStore
      return yield* use({ ledger, store })
    }).pipe(
      Effect.provide(Layer.unwrapEffect(Effect.map(StackConfig.load(config), StackConfig.stack))),
      Effect.provide(NodeContext.layer)
    )
  )

/** Starts host `host`'s sidecar from its configuration, inside its namespace. */
const startSidecar = (host: Host, config: string) =>
  serve(["-c", config], { namespace: host.namespace, timeout: 60_000 })

const deployment = Layer.scoped(
  Deployment,
  Effect.exit(Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const dir = yield* fs.makeTempDirectoryScoped({ prefix: "holdout-multihost-" })
    for (const [split, { size }] of Object.entries(splits)) {
      const rows = Array.from({ length: size }, (_, a) => JSON.stringify({ a, b: 1, sum: a + 1 }))
      yield* fs.makeDirectory(`${dir}/data/${datasetId}`, { recursive: true })
      yield* fs.writeFileString(`${dir}/data/${datasetId}/${split}.jsonl`, rows.join("\n") + "\n")
    }
    const made = yield* hosts(3)
    // started once the gateway address exists, to listen on it too
    const server = yield* database(gateway)
    // closed before the server and the namespaces go: no sidecar outlives the test
    yield* Effect.addFinalizer(() => stopAll)
    const configs = yield* Effect.forEach(made, (host) =>
      Effect.gen(function*() {
        yield* fs.makeDirectory(`${dir}/${host.namespace}`)
        const file = `${dir}/${host.namespace}/holdout.yaml`
        yield* fs.writeFileString(file, configText(dir, host, server.url))
        return file
      }))
    const sidecars = yield* Effect.forEach(made, (host, index) => startSidecar(host, configs[index]!), {
      concurrency: "unbounded"
    })
    // The stack's modules load now, while this process has few sockets: a native module's loader may
    // ask Node for a diagnostic report (libsql's does, to tell glibc from musl), which resolves the name
    // of every open socket's address one after the other; with 1,500 connections open that takes minutes.
    yield* withStore(configs[0]!, ({ ledger }) => ledger.status())
    return { hosts: made, database: server, configs, sidecars }
  }))
).pipe(Layer.provide(NodeContext.layer))

/** How many samples of `runId` the store holds. */
const sampleCount = (store: TaskStore.TaskStore["Type"], runId: string) =>
  Stream.runCount(TaskStore.streamSamples(store, runId))

/**
 * Resolves once `served` has written output that `until` accepts (checked now and at every chunk);
 * dies if the process exits first.
 */
const awaitOutput = (served: Served, until: (output: string) => boolean) =>
  Effect.async<void>((resume) => {
    const { child } = served
    const stop = () => {
      child.stdout?.off("data", check)
      child.stderr?.off("data", check)
      child.off("exit", exited)
    }
    const check = () => {
      if (until(served.output())) {
        stop()
        resume(Effect.void)
      }
    }
    const exited = () => {
      stop()
      resume(
        Effect.dieMessage(
          `the sidecar at ${served.url} exited before it wrote what the test waits for:\n${served.output()}`
        )
      )
    }
    if (until(served.output())) return resume(Effect.void)
    if (child.exitCode !== null || child.signalCode !== null) return exited()
    child.stdout?.on("data", check)
    child.stderr?.on("data", check)
    child.on("exit", exited)
    return Effect.sync(stop)
  })

/** The runs of `split` in the store. */
const runsOf = (runs: ReadonlyArray<Model.RunRecord>, split: string) => runs.filter((run) => run.split === split)

describe("multi-host: three sidecars in three network namespaces, one store", () => {
  layer(deployment, { excludeTestServices: true, timeout: "90 seconds" })((it) => {
    it.effect(
      "1,500 concurrent POST /eval over three hosts against runs: 100 charge exactly 100, the rest are 429",
      () =>
        Effect.gen(function*() {
          const { configs, sidecars } = yield* deployed
          const split = "burst"
          const answers = yield* Effect.forEach(
            Array.from({ length: 1500 }, (_, index) => index),
            (index) => evaluate(sidecars[index % 3]!.url, split, `burst-${index}`),
            { concurrency: "unbounded" }
          )
          const lost = answers.filter((answer) => answer._tag === "Lost")
          assert.deepStrictEqual(lost, [], "a request lost its connection")
          const charged = answers.flatMap((answer) => runIdOf(answer) ?? [])
          const refused = answers.filter((answer) => answer._tag === "Answered" && answer.status === 429)
          assert.strictEqual(charged.length, splits.burst.runs)
          assert.strictEqual(refused.length, 1500 - splits.burst.runs)
          for (const answer of refused) assert.strictEqual(tagOf(answer), "BudgetExhausted")

          yield* withStore(configs[0]!, ({ ledger, store }) =>
            Effect.gen(function*() {
              const reservations = yield* ledger.reservations({ datasetId, split })
              assert.strictEqual(reservations.length, splits.burst.runs)
              assert.deepStrictEqual(
                new Set(reservations.map((reservation) => reservation.runId)),
                new Set(charged),
                "the reservations are not the charged runs"
              )
              const snapshot = yield* ledger.get({ datasetId, split })
              assert.deepStrictEqual(snapshot.spent.runs, splits.burst.runs)
              assert.strictEqual(snapshot.remaining.runs, 0)
              const runs = runsOf(yield* store.listRuns(), split)
              assert.strictEqual(runs.length, splits.burst.runs)
              for (const run of runs) {
                assert.strictEqual(run.status, "completed")
                assert.strictEqual(yield* sampleCount(store, run.runId), splits.burst.size)
              }
            }))
        }),
      120_000
    )

    it.effect(
      "a host SIGKILLed with evals in flight and restarted: nothing acknowledged is lost, resume finishes its runs",
      () =>
        Effect.gen(function*() {
          const { configs, hosts, sidecars } = yield* deployed
          const split = "crash"
          const victim = 1
          // acknowledged by the victim before it dies
          const before = yield* Effect.forEach(
            [0, 1, 2],
            (index) => evaluate(sidecars[victim]!.url, split, `early-${index}`),
            { concurrency: "unbounded" }
          )
          const early = before.flatMap((answer) => runIdOf(answer) ?? [])
          assert.strictEqual(early.length, 3)

          // slow runs on the victim; once all have started, the other hosts get theirs and the victim dies
          const inFlight = 3
          const started = /Run (\S+) started: candidate \\?"slow-victim/g
          const victimRequests = yield* Effect.fork(Effect.forEach(
            Array.from({ length: inFlight }, (_, index) => index),
            (index) => evaluate(sidecars[victim]!.url, split, `${slow}victim-${index}`),
            { concurrency: "unbounded" }
          ))
          yield* awaitOutput(sidecars[victim]!, (output) => [...output.matchAll(started)].length >= inFlight)
          const startedOnVictim = new Set([...sidecars[victim]!.output().matchAll(started)].map((match) => match[1]!))
          const others = yield* Effect.fork(Effect.forEach(
            Array.from({ length: 60 }, (_, index) => index),
            (index) =>
              evaluate(sidecars[index % 2 === 0 ? 0 : 2]!.url, split, `${index % 4 < 2 ? slow : ""}other-${index}`),
            { concurrency: "unbounded" }
          ))
          const killed = sidecars[victim]!.child
          killed.kill("SIGKILL")
          const victimAnswers = yield* Fiber.join(victimRequests)
          assert.deepStrictEqual(
            victimAnswers.map((answer) => answer._tag),
            Array.from({ length: inFlight }, () => "Lost"),
            "a request in flight on the killed host was answered"
          )

          // the victim comes back on its address and serves again while the other hosts are busy
          sidecars[victim] = yield* startSidecar(hosts[victim]!, configs[victim]!)
          const otherAnswers = yield* Fiber.join(others)
          assert.deepStrictEqual(otherAnswers.filter((answer) => answer._tag === "Lost"), [])
          const acknowledged = [...early, ...otherAnswers.flatMap((answer) => runIdOf(answer) ?? [])]
          for (const answer of otherAnswers) {
            if (runIdOf(answer) === undefined) assert.strictEqual(tagOf(answer), "BudgetExhausted")
          }
          assert.strictEqual(acknowledged.length, splits.crash.runs - inFlight)

          // the killed runs are in the store, unfinished; nothing acknowledged is missing
          const spentBefore = yield* withStore(configs[victim]!, ({ ledger, store }) =>
            Effect.gen(function*() {
              const runs = runsOf(yield* store.listRuns(), split)
              const byId = new Map(runs.map((run) => [run.runId, run]))
              for (const runId of acknowledged) {
                assert.strictEqual(byId.get(runId)?.status, "completed", `acknowledged run ${runId} is not completed`)
                assert.strictEqual(yield* sampleCount(store, runId), splits.crash.size)
              }
              const unfinished = runs.filter((run) => run.status === "running").map((run) => run.runId)
              assert.deepStrictEqual(new Set(unfinished), startedOnVictim)
              return (yield* ledger.get({ datasetId, split })).spent
            }))
          assert.deepStrictEqual(spentBefore.runs, splits.crash.runs)

          // `holdout resume` on the restarted host finishes each of them, charging nothing
          const resumed = yield* Effect.forEach(
            [...startedOnVictim],
            (runId) => holdout(["resume", "-c", configs[victim]!, runId], { namespace: hosts[victim]!.namespace }),
            { concurrency: "unbounded" }
          )
          for (const outcome of resumed) assert.strictEqual(outcome.code, 0, outcome.stderr)
          yield* withStore(configs[victim]!, ({ ledger, store }) =>
            Effect.gen(function*() {
              const reservations = yield* ledger.reservations({ datasetId, split })
              assert.strictEqual(reservations.length, splits.crash.runs)
              assert.deepStrictEqual((yield* ledger.get({ datasetId, split })).spent, spentBefore)
              const runs = runsOf(yield* store.listRuns(), split)
              assert.strictEqual(runs.length, splits.crash.runs)
              for (const run of runs) {
                assert.strictEqual(run.status, "completed", `run ${run.runId} is ${run.status}`)
                assert.strictEqual(yield* sampleCount(store, run.runId), splits.crash.size)
              }
            }))

          // the restarted host shares the exhausted budget
          const after = yield* evaluate(sidecars[victim]!.url, split, "after-restart")
          assert.strictEqual(tagOf(after), "BudgetExhausted")
        }),
      120_000
    )

    it.effect(
      "the database server stopped and started with evals in flight: typed errors, then recovery, the budget exact",
      () =>
        Effect.gen(function*() {
          const { configs, database, hosts, sidecars } = yield* deployed
          const split = "outage"
          const perHost = 3
          const startedOn = (host: number) =>
            new RegExp(`Run (\\S+) started: candidate \\\\?"slow-outage-${host}-`, "g")
          // slow runs on every host; the server stops once all of them have started
          const inFlight = yield* Effect.fork(Effect.forEach(
            Array.from({ length: perHost * sidecars.length }, (_, index) => index),
            (index) => {
              const host = index % sidecars.length
              return evaluate(sidecars[host]!.url, split, `${slow}outage-${host}-${index}`)
            },
            { concurrency: "unbounded" }
          ))
          yield* Effect.forEach(
            sidecars,
            (sidecar, host) =>
              awaitOutput(sidecar, (output) => [...output.matchAll(startedOn(host))].length >= perHost),
            { concurrency: "unbounded" }
          )
          yield* database.stop

          // while it is down: every host answers a typed StoreError, and keeps running
          const during = yield* Effect.forEach(
            sidecars,
            (sidecar, host) => evaluate(sidecar.url, split, `during-outage-${host}`),
            { concurrency: "unbounded" }
          )
          for (const answer of during) {
            assert.strictEqual(answer._tag === "Answered" ? answer.status : answer.message, 500)
            assert.strictEqual(tagOf(answer), "StoreError")
          }
          yield* database.start
          const flown = yield* Fiber.join(inFlight)
          for (const answer of flown) {
            assert.strictEqual(answer._tag, "Answered", "a sidecar dropped a request in flight")
            if (runIdOf(answer) === undefined) assert.strictEqual(tagOf(answer), "StoreError")
          }
          for (const sidecar of sidecars) {
            assert.isNull(sidecar.child.exitCode, `the sidecar at ${sidecar.url} exited:\n${sidecar.output()}`)
          }

          // recovered: the rest of the budget goes to new evals, exactly
          const rest = yield* Effect.forEach(
            Array.from({ length: 90 }, (_, index) => index),
            (index) => evaluate(sidecars[index % sidecars.length]!.url, split, `after-outage-${index}`),
            { concurrency: "unbounded" }
          )
          assert.deepStrictEqual(rest.filter((answer) => answer._tag === "Lost"), [])
          for (const answer of rest) {
            if (runIdOf(answer) === undefined) assert.strictEqual(tagOf(answer), "BudgetExhausted")
          }
          // every run in flight was charged before the outage: the new evals get exactly the rest
          assert.strictEqual(
            rest.filter((answer) => runIdOf(answer) !== undefined).length,
            splits.outage.runs - flown.length
          )
          const acknowledged = [...flown, ...rest].flatMap((answer) => runIdOf(answer) ?? [])

          const unfinished = yield* withStore(configs[0]!, ({ ledger, store }) =>
            Effect.gen(function*() {
              const reservations = yield* ledger.reservations({ datasetId, split })
              assert.strictEqual(reservations.length, splits.outage.runs)
              assert.strictEqual((yield* ledger.get({ datasetId, split })).spent.runs, splits.outage.runs)
              const runs = runsOf(yield* store.listRuns(), split)
              const byId = new Map(runs.map((run) => [run.runId, run]))
              for (const runId of acknowledged) {
                assert.strictEqual(byId.get(runId)?.status, "completed", `acknowledged run ${runId} is not completed`)
                assert.strictEqual(yield* sampleCount(store, runId), splits.outage.size)
              }
              return runs.filter((run) => run.status === "running").map((run) => run.runId)
            }))
          // runs the outage interrupted are finished by `holdout resume`, charging nothing
          const resumed = yield* Effect.forEach(
            unfinished,
            (runId) => holdout(["resume", "-c", configs[0]!, runId], { namespace: hosts[0]!.namespace }),
            { concurrency: 2 }
          )
          for (const outcome of resumed) assert.strictEqual(outcome.code, 0, outcome.stderr)
          yield* withStore(configs[0]!, ({ ledger, store }) =>
            Effect.gen(function*() {
              assert.strictEqual((yield* ledger.reservations({ datasetId, split })).length, splits.outage.runs)
              for (const run of runsOf(yield* store.listRuns(), split)) {
                assert.strictEqual(run.status, "completed", `run ${run.runId} is ${run.status}`)
                assert.strictEqual(yield* sampleCount(store, run.runId), splits.outage.size)
              }
            }))
        }),
      120_000
    )
  })
})
