/** Opens a file ledger and holds it until killed. Usage: hold.ts <journal path> */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Ledger } from "@holdout/core"
import { LedgerFs } from "@holdout/store-fs"
import * as Effect from "effect/Effect"

const [path] = process.argv.slice(2) as [string]

Effect.runPromise(
  Effect.gen(function*() {
    yield* Ledger.Ledger
    process.stdout.write("ready\n")
    yield* Effect.never
  }).pipe(
    Effect.provide(LedgerFs.layer({ path, budgets: [{ datasetId: "ds", split: "train", runs: 5 }] })),
    Effect.provide(NodeContext.layer)
  )
).catch((error: unknown) => {
  process.stderr.write(`hold failed: ${String(error)}\n`)
  process.exitCode = 1
})
