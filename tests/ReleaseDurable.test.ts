import * as NodeContext from "@effect/platform-node/NodeContext"
import * as FileSystem from "@effect/platform/FileSystem"
import { assert, describe, it } from "@effect/vitest"
import { DatasetSource, Engine, Ledger, LocalStrategy, Release, Stack, Task } from "@holdout/core"
import { FsStore } from "@holdout/store-fs"
import { SqliteStore } from "@holdout/store-sqlite"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

// better-sqlite3 does not load under Deno; libsql reads the same file
const isDeno = "Deno" in globalThis
const budgets = [{ datasetId: "d", split: "train", runs: 20 }, { datasetId: "d", split: "validation", runs: 20 }]
const releases: Release.Releases = {
  validation: { _tag: "thresholdout", reference: "train", threshold: 0.1, sigma: 1e-9, overfitBudget: 3 }
}
// every candidate passes train; on validation, "bad" fails everything
const task = Task.make<{ readonly n: number }, number>({
  name: "split-aware",
  infer: (row) => row.n,
  score: (_row, _stored, run) => (run.candidate.id === "bad" && run.split === "validation" ? 0 : 1)
})
const rows = Array.from({ length: 10 }, (_, n) => ({ n }))

const kinds = [
  [
    "SQLite",
    (dir: string) =>
      (isDeno ? SqliteStore.layerLibsql : SqliteStore.layer)({
        filename: `${dir}/h.db`,
        budgets: [...budgets, ...Release.overfitBudgets(releases, budgets)]
      })
  ],
  ["file", (dir: string) => FsStore.layer({ dir, budgets: [...budgets, ...Release.overfitBudgets(releases, budgets)] })]
] as const

for (const [name, storeOf] of kinds) {
  describe(`thresholdout on a durable store (${name})`, () => {
    it.scoped("the overfitting budget is charged once per over-threshold request and survives a restart", () =>
      Effect.gen(function*() {
        const dir = yield* (yield* FileSystem.FileSystem).makeTempDirectoryScoped()
        const open = () => {
          const store = storeOf(dir).pipe(Layer.provide(NodeContext.layer))
          return Stack.layerWith({
            budgets,
            policy: { train: "viewable", validation: "non_viewable" },
            ledger: () => store,
            store,
            datasets: DatasetSource.layerRecords({ d: { train: rows, validation: rows } }),
            strategy: LocalStrategy.layer(task),
            engine: { releases }
          })
        }
        const overfit = Release.overfitKey("d", "validation")
        const first = yield* Effect.gen(function*() {
          const engine = yield* Engine.Engine
          yield* engine.evaluate({ datasetId: "d", split: "train", candidate: { id: "bad" } })
          const told = yield* engine.evaluate({ datasetId: "d", split: "validation", candidate: { id: "bad" } })
          assert.strictEqual((yield* (yield* Ledger.Ledger).get(overfit)).spent.runs, 1)
          return told.release!
        }).pipe(Effect.provide(open()), Effect.scoped)
        assert.closeTo(first.mean, 0, 1e-6)
        // after a restart: the same request is told the same, and B is not charged again
        yield* Effect.gen(function*() {
          const engine = yield* Engine.Engine
          const ledger = yield* Ledger.Ledger
          assert.strictEqual((yield* ledger.get(overfit)).spent.runs, 1)
          const again = yield* engine.evaluate({ datasetId: "d", split: "validation", candidate: { id: "bad" } })
          assert.deepStrictEqual(again.release, first)
          assert.strictEqual((yield* ledger.get(overfit)).spent.runs, 1)
          const status = yield* engine.status()
          assert.deepStrictEqual(status.find((entry) => entry.split === "validation")?.overfit, {
            limit: 3,
            spent: 1,
            remaining: 2
          })
        }).pipe(Effect.provide(open()), Effect.scoped)
      }).pipe(Effect.provide(NodeContext.layer)))
  })
}
