/**
 * Holdout benchmarks: prints a table and writes bench-results.json ({ results: [{ name, value, unit }] };
 * the figures of this machine, not tracked by git).
 *
 *   npm run bench              all benchmarks
 *   npm run bench -- ledger    only those whose name contains "ledger"
 *   npm run bench -- scale     the opt-in scale group (large runs; see bench-scale.ts)
 *   npm run bench -- stats     the opt-in stats group (seeded simulations; see bench-stats.ts)
 *   npm run bench -- pg        the opt-in PostgreSQL group (see bench-pg.ts)
 *
 * Figures depend on the machine and on what else runs on it; compare runs on one machine only.
 * Memory figures come from a child process of their own, so earlier benchmarks do not inflate them.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as FileSystem from "@effect/platform/FileSystem"
import { DatasetSource, Engine, Ledger, LocalStrategy, SplitAccess, Stack, Task, TaskStore } from "@holdout/core"
import { FsStore, LedgerFs } from "@holdout/store-fs"
import { SqliteStore } from "@holdout/store-sqlite"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { execFileSync, spawn } from "node:child_process"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import * as CliBench from "./bench-cli.js"
import * as PgBench from "./bench-pg.js"
import * as Scale from "./bench-scale.js"
import * as SidecarBench from "./bench-sidecar.js"
import * as Stats from "./bench-stats.js"

interface Result {
  readonly name: string
  readonly value: number
  readonly unit: string
}

const rows = (count: number) => Array.from({ length: count }, (_, index) => ({ id: index, label: index % 2 }))

/** A stack of memory layers around a no-op task, with the default timeout and retry policy. */
const pipelineStack = (samples: number) => {
  const task = Task.make({ name: "noop", labelFields: ["label"], infer: () => null, score: () => 1 })
  const base = Layer.mergeAll(
    SplitAccess.layer({ train: "viewable" }),
    Ledger.layerMemory([{ datasetId: "bench", split: "train", runs: 10 }]),
    DatasetSource.layerRecords({ bench: { train: rows(samples) } })
  ).pipe(Layer.provideMerge(TaskStore.layerMemory))
  const strategy = Layer.provideMerge(LocalStrategy.layer(task, { concurrency: 64 }), base)
  return Layer.provide(Engine.layer(), strategy)
}

const evaluateAll = (samples: number) =>
  Effect.gen(function*() {
    const engine = yield* Engine.Engine
    const experiment = yield* engine.evaluate({ datasetId: "bench", split: "train", candidate: { id: "bench" } })
    if (experiment.metrics.numSuccesses !== samples) {
      return yield* Effect.dieMessage(`expected ${samples} successes, got ${experiment.metrics.numSuccesses}`)
    }
  }).pipe(Effect.provide(pipelineStack(samples)))

const benchLedger = Effect.gen(function*() {
  const total = 200_000
  const clients = 64
  const perClient = total / clients
  const ledger = Ledger.makeMemory([{ datasetId: "bench", split: "train", runs: total, samples: total }])
  const run = (offset: number) =>
    Effect.forEach(
      Array.from({ length: clients }, (_, client) => client),
      (client) =>
        Effect.gen(function*() {
          for (let index = 0; index < perClient; index++) {
            const id = `${offset}-${client}-${index}`
            yield* ledger.reserve({ datasetId: "bench", split: "train", samples: 1, runId: id, reservationId: id })
          }
        }),
      { concurrency: "unbounded", discard: true }
    )
  // warm up on a ledger of its own
  const warm = Ledger.makeMemory([{ datasetId: "bench", split: "train", runs: total }])
  yield* Effect.orDie(
    Effect.forEach(
      Array.from({ length: 20_000 }, (_, index) => index),
      (index) =>
        warm.reserve({
          datasetId: "bench",
          split: "train",
          samples: 1,
          runId: `w${index}`,
          reservationId: `w${index}`
        }),
      {
        discard: true
      }
    )
  )
  const started = performance.now()
  yield* Effect.orDie(run(1))
  const seconds = (performance.now() - started) / 1000
  return { name: "ledger/memory/reserve/c64", value: Math.round(total / seconds), unit: "reserves/s" }
})

