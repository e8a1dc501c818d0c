import * as NodeContext from "@effect/platform-node/NodeContext"
import * as FileSystem from "@effect/platform/FileSystem"
import { assert, describe, it } from "@effect/vitest"
import { Ledger, TaskStore } from "@holdout/core"
import { SqliteStore } from "@holdout/store-sqlite"
import { makeRun, makeSample } from "@holdout/testkit"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

const isDeno = "Deno" in globalThis
const budgets = [{ datasetId: "d", split: "train", runs: 10 }]

/**
 * The transactions in a write-ahead log: its frames that end one (a commit frame tells the size of
 * the database after it, the others 0), among those written since the log last started over (their
 * salts are the header's).
 */
const transactionsIn = (log: Uint8Array): number => {
  const view = new DataView(log.buffer, log.byteOffset, log.byteLength)
  if (log.byteLength < 32) return 0
  const pageSize = view.getUint32(8)
  const salts = [view.getUint32(16), view.getUint32(20)]
  let commits = 0
  for (let frame = 32; frame + 24 + pageSize <= log.byteLength; frame += 24 + pageSize) {
    if (view.getUint32(frame + 8) !== salts[0] || view.getUint32(frame + 12) !== salts[1]) break
    if (view.getUint32(frame + 4) !== 0) commits++
  }
  return commits
}

/**
 * The transactions of a reservation, a new run and its first sample, queued together on a store
 * opened again (its clean close left the log empty).
 */
const transactionsOfOneEvaluation = (layer: typeof SqliteStore.layer) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const filename = `${yield* fs.makeTempDirectoryScoped()}/holdout.db`
    // made, then closed: the next open finds a store that needs no migration
    yield* Effect.scoped(Layer.build(layer({ filename, budgets })))
    return yield* Effect.scoped(Effect.gen(function*() {
      const context = yield* Layer.build(layer({ filename, budgets }))
      const store = Context.get(context, TaskStore.TaskStore)
      const ledger = Context.get(context, Ledger.Ledger)
      const before = transactionsIn(yield* fs.readFile(`${filename}-wal`))
      yield* Effect.all([
        ledger.reserve({ datasetId: "d", split: "train", samples: 1, runId: "r", reservationId: "r" }),
        store.createRun(makeRun("other", { datasetId: "d", sampleIds: [0] })),
        store.putSample(makeSample("other", 0, { datasetId: "d", score: 1 }))
      ], { concurrency: "unbounded", discard: true })
      const after = transactionsIn(yield* fs.readFile(`${filename}-wal`))
      // what was committed is there
      assert.strictEqual((yield* ledger.get({ datasetId: "d", split: "train" })).spent.runs, 1)
      assert.deepStrictEqual(
        Option.map(yield* store.getRun("other"), (run) => run.progress?.samples),
        Option.some(1)
      )
      return after - before
    }))
  }).pipe(Effect.provide(NodeContext.layer))

describe("the SQLite store's writes: one group commit for both stores of a file", () => {
  it.scoped.skipIf(isDeno)(
    "better-sqlite3: a reservation and task writes queued together are one transaction",
    () =>
      Effect.map(transactionsOfOneEvaluation(SqliteStore.layer), (transactions) => {
        // a batcher per store made two
        assert.strictEqual(transactions, 1)
      })
  )

  it.scoped("libsql: a reservation and task writes queued together are one transaction", () =>
    Effect.map(transactionsOfOneEvaluation(SqliteStore.layerLibsql), (transactions) => {
      assert.strictEqual(transactions, 1)
    }))
})
