/**
 * The child process of the scale group (bench-scale.ts): one no-op run over a generated split,
 * then the resume of the completed run on a freshly opened stack; prints its figures as one JSON
 * line. bench-scale.ts bundles it and runs the bundle on plain Node, as the built packages run
 * once installed, so its memory is the run's and not a TypeScript loader's.
 *
 *   node <bundle> sqlite|memory <size>
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as FileSystem from "@effect/platform/FileSystem"
import type { HoldoutError } from "@holdout/core"
import { DatasetSource, Engine, Ledger, LocalStrategy, Stack, Task, TaskStore } from "@holdout/core"
import { SqliteStore } from "@holdout/store-sqlite"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"

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
const child = (kind: Kind, size: number) =>
  Effect.scoped(Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const filename = `${yield* fs.makeTempDirectoryScoped()}/scale.db`
    const startRss = process.memoryUsage.rss()
    let peak = startRss
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
        startRssMb: startRss / 1024 / 1024,
        resumeMs
      }) + "\n"
    )
  })).pipe(Effect.provide(NodeContext.layer), Effect.orDie)

const [kind, size] = process.argv.slice(2)
NodeRuntime.runMain(
  child(kind === "memory" ? "memory" : "sqlite", Number(size)).pipe(
    Effect.provide(Logger.minimumLogLevel(LogLevel.Warning))
  ),
  { disablePrettyLogger: true }
)
