import * as NodeContext from "@effect/platform-node/NodeContext"
import * as FileSystem from "@effect/platform/FileSystem"
import { assert, describe, it } from "@effect/vitest"
import { Ledger, TaskStore } from "@holdout/core"
import { SqliteStore } from "@holdout/store-sqlite"
import { makeRun, makeSample } from "@holdout/testkit"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

const isDeno = "Deno" in globalThis
const budgets = [{ datasetId: "ds", split: "train", runs: 1000, samples: 100_000 }]
const key = { datasetId: "ds", split: "train" }

const clients = [
  ...(isDeno ? [] : [["better-sqlite3", SqliteStore.layer] as const]),
  ["libsql", SqliteStore.layerLibsql] as const
]

const services = Effect.all({ ledger: Ledger.Ledger, store: TaskStore.TaskStore })

for (const [name, open] of clients) {
  describe(`store-sqlite (${name}): the writes of both stores share one writer`, () => {
    it.scoped("concurrent reservations, runs and samples all land, each with its own outcome", () =>
      Effect.gen(function*() {
        const filename = `${yield* (yield* FileSystem.FileSystem).makeTempDirectoryScoped()}/holdout.db`
        const { ledger, store } = yield* Effect.provide(services, yield* Layer.build(open({ filename, budgets })))
        yield* Effect.forEach(Array.from({ length: 40 }, (_, index) => `r${index}`), (runId) =>
          Effect.gen(function*() {
            yield* ledger.reserve({ ...key, samples: 3, runId, reservationId: runId })
            yield* store.createRun(makeRun(runId, { sampleIds: [0, 1, 2] }))
            yield* Effect.forEach([0, 1, 2], (sampleId) => store.putSample(makeSample(runId, sampleId)), {
              concurrency: "unbounded"
            })
            // refused inside a shared round, changing nothing
            const again = yield* Effect.flip(store.createRun(makeRun(runId, { sampleIds: [0] })))
            assert.strictEqual(again._tag, "StoreError")
          }), { concurrency: "unbounded", discard: true })
        const spent = yield* ledger.get(key)
        assert.deepStrictEqual(spent.spent, { runs: 40, samples: 120 })
        const run = Option.getOrThrow(yield* store.getRun("r7"))
        assert.strictEqual(run.progress?.samples, 3)
        assert.deepStrictEqual(run.sampleIds, [0, 1, 2])
        assert.strictEqual((yield* store.listRuns()).length, 40)
      }).pipe(Effect.provide(NodeContext.layer)))

    it.scoped("what one store spent is seen by another on the same file at once, both ways", () =>
      Effect.gen(function*() {
        const filename = `${yield* (yield* FileSystem.FileSystem).makeTempDirectoryScoped()}/holdout.db`
        const first = yield* Layer.build(open({ filename, budgets }))
        const second = yield* Layer.build(open({ filename, budgets }))
        const ledgerOf = (context: typeof first) => Effect.provide(Ledger.Ledger, context)
        const a = yield* ledgerOf(first)
        const b = yield* ledgerOf(second)
        const spentBy = (ledger: Ledger.Ledger["Type"]) => Effect.map(ledger.get(key), (snapshot) => snapshot.spent)
        // each ledger keeps what it knows; the other's commits must still show
        assert.deepStrictEqual(yield* spentBy(a), { runs: 0, samples: 0 })
        assert.deepStrictEqual(yield* spentBy(b), { runs: 0, samples: 0 })
        yield* a.reserve({ ...key, samples: 5, runId: "x", reservationId: "x" })
        assert.deepStrictEqual(yield* spentBy(b), { runs: 1, samples: 5 })
        yield* b.reserve({ ...key, samples: 7, runId: "y", reservationId: "y" })
        assert.deepStrictEqual(yield* spentBy(a), { runs: 2, samples: 12 })
        yield* a.reserve({ ...key, samples: 1, runId: "z", reservationId: "z" })
        assert.deepStrictEqual(yield* spentBy(a), { runs: 3, samples: 13 })
        assert.deepStrictEqual(yield* spentBy(b), { runs: 3, samples: 13 })
        // a repeat through the other store is the first reservation, charged once
        const repeat = yield* b.reserve({ ...key, samples: 5, runId: "x", reservationId: "x" })
        assert.strictEqual(repeat.samples, 5)
        assert.deepStrictEqual(yield* spentBy(a), { runs: 3, samples: 13 })
      }).pipe(Effect.provide(NodeContext.layer)))
  })
}
