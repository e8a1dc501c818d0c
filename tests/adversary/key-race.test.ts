/**
 * Two processes on one SQLite database race the same reservation ids on two different splits: each
 * id is charged once, to one split, and the process that lost is told IdempotencyConflict — never
 * answered with a reservation of the other split.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { assert, describe, it } from "@effect/vitest"
import { Ledger } from "@holdout/core"
import { SqliteStore } from "@holdout/store-sqlite"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { tsxLines } from "../../packages/harness/test/helpers.js"

const racer = fileURLToPath(new URL("./key-racer.ts", import.meta.url))
const count = 120

const race = (filename: string, split: string) =>
  Effect.map(
    tsxLines(racer, [filename, split, String(count)], `key-racer on ${split}`),
    (lines) => new Map(lines.map((line) => line.split(" ") as [string, string]))
  )

describe.skipIf("Deno" in globalThis)("adversary: one key raced on two splits by two processes", () => {
  it.effect(
    "each id is charged once, to one split; the other process gets IdempotencyConflict",
    () =>
      Effect.gen(function*() {
        const dir = mkdtempSync(join(tmpdir(), "holdout-key-race-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
        const filename = join(dir, "holdout.db")
        const [train, validation] = yield* Effect.all([race(filename, "train"), race(filename, "validation")], {
          concurrency: 2
        })
        const budgets = [
          { datasetId: "ds", split: "train", runs: 1000 },
          { datasetId: "ds", split: "validation", runs: 1000 }
        ]
        const journal = yield* Effect.flatMap(Ledger.Ledger, (ledger) => ledger.reservations()).pipe(
          Effect.provide(SqliteStore.layer({ filename, budgets }).pipe(Layer.provide(NodeContext.layer)))
        )
        assert.strictEqual(journal.length, count, "every id is charged exactly once")
        for (const reservation of journal) {
          const mine = reservation.split === "train" ? train : validation
          const theirs = reservation.split === "train" ? validation : train
          assert.strictEqual(mine.get(reservation.id), "ok")
          assert.strictEqual(theirs.get(reservation.id), "IdempotencyConflict", `${reservation.id} was misattributed`)
        }
      }).pipe(Effect.scoped),
    120_000
  )
})
