/**
 * The opt-in `pg` group of the benchmarks (`npm run bench -- pg`): the ledger and the pipeline on
 * PostgreSQL (`@holdout/store-pg`), durable (`synchronous_commit = on`). Against the server at
 * HOLDOUT_TEST_PG_URL, or else a throwaway cluster of its own (scripts/pg-cluster.sh), a new
 * database for each figure.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { Engine, Ledger, type TaskStore } from "@holdout/core"
import { PgStore } from "@holdout/store-pg"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import { execFileSync, spawn } from "node:child_process"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

interface Result {
  readonly name: string
  readonly value: number
  readonly unit: string
}

const clusterScript = fileURLToPath(new URL("./pg-cluster.sh", import.meta.url))

/** The server: HOLDOUT_TEST_PG_URL, or a throwaway cluster stopped and removed with the scope. */
const server: Effect.Effect<string, never, Scope.Scope> = Effect.suspend(() => {
  const url = process.env["HOLDOUT_TEST_PG_URL"]
  if (url !== undefined && url !== "") return Effect.succeed(url)
  return Effect.map(
    Effect.acquireRelease(
      Effect.sync(() => {
        const dir = mkdtempSync(join(tmpdir(), "holdout-bench-pg-"))
        return { dir, url: execFileSync(clusterScript, ["start", dir], { encoding: "utf8" }).trim() }
      }),
      ({ dir }) => Effect.sync(() => execFileSync(clusterScript, ["stop", dir]))
    ),
    ({ url }) => url
  )
})

let databases = 0

/** A new database on the server, for one figure; its URL. */
const database: Effect.Effect<string, never, Scope.Scope> = Effect.gen(function*() {
  const url = yield* server
  const name = `holdout_bench_${process.pid}_${++databases}`
  yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`CREATE DATABASE ${name}`)).pipe(
    Effect.provide(PgClient.layer({ url: Redacted.make(url) })),
    Effect.orDie
  )
  const parsed = new URL(url)
  parsed.pathname = `/${name}`
  return parsed.toString()
})

const key = { datasetId: "bench", split: "train" } as const

/** The ledger of the database at `url`, open for the scope. */
const open = (url: string, runs: number) =>
  Effect.map(Layer.build(PgStore.layer({ url, budgets: [{ ...key, runs }] })), Context.get(Ledger.Ledger))

/** `clients` fibers, each reserving `perClient` new ids in turn; how many were granted. */
const reserveLoop = (ledger: Ledger.Ledger["Type"], clients: number, perClient: number, prefix: string) =>
  Effect.map(
    Effect.forEach(
      Array.from({ length: clients }, (_, client) => client),
      (client) =>
        Effect.gen(function*() {
          let granted = 0
          for (let index = 0; index < perClient; index++) {
            const id = `${prefix}${client}-${index}`
            const exit = yield* Effect.exit(ledger.reserve({ ...key, samples: 1, runId: id, reservationId: id }))
            if (Exit.isSuccess(exit)) granted++
            else if (!String(exit.cause).includes("BudgetExhausted")) {
              return yield* Effect.dieMessage(String(exit.cause))
            }
          }
          return granted
        }),
      { concurrency: "unbounded" }
    ),
    (granted) => granted.reduce((sum, count) => sum + count, 0)
  )

/** `ledger/pg/reserve/c64`: durable reserves per second of 64 fibers of one process. */
const benchReserve = Effect.scoped(
  Effect.gen(function*() {
    const url = yield* database
    const clients = 64
    const perClient = 1_000
    const ledger = yield* open(url, 10_000_000)
    // warm up: the connections and the statements
    yield* reserveLoop(ledger, clients, 20, "warm-")
    const started = performance.now()
    yield* reserveLoop(ledger, clients, perClient, "")
    const seconds = (performance.now() - started) / 1000
    return {
      name: "ledger/pg/reserve/c64",
      value: Math.round((clients * perClient) / seconds),
      unit: "durable reserves/s"
    }
  }).pipe(Effect.orDie)
)

const hostClients = 64
const hostReserves = 300

