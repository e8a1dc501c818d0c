/**
 * One of the multi-process test's children: reserves against a shared SQLite database with 16
 * fibers, repeating some of its own ids and sharing some ids with the other processes, and prints
 * every acknowledged reservation id. Usage: reserver.ts <database file> <process index> <runs|samples>
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Ledger } from "@holdout/core"
import { SqliteStore } from "@holdout/store-sqlite"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { multiProcessBudgets } from "./stack.js"

const [filename, index, mode] = process.argv.slice(2) as [string, string, "runs" | "samples"]

const ids = Array.from(
  { length: 600 },
  (_, attempt) =>
    attempt % 3 === 0 ? `shared-${attempt}` : attempt % 3 === 1 ? `p${index}-${attempt}` : `p${index}-${attempt - 1}`
)

const program = Effect.gen(function*() {
  const ledger = yield* Ledger.Ledger
  const accepted: Array<string> = []
  yield* Effect.forEach(ids, (id, attempt) =>
    Effect.either(
      ledger.reserve({
        datasetId: "multi",
        split: mode,
        samples: mode === "samples" ? 1 + (attempt % 3) : 1,
        runId: id,
        reservationId: id
      })
    ).pipe(Effect.map((outcome) => {
      if (outcome._tag === "Right") accepted.push(`${outcome.right.id} ${outcome.right.samples}`)
    })), { concurrency: 16, discard: true })
  process.stdout.write(accepted.join("\n") + "\n")
})

Effect.runPromise(
  Effect.provide(
    program,
    SqliteStore.layer({ filename, budgets: multiProcessBudgets }).pipe(Layer.provide(NodeContext.layer))
  )
).catch(
  (error: unknown) => {
    process.stderr.write(`reserver failed: ${String(error)}\n`)
    process.exitCode = 1
  }
)
