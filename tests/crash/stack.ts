/** The stack the crash tests' child runs and the parent reopens: a durable store under a local task. */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { DatasetSource, type Ledger, LocalStrategy, Stack, Task, TaskStore } from "@holdout/core"
import { FsStore } from "@holdout/store-fs"
import { SqliteStore } from "@holdout/store-sqlite"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

export const datasetId = "crash"
export const samplesInRun = 2000
export const smallRunLimit = 3000

export const budgets = [
  { datasetId, split: "train", runs: 1_000_000 },
  { datasetId, split: "small", runs: smallRunLimit, samples: 100_000 }
]

const rows = Array.from({ length: samplesInRun }, (_, index) => ({ index, answer: index % 7 }))

const task = Task.make<{ index: number; answer: number }, number, "answer">({
  name: "modulo",
  labelFields: ["answer"],
  infer: (row) => new Promise<number>((resolve) => setTimeout(() => resolve(row.index % 7), Math.random() * 2)),
  score: (row, stored) => (stored.output === row.answer ? 1 : 0)
})

/** The durable stores under test: the file store, and SQLite on better-sqlite3 (Node) or libsql. */
export type StoreKind = "fs" | "sqlite" | "libsql"

/** The database file of the SQLite stores in `dir`. */
export const databaseFile = (dir: string) => `${dir}/holdout.db`

/** The ledger and task store of a kind on `dir`. */
export const storeLayer = (kind: StoreKind, dir: string): Layer.Layer<Ledger.Ledger | TaskStore.TaskStore, unknown> => {
  switch (kind) {
    case "fs":
      return FsStore.layer({ dir, budgets, compactAfterBytes: 256 * 1024 }).pipe(Layer.provide(NodeContext.layer))
    case "sqlite":
      return SqliteStore.layer({ filename: databaseFile(dir), budgets }).pipe(Layer.provide(NodeContext.layer))
    case "libsql":
      return SqliteStore.layerLibsql({ filename: databaseFile(dir), budgets }).pipe(Layer.provide(NodeContext.layer))
  }
}

/** The whole stack on `dir`; `onSample` hears of every sample record once the store acknowledged it. */
export const layer = (
  kind: StoreKind,
  dir: string,
  onSample: (runId: string, sampleId: number) => void = () => {}
): Layer.Layer<Stack.Services, unknown> => {
  // one instance: the same layer value is built once however often the stack uses it
  const store = storeLayer(kind, dir)
  const reporting = Layer.effect(
    TaskStore.TaskStore,
    Effect.map(TaskStore.TaskStore, (inner): TaskStore.TaskStore["Type"] => ({
      ...inner,
      putSample: (sample) =>
        Effect.tap(inner.putSample(sample), () => Effect.sync(() => onSample(sample.runId, sample.sampleId))),
      putSamples: (samples) =>
        Effect.tap(inner.putSamples(samples), () =>
          Effect.sync(() => {
            for (const sample of samples) onSample(sample.runId, sample.sampleId)
          }))
    }))
  ).pipe(Layer.provide(store))
  return Stack.layerWith({
    budgets,
    policy: { train: "viewable", small: "viewable" },
    ledger: () => store,
    store: reporting,
    datasets: DatasetSource.layerRecords({ [datasetId]: { train: rows, small: rows.slice(0, 10) } }),
    strategy: LocalStrategy.layer(task, { concurrency: 32 })
  })
}

/** The budgets of the multi-process test: a run budget and, separately, a sample budget. */
export const multiProcessBudgets = [
  { datasetId: "multi", split: "runs", runs: 1000 },
  { datasetId: "multi", split: "samples", samples: 1500 }
]