/** One of the 3 processes of `ledger/pg/reserve/3hosts`: prints its start and end times and what it was granted. */
export const child = (url: string, index: string, runs: number): Effect.Effect<void> =>
  Effect.scoped(Effect.gen(function*() {
    const ledger = yield* open(url, runs)
    const started = Date.now()
    const granted = yield* reserveLoop(ledger, hostClients, hostReserves, `p${index}-`)
    process.stdout.write(`${started} ${Date.now()} ${granted}\n`)
  })).pipe(Effect.orDie)

/**
 * `ledger/pg/reserve/3hosts`: total durable reserves per second of 3 processes on one database, whose
 * budget (90% of what they ask for) must be granted exactly.
 */
const benchThreeHosts = (scriptPath: string) =>
  Effect.scoped(
    Effect.gen(function*() {
      const url = yield* database
      const asked = 3 * hostClients * hostReserves
      const runs = Math.floor(asked * 0.9)
      // the schema first, so the processes measure reserving, not migrating
      yield* Effect.scoped(open(url, runs))
      const outcomes = yield* Effect.all(
        [0, 1, 2].map((index) =>
          Effect.async<readonly [number, number, number]>((resume) => {
            const worker = spawn(process.execPath, [
              ...process.execArgv,
              scriptPath,
              "--pg-reserve-child",
              url,
              String(index),
              String(runs)
            ], { stdio: ["ignore", "pipe", "inherit"] })
            let out = ""
            worker.stdout.setEncoding("utf8").on("data", (chunk: string) => out += chunk)
            worker.on("exit", () => {
              const [start, end, granted] = out.trim().split(" ").map(Number)
              resume(Effect.succeed([start!, end!, granted!] as const))
            })
          })
        ),
        { concurrency: "unbounded" }
      )
      const granted = outcomes.reduce((sum, [, , count]) => sum + count, 0)
      const spent = yield* Effect.scoped(Effect.flatMap(Ledger.Ledger, (ledger) => ledger.get(key))).pipe(
        Effect.provide(PgStore.layer({ url, budgets: [{ ...key, runs }] }))
      )
      if (granted !== runs || spent.spent.runs !== runs) {
        return yield* Effect.dieMessage(
          `not exact: budget ${runs}, granted ${granted}, spent ${spent.spent.runs} (a process failed?)`
        )
      }
      const seconds = (Math.max(...outcomes.map(([, end]) => end)) - Math.min(...outcomes.map(([start]) => start))) /
        1000
      return {
        name: "ledger/pg/reserve/3hosts",
        value: Math.round(asked / seconds),
        unit: "durable reserves/s (3 processes, exact)"
      }
    }).pipe(Effect.orDie)
  )

/** `pipeline/pg/samples`: 10,000 samples of a no-op task at concurrency 64, stored in PostgreSQL. */
const benchPipeline = (
  storeStack: (
    store: Layer.Layer<Ledger.Ledger | TaskStore.TaskStore, unknown>,
    samples: number
  ) => Layer.Layer<Engine.Engine, unknown>
) =>
  Effect.scoped(
    Effect.gen(function*() {
      const url = yield* database
      const samples = 10_000
      const started = performance.now()
      yield* Effect.flatMap(
        Engine.Engine,
        (engine) => engine.evaluate({ datasetId: "bench", split: "train", candidate: { id: "bench" } })
      ).pipe(Effect.provide(storeStack(PgStore.layer({ url, budgets: [{ ...key, runs: 10 }] }), samples)))
      return {
        name: "pipeline/pg/samples",
        value: Math.round(samples / ((performance.now() - started) / 1000)),
        unit: "samples/s"
      }
    }).pipe(Effect.orDie)
  )

/** The group's figures (their names contain `/pg/`). */
export const benches = (
  scriptPath: string,
  storeStack: Parameters<typeof benchPipeline>[0]
): ReadonlyArray<readonly [string, Effect.Effect<Result>]> => [
  ["ledger/pg/reserve/c64", benchReserve],
  ["ledger/pg/reserve/3hosts", benchThreeHosts(scriptPath)],
  ["pipeline/pg/samples", benchPipeline(storeStack)]
]
