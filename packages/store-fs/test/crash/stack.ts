/** The stack the crash test's child runs and the parent reopens: a file store under a local task. */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { DatasetSource, LocalStrategy, Stack, Task, TaskStore } from "@holdout/core"
import { FsStore } from "@holdout/store-fs"
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

/** The whole stack on `dir`; `onSample` hears of every sample record once the store acknowledged it. */
export const layer = (
  dir: string,
  onSample: (runId: string, sampleId: number) => void = () => {}
): Layer.Layer<Stack.Services, unknown> => {
  // one instance: the same layer value is built once however often the stack uses it
  const store = FsStore.layer({ dir, budgets, compactAfterBytes: 256 * 1024 }).pipe(Layer.provide(NodeContext.layer))
  const reporting = Layer.effect(
    TaskStore.TaskStore,
    Effect.map(TaskStore.TaskStore, (inner): TaskStore.TaskStore["Type"] => ({
      ...inner,
      putSample: (sample) =>
        Effect.tap(inner.putSample(sample), () => Effect.sync(() => onSample(sample.runId, sample.sampleId)))
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
