/**
 * Child of the memory test: evaluates one split of `samples` generated rows on a SQLite store and
 * prints the peak of the live heap (measured right after a forced collection, every 100 ms and at
 * the end) as JSON. Run with `node --expose-gc --import tsx`.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as FileSystem from "@effect/platform/FileSystem"
import { DatasetSource, Engine, LocalStrategy, Stack, Task } from "@holdout/core"
import { SqliteStore } from "@holdout/store-sqlite"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"

const samples = Number(process.argv[2])
const collect = (globalThis as { gc?: () => void }).gc
if (collect === undefined) throw new Error("run with --expose-gc")

const liveHeap = () => {
  collect()
  return process.memoryUsage().heapUsed
}

const budgets = [{ datasetId: "heap", split: "train", runs: 2 }]
const rows = Layer.succeed(DatasetSource.DatasetSource, {
  info: (datasetId) => Effect.succeed({ datasetId, splits: { train: samples } }),
  rows: (_datasetId, _split, ids) => Effect.succeed(ids.map((id) => ({ id, text: `sample ${id}`, label: id % 3 })))
})

const program = Effect.scoped(Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const filename = `${yield* fs.makeTempDirectoryScoped()}/heap.db`
  const store = SqliteStore.layer({ filename, budgets }).pipe(Layer.provide(NodeContext.layer))
  const stack = Stack.layerWith({
    budgets,
    policy: { train: "non_viewable" },
    ledger: () => store,
    store,
    datasets: rows,
    strategy: LocalStrategy.layer(
      Task.make<{ id: number; text: string; label: number }, string, "label">({
        name: "echo",
        labelFields: ["label"],
        infer: (row) => row.text.toUpperCase(),
        score: (row, { output }) => (output.length + row.label) % 2
      }),
      { concurrency: 64 }
    )
  })
  const before = liveHeap()
  let peak = before
  const timer = setInterval(() => peak = Math.max(peak, liveHeap()), 100)
  const experiment = yield* Effect.flatMap(
    Engine.Engine,
    (engine) => engine.evaluate({ datasetId: "heap", split: "train", candidate: { id: "c" } })
  ).pipe(Effect.provide(stack), Effect.ensuring(Effect.sync(() => clearInterval(timer))))
  peak = Math.max(peak, liveHeap())
  process.stdout.write(JSON.stringify({ samples: experiment.metrics.numSamples, before, peak }) + "\n")
})).pipe(Effect.provide(NodeContext.layer), Effect.provide(Logger.minimumLogLevel(LogLevel.Warning)))

Effect.runPromise(program).catch((error: unknown) => {
  process.stderr.write(`${String(error)}\n`)
  process.exitCode = 1
})
