/**
 * The scale group of `npm run bench` (opt-in: `npm run bench -- scale`): one no-op run over a large
 * generated split, each in a process of its own so its peak RSS is its own.
 *
 *   scale/sqlite/1M/*      samples per second, peak RSS and the resume of the completed run
 *   scale/sqlite/10M/*     the same at ten million samples (the RSS bound must hold)
 *   scale/memory/10M/*     whether ten million samples complete on memory layers in the default heap
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as FileSystem from "@effect/platform/FileSystem"
import type { HoldoutError } from "@holdout/core"
import { DatasetSource, Engine, Ledger, LocalStrategy, Stack, Task, TaskStore } from "@holdout/core"
import { SqliteStore } from "@holdout/store-sqlite"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { execFileSync } from "node:child_process"

interface Result {
  readonly name: string
  readonly value: number
  readonly unit: string
}

type Kind = "sqlite" | "memory"

/** A split of `size` rows made on demand: the dataset costs no memory of its own. */
const generated = (size: number): Layer.Layer<DatasetSource.DatasetSource> =>
  Layer.succeed(DatasetSource.DatasetSource, {
    info: (datasetId) =>
      datasetId === "scale"
        ? Effect.succeed({ datasetId, splits: { train: size } })
        : Effect.fail(DatasetSource.unknownDataset(datasetId, ["scale"])),
    rows: (_datasetId, _split, ids) => Effect.succeed(ids.map((id) => ({ id, label: id % 2 })))
  })

const budgets = [{ datasetId: "scale", split: "train", runs: 10 }]

const stack = (kind: Kind, filename: string, size: number) => {
  const store: Layer.Layer<
    Ledger.Ledger | TaskStore.TaskStore,
    HoldoutError.StoreError | HoldoutError.ConfigError | HoldoutError.LedgerCorrupt
  > = kind === "sqlite"
    ? SqliteStore.layer({ filename, budgets }).pipe(Layer.provide(NodeContext.layer))
    : Layer.merge(Ledger.layerMemory(budgets), TaskStore.layerMemory)
  return Stack.layerWith({
    budgets,
    policy: { train: "viewable" },
    ledger: () => store,
    store,
    datasets: generated(size),
    strategy: LocalStrategy.layer(
      Task.make({ name: "noop", labelFields: ["label"], infer: () => null, score: () => 1 }),
      { concurrency: 64 }
    )
  })
}

/** The child: evaluates the whole split, then resumes the completed run on a freshly opened stack. */
export const child = (kind: Kind, size: number) =>
  Effect.scoped(Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const filename = `${yield* fs.makeTempDirectoryScoped()}/scale.db`
    let peak = process.memoryUsage.rss()
    const timer = setInterval(() => peak = Math.max(peak, process.memoryUsage.rss()), 20)
    const started = performance.now()
    const cpuStarted = process.cpuUsage()
    const experiment = yield* Effect.flatMap(
      Engine.Engine,
      (engine) => engine.evaluate({ datasetId: "scale", split: "train", candidate: { id: "scale" } })
    ).pipe(Effect.provide(stack(kind, filename, size)))
    const seconds = (performance.now() - started) / 1000
    const cpu = process.cpuUsage(cpuStarted)
    const cpuSeconds = (cpu.user + cpu.system) / 1e6
    if (experiment.metrics.numSuccesses !== size) {
      return yield* Effect.dieMessage(`expected ${size} successes, got ${experiment.metrics.numSuccesses}`)
    }
    let resumeMs = Number.NaN
    if (kind === "sqlite") {
      resumeMs = yield* Effect.flatMap(Engine.Engine, (engine) =>
        Effect.gen(function*() {
          const resumeStarted = performance.now()
          yield* engine.resume(experiment.run.runId)
          return performance.now() - resumeStarted
        })).pipe(Effect.provide(stack(kind, filename, size)))
    }
    clearInterval(timer)
    peak = Math.max(peak, process.memoryUsage.rss(), process.resourceUsage().maxRSS * 1024)
    process.stdout.write(
      JSON.stringify({
        samplesPerSec: size / seconds,
        samplesPerCpuSec: size / cpuSeconds,
        peakRssMb: peak / 1024 / 1024,
        resumeMs
      }) + "\n"
    )
  })).pipe(Effect.provide(NodeContext.layer), Effect.orDie)

const run = (scriptPath: string, kind: Kind, size: number) => {
  try {
    const output = execFileSync(process.execPath, [
      ...process.execArgv,
      scriptPath,
      "--scale-child",
      kind,
      String(size)
    ], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
      maxBuffer: 1024 * 1024
    })
    return JSON.parse(output.trim().split("\n").pop()!) as {
      samplesPerSec: number
      peakRssMb: number
      resumeMs: number
    }
  } catch {
    return undefined
  }
}

const round = (value: number) => Math.round(value * 10) / 10

/** The scale figures of one store at one size. */
export const bench = (scriptPath: string, kind: Kind, size: number, label: string) =>
  Effect.sync((): ReadonlyArray<Result> => {
    const figures = run(scriptPath, kind, size)
    const name = `scale/${kind}/${label}`
    if (kind === "memory") {
      return [
        { name: `${name}/completes`, value: figures === undefined ? 0 : 1, unit: "1 = completed" },
        ...(figures === undefined ? [] : [{ name: `${name}/peakRssMb`, value: round(figures.peakRssMb), unit: "MB" }])
      ]
    }
    if (figures === undefined) return [{ name: `${name}/completes`, value: 0, unit: "1 = completed" }]
    return [
      { name: `${name}/samplesPerSec`, value: Math.round(figures.samplesPerSec), unit: "samples/s" },
      { name: `${name}/peakRssMb`, value: round(figures.peakRssMb), unit: "MB" },
      { name: `${name}/resumeCompletedMs`, value: round(figures.resumeMs), unit: "ms" }
    ]
  })