const benchPipeline = Effect.gen(function*() {
  const samples = 10_000
  yield* Effect.orDie(evaluateAll(2_000)) // warm up
  let best = 0
  for (let round = 0; round < 3; round++) {
    const started = performance.now()
    yield* Effect.orDie(evaluateAll(samples))
    best = Math.max(best, samples / ((performance.now() - started) / 1000))
  }
  return { name: "pipeline/memory/samples", value: Math.round(best), unit: "samples/s" }
})

const childRssMb = (flag: string) => {
  const output = execFileSync(process.execPath, [...process.execArgv, new URL(import.meta.url).pathname, flag], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"]
  })
  return Math.round(Number(output.trim().split("\n").pop()) * 10) / 10
}

/** Peak RSS of a fresh process evaluating 100,000 samples. */
const benchPeakRss = Effect.sync(() => ({
  name: "pipeline/memory/peakRssMb",
  value: childRssMb("--rss-child"),
  unit: "MB"
}))

/** RSS of a fresh process that has loaded Holdout and evaluated nothing: the runtime's and loader's share. */
const benchBaselineRss = Effect.sync(() => ({
  name: "process/baselineRssMb",
  value: childRssMb("--baseline-child"),
  unit: "MB"
}))

const baselineChild = Effect.sync(() => {
  process.stdout.write(`${Math.max(process.memoryUsage.rss(), process.resourceUsage().maxRSS * 1024) / 1024 / 1024}\n`)
})

const rssChild = Effect.gen(function*() {
  let peak = process.memoryUsage.rss()
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss())
  }, 5)
  yield* Effect.orDie(evaluateAll(100_000))
  clearInterval(timer)
  peak = Math.max(peak, process.memoryUsage.rss(), process.resourceUsage().maxRSS * 1024)
  process.stdout.write(`${peak / 1024 / 1024}\n`)
})

/** A fresh temporary directory for the duration of `f`. */
const inTempDir = <A, E>(f: (dir: string) => Effect.Effect<A, E>) =>
  Effect.scoped(Effect.flatMap(FileSystem.FileSystem, (fs) => Effect.flatMap(fs.makeTempDirectoryScoped(), f))).pipe(
    Effect.provide(NodeContext.layer),
    Effect.orDie
  )

/** Durable reserves per second against a file ledger: `clients` fibers, each reserving in turn. */
const benchLedgerFs = (clients: number, total: number) =>
  inTempDir((dir) =>
    Effect.gen(function*() {
      const ledger = yield* Ledger.Ledger
      const perClient = Math.ceil(total / clients)
      const started = performance.now()
      yield* Effect.forEach(
        Array.from({ length: clients }, (_, client) => client),
        (client) =>
          Effect.gen(function*() {
            for (let index = 0; index < perClient; index++) {
              const id = `${client}-${index}`
              yield* ledger.reserve({ datasetId: "bench", split: "train", samples: 1, runId: id, reservationId: id })
            }
          }),
        { concurrency: "unbounded", discard: true }
      )
      const seconds = (performance.now() - started) / 1000
      return {
        name: `ledger/fs/reserve/c${clients}`,
        value: Math.round((perClient * clients) / seconds),
        unit: "durable reserves/s"
      }
    }).pipe(
      Effect.provide(
        LedgerFs.layer({
          path: `${dir}/ledger.jsonl`,
          budgets: [{ datasetId: "bench", split: "train", runs: 10_000_000 }]
        })
          .pipe(Layer.provide(NodeContext.layer))
      ),
      Effect.orDie
    )
  )

