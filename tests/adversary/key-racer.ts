/**
 * A child of the key-race test: reserves ids race-0 … race-<n−1> on one split of a shared SQLite
 * database, all at once, and prints one line per id: `<id> ok|<error tag>`.
 * Usage: key-racer.ts <database file> <split> <count>
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Ledger } from "@holdout/core"
import { SqliteStore } from "@holdout/store-sqlite"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

const [filename, split, count] = process.argv.slice(2) as [string, string, string]
const budgets = [
  { datasetId: "ds", split: "train", runs: 1000 },
  { datasetId: "ds", split: "validation", runs: 1000 }
]

const program = Effect.gen(function*() {
  const ledger = yield* Ledger.Ledger
  const lines = yield* Effect.forEach(
    Array.from({ length: Number(count) }, (_, index) => `race-${index}`),
    (id) =>
      Effect.map(
        Effect.either(ledger.reserve({ datasetId: "ds", split, samples: 1, runId: id, reservationId: id })),
        (outcome) => `${id} ${outcome._tag === "Right" ? "ok" : outcome.left._tag}`
      ),
    { concurrency: 16 }
  )
  process.stdout.write(lines.join("\n") + "\n")
})

Effect.runPromise(
  Effect.provide(program, SqliteStore.layer({ filename, budgets }).pipe(Layer.provide(NodeContext.layer)))
).catch((error: unknown) => {
  process.stderr.write(`key-racer failed: ${String(error)}\n`)
  process.exitCode = 1
})
