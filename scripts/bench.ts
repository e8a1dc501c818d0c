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
import { writeFileSync } from "node:fs"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { DatasetSource, Engine, Ledger, LocalStrategy, SplitAccess, Task, TaskStore } from "@holdout/core"

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

const all: ReadonlyArray<readonly [string, Effect.Effect<Result>]> = [
  ["ledger/memory/reserve/c64", benchLedger],
  ["pipeline/memory/samples", benchPipeline],
  ["pipeline/memory/peakRssMb", benchPeakRss],
  ["process/baselineRssMb", benchBaselineRss]
]

const main = Effect.gen(function*() {
  const filter = process.argv.slice(2).find((argument) => !argument.startsWith("-"))
  const results: Array<Result> = []
  for (const [name, bench] of all) {
    if (filter !== undefined && !name.includes(filter)) continue
    process.stderr.write(`running ${name}…\n`)
    results.push(yield* bench)
  }
  const width = Math.max(...results.map((result) => result.name.length), 9)
  process.stdout.write(`${"benchmark".padEnd(width)}  ${"value".padStart(12)}  unit\n`)
  for (const result of results) {
    process.stdout.write(`${result.name.padEnd(width)}  ${String(result.value).padStart(12)}  ${result.unit}\n`)
  }
  writeFileSync("bench-results.json", JSON.stringify({ results }, null, 2) + "\n")
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