const benchPipelineFs = inTempDir((dir) =>
  Effect.gen(function*() {
    const samples = 10_000
    const started = performance.now()
    const runId = yield* Effect.gen(function*() {
      const engine = yield* Engine.Engine
      const experiment = yield* engine.evaluate({ datasetId: "bench", split: "train", candidate: { id: "bench" } })
      return experiment.run.runId
    }).pipe(Effect.provide(fileStack(dir, samples)))
    const samplesPerSecond = samples / ((performance.now() - started) / 1000)
    // reopen the store and resume the completed run
    const resumeStarted = performance.now()
    yield* Effect.flatMap(Engine.Engine, (engine) => engine.resume(runId)).pipe(Effect.provide(fileStack(dir, samples)))
    const resumeMs = performance.now() - resumeStarted
    return [
      { name: "pipeline/fs/samples", value: Math.round(samplesPerSecond), unit: "samples/s" },
      { name: "pipeline/fs/resumeMs", value: Math.round(resumeMs * 10) / 10, unit: "ms" }
    ] as const
  }).pipe(Effect.orDie)
)

/** A stack on the file store (one instance of it provides the ledger and the task store). */
const fileStack = (dir: string, samples: number) =>
  storeStack(
    FsStore.layer({ dir, budgets: [{ datasetId: "bench", split: "train", runs: 10 }] }).pipe(
      Layer.provide(NodeContext.layer)
    ),
    samples
  )

const sqliteBudgets = [{ datasetId: "bench", split: "train", runs: 10_000_000 }]

/** Durable reserves per second against a SQLite ledger (better-sqlite3) from `clients` fibers. */
const benchLedgerSqlite = (clients: number, total: number) =>
  inTempDir((dir) =>
    Effect.gen(function*() {
      const ledger = yield* Ledger.Ledger
      const perClient = Math.ceil(total / clients)
      const started = performance.now()
      yield* reserveLoop(ledger, clients, perClient, "")
      const seconds = (performance.now() - started) / 1000
      return {
        name: `ledger/sqlite/reserve/c${clients}`,
        value: Math.round((perClient * clients) / seconds),
        unit: "durable reserves/s"
      }
    }).pipe(
      Effect.provide(SqliteStore.layer({ filename: `${dir}/bench.db`, budgets: sqliteBudgets })),
      Effect.orDie,
      Effect.provide(NodeContext.layer)
    )
  )

const reserveLoop = (ledger: Ledger.Ledger["Type"], clients: number, perClient: number, prefix: string) =>
  Effect.forEach(
    Array.from({ length: clients }, (_, client) => client),
    (client) =>
      Effect.gen(function*() {
        for (let index = 0; index < perClient; index++) {
          const id = `${prefix}${client}-${index}`
          yield* ledger.reserve({ datasetId: "bench", split: "train", samples: 1, runId: id, reservationId: id })
        }
      }),
    { concurrency: "unbounded", discard: true }
  )

/** One of the 4 processes of `ledger/sqlite/reserve/4proc`: prints its start and end times. */
const reserveChild = (filename: string, index: string) =>
  Effect.gen(function*() {
    const ledger = yield* Ledger.Ledger
    const started = Date.now()
    yield* reserveLoop(ledger, 16, 500, `p${index}-`)
    process.stdout.write(`${started} ${Date.now()}\n`)
  }).pipe(
    Effect.provide(SqliteStore.layer({ filename, budgets: sqliteBudgets })),
    Effect.orDie,
    Effect.provide(NodeContext.layer)
  )

/** Total durable reserves per second of 4 processes sharing one SQLite database. */
const benchLedgerSqlite4 = inTempDir((dir) =>
  Effect.gen(function*() {
    const filename = `${dir}/bench.db`
    // create the schema first, so the children measure reserving, not migrating
    yield* Effect.scoped(
      Layer.build(SqliteStore.layer({ filename, budgets: sqliteBudgets }).pipe(Layer.provide(NodeContext.layer)))
    )
    const spans = yield* Effect.all(
      [0, 1, 2, 3].map((index) =>
        Effect.async<readonly [number, number]>((resume) => {
          const child = spawn(process.execPath, [
            ...process.execArgv,
            scriptPath,
            "--reserve-child",
            filename,
            String(index)
          ], {
            stdio: ["ignore", "pipe", "inherit"]
          })
          let out = ""
          child.stdout.setEncoding("utf8").on("data", (chunk: string) => out += chunk)
          child.on("exit", () => {
            const [start, end] = out.trim().split(" ").map(Number)
            resume(Effect.succeed([start!, end!] as const))
          })
        })
      ),
      { concurrency: "unbounded" }
    )
    const seconds = (Math.max(...spans.map(([, end]) => end)) - Math.min(...spans.map(([start]) => start))) / 1000
    return {
      name: "ledger/sqlite/reserve/4proc",
      value: Math.round((4 * 16 * 500) / seconds),
      unit: "durable reserves/s"
    }
  }).pipe(Effect.orDie)
)

