import * as NodeContext from "@effect/platform-node/NodeContext"
import * as FileSystem from "@effect/platform/FileSystem"
import { assert, describe, it } from "@effect/vitest"
import { Ledger } from "@holdout/core"
import { LedgerFs } from "@holdout/store-fs"
import { expectFailure, ledgerConformance } from "@holdout/testkit"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

const tempDir = Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped()).pipe(
  Effect.provide(NodeContext.layer)
)

ledgerConformance("file", {
  makeLocation: Effect.map(
    tempDir,
    (dir) => (budgets) =>
      LedgerFs.layer({ path: `${dir}/ledger.jsonl`, budgets }).pipe(Layer.provide(NodeContext.layer))
  ),
  persistent: true
})

const key = { datasetId: "ds", split: "train" }
const budgets = [{ ...key, runs: 100, samples: 1000 }]

const openAt = (path: string, options: Partial<LedgerFs.Options> = {}) =>
  LedgerFs.layer({ path, budgets, ...options }).pipe(Layer.provide(NodeContext.layer))

const useLedger = <A, E>(path: string, f: (ledger: Ledger.Ledger["Type"]) => Effect.Effect<A, E>, options = {}) =>
  Effect.scoped(Effect.flatMap(Ledger.Ledger, f).pipe(Effect.provide(openAt(path, options))))

const reserve = (ledger: Ledger.Ledger["Type"], id: string, samples = 1) =>
  ledger.reserve({ ...key, samples, runId: `run-${id}`, reservationId: id })

const withFs = <A, E>(f: (fs: FileSystem.FileSystem, dir: string) => Effect.Effect<A, E>) =>
  Effect.scoped(Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const dir = yield* fs.makeTempDirectoryScoped()
    return yield* f(fs, dir)
  })).pipe(Effect.provide(NodeContext.layer))

