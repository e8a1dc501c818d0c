/**
 * Holdout benchmarks: prints a table and writes bench-results.json ({ results: [{ name, value, unit }] }).
 *
 *   npm run bench              all benchmarks
 *   npm run bench -- ledger    only those whose name contains "ledger"
 *
 * Figures depend on the machine and on what else runs on it; compare runs on one machine only.
 * Memory figures come from a child process of their own, so earlier benchmarks do not inflate them.
 */
import { execFileSync } from "node:child_process"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as FileSystem from "@effect/platform/FileSystem"
import { DatasetSource, Engine, Ledger, LocalStrategy, SplitAccess, Stack, Task, TaskStore } from "@holdout/core"
import { FsStore, LedgerFs } from "@holdout/store-fs"

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
    Effect.forEach(Array.from({ length: 20_000 }, (_, index) => index), (index) =>
      warm.reserve({ datasetId: "bench", split: "train", samples: 1, runId: `w${index}`, reservationId: `w${index}` }), {
      discard: true
    })
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
        LedgerFs.layer({ path: `${dir}/ledger.jsonl`, budgets: [{ datasetId: "bench", split: "train", runs: 10_000_000 }] })
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
const fileStack = (dir: string, samples: number) => {
  const budgets = [{ datasetId: "bench", split: "train", runs: 10 }]
  const store = FsStore.layer({ dir, budgets }).pipe(Layer.provide(NodeContext.layer))
  return Stack.layerWith({
    budgets,
    policy: { train: "non_viewable" },
    ledger: () => store,
    store,
    datasets: DatasetSource.layerRecords({ bench: { train: rows(samples) } }),
    strategy: LocalStrategy.layer(
      Task.make({ name: "noop", labelFields: ["label"], infer: () => null, score: () => 1 }),
      { concurrency: 64 }
    )
  })
}

const all: ReadonlyArray<readonly [string, Effect.Effect<Result | ReadonlyArray<Result>>]> = [
  ["ledger/memory/reserve/c64", benchLedger],
  ["pipeline/memory/samples", benchPipeline],
  ["pipeline/memory/peakRssMb", benchPeakRss],
  ["process/baselineRssMb", benchBaselineRss],
  ["ledger/fs/reserve/c1", benchLedgerFs(1, 2_000)],
  ["ledger/fs/reserve/c64", benchLedgerFs(64, 100_000)],
  ["pipeline/fs/samples+resumeMs", benchPipelineFs]
]

const resultOrder = [
  "ledger/memory/reserve/c64",
  "pipeline/memory/samples",
  "pipeline/memory/peakRssMb",
  "process/baselineRssMb",
  "ledger/fs/reserve/c1",
  "ledger/fs/reserve/c64",
  "pipeline/fs/samples",
  "pipeline/fs/resumeMs"
]
const order = (name: string) => {
  const index = resultOrder.indexOf(name)
  return index === -1 ? resultOrder.length : index
}

const main = Effect.gen(function*() {
  const filter = process.argv.slice(2).find((argument) => !argument.startsWith("-"))
  const results: Array<Result> = []
  for (const [name, bench] of all) {
    if (filter !== undefined && !name.includes(filter)) continue
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

const program = process.argv.includes("--rss-child")
  ? rssChild
  : process.argv.includes("--baseline-child")
  ? baselineChild
  : main
Effect.runPromise(Effect.provide(program, Logger.minimumLogLevel(LogLevel.Warning))).catch((error: unknown) => {
  process.stderr.write(`${String(error)}\n`)
  process.exitCode = 1
})