/** A no-op task at concurrency 64 over a durable store that provides both the ledger and the task store. */
const storeStack = (store: Layer.Layer<Ledger.Ledger | TaskStore.TaskStore, unknown>, samples: number) =>
  Stack.layerWith({
    budgets: [{ datasetId: "bench", split: "train", runs: 10 }],
    policy: { train: "non_viewable" },
    ledger: () => store,
    store,
    datasets: DatasetSource.layerRecords({ bench: { train: rows(samples) } }),
    strategy: LocalStrategy.layer(
      Task.make({ name: "noop", labelFields: ["label"], infer: () => null, score: () => 1 }),
      { concurrency: 64 }
    )
  })

const benchPipelineSqlite = (client: "sqlite" | "libsql") =>
  inTempDir((dir) =>
    Effect.gen(function*() {
      const samples = 10_000
      const filename = `${dir}/bench.db`
      const budgets = [{ datasetId: "bench", split: "train", runs: 10 }]
      const open = () =>
        (client === "sqlite"
          ? SqliteStore.layer({ filename, budgets })
          : SqliteStore.layerLibsql({ filename, budgets }))
          .pipe(Layer.provide(NodeContext.layer))
      const started = performance.now()
      const runId = yield* Effect.flatMap(
        Engine.Engine,
        (engine) => engine.evaluate({ datasetId: "bench", split: "train", candidate: { id: "bench" } })
      ).pipe(
        Effect.map((experiment) => experiment.run.runId),
        Effect.provide(storeStack(open(), samples))
      )
      const samplesPerSecond = samples / ((performance.now() - started) / 1000)
      const results: Array<Result> = [
        { name: `pipeline/${client}/samples`, value: Math.round(samplesPerSecond), unit: "samples/s" }
      ]
      if (client === "sqlite") {
        const resumeStarted = performance.now()
        yield* Effect.flatMap(Engine.Engine, (engine) => engine.resume(runId)).pipe(
          Effect.provide(storeStack(open(), samples))
        )
        const resumeMs = performance.now() - resumeStarted
        results.push({ name: "pipeline/sqlite/resumeMs", value: Math.round(resumeMs * 10) / 10, unit: "ms" })
      }
      return results
    }).pipe(Effect.orDie)
  )

const scriptPath = new URL(import.meta.url).pathname

const all: ReadonlyArray<readonly [string, Effect.Effect<Result | ReadonlyArray<Result>>]> = [
  ["ledger/memory/reserve/c64", benchLedger],
  ["pipeline/memory/samples", benchPipeline],
  ["pipeline/memory/peakRssMb", benchPeakRss],
  ["process/baselineRssMb", benchBaselineRss],
  ["ledger/fs/reserve/c1", benchLedgerFs(1, 2_000)],
  ["ledger/fs/reserve/c64", benchLedgerFs(64, 100_000)],
  ["pipeline/fs/samples+resumeMs", benchPipelineFs],
  ["ledger/sqlite/reserve/c1", benchLedgerSqlite(1, 2_000)],
  ["ledger/sqlite/reserve/c64", benchLedgerSqlite(64, 100_000)],
  ["ledger/sqlite/reserve/4proc", benchLedgerSqlite4],
  ["pipeline/sqlite/samples+resumeMs", benchPipelineSqlite("sqlite")],
  ["pipeline/libsql/samples", benchPipelineSqlite("libsql")],
  [
    "sidecar/sqlite/evalPerSec+statusPerSec+healthPerSec+evalPerSecNoResults+fsSettleS+fileCreateUsBefore+fileCreateUs",
    SidecarBench.bench
  ],
  ["cli/startMs+evalRoundTripMs", CliBench.bench],
  ["scale/sqlite/1M", Scale.bench("sqlite", 1_000_000, "1M")],
  ["scale/sqlite/10M", Scale.bench("sqlite", 10_000_000, "10M")],
  ["scale/memory/10M", Scale.bench("memory", 10_000_000, "10M")],
  ...Stats.benches,
  ...PgBench.benches(scriptPath, storeStack)
]