describe("LedgerFs", () => {
  it.effect("every acknowledged reservation is a fsync'd line of the journal", () =>
    withFs((fs, dir) =>
      Effect.gen(function*() {
        const path = `${dir}/ledger.jsonl`
        yield* useLedger(path, (ledger) =>
          Effect.forEach(["a", "b", "c"], (id) => reserve(ledger, id, 2), { concurrency: "unbounded" }))
        const lines = (yield* fs.readFileString(path)).trim().split("\n").map((line) =>
          JSON.parse(line)
        )
          .filter((line) => line.t === "reservation")
        assert.deepStrictEqual(lines.map((line) => line.id).sort(), ["a", "b", "c"])
        assert.isFalse(yield* fs.exists(`${path}.lock`))
      })
    ))

  it.effect("a compacted journal keeps every reservation and what was spent", () =>
    withFs((fs, dir) =>
      Effect.gen(function*() {
        const path = `${dir}/ledger.jsonl`
        const options = { compactAfterBytes: 2048 }
        const journal = yield* useLedger(path, (ledger) =>
          Effect.gen(function*() {
            yield* Effect.forEach(
              Array.from({ length: 90 }, (_, index) => `c${index}`),
              (id) => reserve(ledger, id, 2),
              {
                concurrency: 16,
                discard: true
              }
            )
            return yield* ledger.reservations()
          }), options)
        assert.isFalse(yield* fs.exists(`${path}.compact`))
        yield* useLedger(path, (ledger) =>
          Effect.gen(function*() {
            assert.deepStrictEqual((yield* ledger.get(key)).spent, { runs: 90, samples: 180 })
            assert.sameDeepMembers([...(yield* ledger.reservations())], [...journal])
          }), options)
      })
    ))

  it.effect("a torn last line is discarded; the ledger opens with what was acknowledged", () =>
    withFs((fs, dir) =>
      Effect.gen(function*() {
        const path = `${dir}/ledger.jsonl`
        yield* useLedger(path, (ledger) => Effect.all([reserve(ledger, "a", 3), reserve(ledger, "b", 4)]))
        const text = yield* fs.readFileString(path)
        yield* fs.writeFileString(path, text + "{\"t\":\"reservation\",\"id\":\"c\",\"datasetId\":\"ds\",\"spl")
        yield* useLedger(path, (ledger) =>
          Effect.gen(function*() {
            assert.deepStrictEqual((yield* ledger.get(key)).spent, { runs: 2, samples: 7 })
            yield* reserve(ledger, "d", 1)
          }))
        yield* useLedger(path, (ledger) =>
          Effect.gen(function*() {
            assert.deepStrictEqual((yield* ledger.reservations()).map((entry) => entry.id), ["a", "b", "d"])
          }))
      })
    ))

  for (
    const [name, damage] of [
      ["garbage in the middle", (text: string) => text.replace("\n", "\n#garbage#\n")],
      ["a line of the wrong schema", (text: string) => text + "{\"t\":\"reservation\",\"id\":5}\n"],
      ["a terminated bad last line", (text: string) => text + "{not json\n"]
    ] as const
  ) {
    it.effect(`${name} is LedgerCorrupt, and the file is left as it was`, () =>
      withFs((fs, dir) =>
        Effect.gen(function*() {
          const path = `${dir}/ledger.jsonl`
          yield* useLedger(path, (ledger) => Effect.all([reserve(ledger, "a"), reserve(ledger, "b")]))
          const damaged = damage(yield* fs.readFileString(path))
          yield* fs.writeFileString(path, damaged)
          const error = yield* expectFailure(useLedger(path, () => Effect.void))
          assert.strictEqual(error._tag, "LedgerCorrupt")
          assert.include(error.message, "onCorrupt")
          assert.strictEqual(yield* fs.readFileString(path), damaged)
        })
      ))
  }

  it.effect("onCorrupt: exhaust sets the file aside and opens with every budget at 0, across reopens", () =>
    withFs((fs, dir) =>
      Effect.gen(function*() {
        const path = `${dir}/ledger.jsonl`
        yield* fs.writeFileString(path, "#garbage#\n")
        const exhaust = { onCorrupt: "exhaust" as const }
        yield* useLedger(path, (ledger) =>
          Effect.gen(function*() {
            assert.deepStrictEqual((yield* ledger.get(key)).remaining, { runs: 0, samples: 0 })
            const error = yield* expectFailure(reserve(ledger, "x"))
            assert.strictEqual(error._tag, "BudgetExhausted")
          }), exhaust)
        const aside = (yield* fs.readDirectory(dir)).filter((name) => name.startsWith("ledger.jsonl.corrupt-"))
        assert.strictEqual(aside.length, 1)
        assert.strictEqual(yield* fs.readFileString(`${dir}/${aside[0]}`), "#garbage#\n")
        // the exhaustion is durable: a plain reopen does not refill the budget
        yield* useLedger(path, (ledger) =>
          Effect.gen(function*() {
            assert.deepStrictEqual((yield* ledger.get(key)).remaining, { runs: 0, samples: 0 })
          }))
      })
    ))

  it.effect("a second open of a held journal is LedgerLocked; a stale lock is taken over", () =>
    withFs((fs, dir) =>
      Effect.gen(function*() {
        const path = `${dir}/ledger.jsonl`
        yield* useLedger(path, () =>
          Effect.gen(function*() {
            const error = yield* expectFailure(useLedger(path, () => Effect.void))
            assert.strictEqual(error._tag, "LedgerLocked")
          }))
        // a lock left by a process that is gone
        yield* fs.writeFileString(`${path}.lock`, JSON.stringify({ pid: 999_999_999, token: "dead" }))
        yield* useLedger(path, (ledger) => reserve(ledger, "after-takeover"))
        // a lock held by a live process other than this one
        yield* fs.writeFileString(`${path}.lock`, JSON.stringify({ pid: 1, token: "init" }))
        const locked = yield* expectFailure(useLedger(path, () => Effect.void, { isAlive: () => true }))
        assert.strictEqual(locked._tag, "LedgerLocked")
      })
    ))
})