/** Groups that run only when asked for by name. */
const optIn = (name: string) => name.startsWith("scale/") || name.startsWith("stats/") || name.includes("/pg/")

const resultOrder = [
  "ledger/memory/reserve/c64",
  "pipeline/memory/samples",
  "pipeline/memory/peakRssMb",
  "process/baselineRssMb",
  "ledger/fs/reserve/c1",
  "ledger/fs/reserve/c64",
  "pipeline/fs/samples",
  "pipeline/fs/resumeMs",
  "ledger/sqlite/reserve/c1",
  "ledger/sqlite/reserve/c64",
  "ledger/sqlite/reserve/4proc",
  "pipeline/sqlite/samples",
  "pipeline/sqlite/resumeMs",
  "pipeline/libsql/samples",
  "ledger/pg/reserve/c64",
  "ledger/pg/reserve/3hosts",
  "pipeline/pg/samples"
]
const order = (name: string) => {
  const index = resultOrder.indexOf(name)
  return index === -1 ? resultOrder.length : index
}

const main = Effect.gen(function*() {
  const filter = process.argv.slice(2).find((argument) => !argument.startsWith("-"))
  const results: Array<Result> = []
  for (const [name, bench] of all) {
    if (filter === undefined ? optIn(name) : !name.includes(filter)) continue
    process.stderr.write(`running ${name}…\n`)
    const result = yield* bench
    if (Array.isArray(result)) results.push(...(result as ReadonlyArray<Result>))
    else results.push(result as Result)
  }
  const width = Math.max(...results.map((result) => result.name.length), 9)
  process.stdout.write(`${"benchmark".padEnd(width)}  ${"value".padStart(12)}  unit\n`)
  for (const result of results) {
    process.stdout.write(`${result.name.padEnd(width)}  ${String(result.value).padStart(12)}  ${result.unit}\n`)
  }
  // a filtered run updates its own figures and keeps the others
  const previous = existsSync("bench-results.json")
    ? (JSON.parse(readFileSync("bench-results.json", "utf8")) as { results?: Array<Result> }).results ?? []
    : []
  const merged = [...previous.filter((old) => !results.some((result) => result.name === old.name)), ...results]
  merged.sort((left, right) => order(left.name) - order(right.name))
  writeFileSync("bench-results.json", JSON.stringify({ results: merged }, null, 2) + "\n")
  process.stdout.write("wrote bench-results.json\n")
})

const childArgument = (flag: string) => process.argv[process.argv.indexOf(flag) + 1]!

const program = process.argv.includes("--reserve-child")
  ? reserveChild(childArgument("--reserve-child"), process.argv[process.argv.indexOf("--reserve-child") + 2]!)
  : process.argv.includes("--pg-reserve-child")
  ? PgBench.child(
    childArgument("--pg-reserve-child"),
    process.argv[process.argv.indexOf("--pg-reserve-child") + 2]!,
    Number(process.argv[process.argv.indexOf("--pg-reserve-child") + 3])
  )
  : process.argv.includes("--rss-child")
  ? rssChild
  : process.argv.includes("--baseline-child")
  ? baselineChild
  : main
Effect.runPromise(Effect.provide(program, Logger.minimumLogLevel(LogLevel.Warning))).catch((error: unknown) => {
  process.stderr.write(`${String(error)}\n`)
  process.exitCode = 1
})
