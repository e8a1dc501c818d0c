/**
 * The Holdout quickstart: a search over k-nearest-neighbours settings on the Iris data set.
 * `train` is viewable (the optimizer sees which flowers a candidate gets wrong), `validation` is
 * non_viewable (a mean score only) and `test` is no_access (only the verifier scores it). Every
 * evaluation is charged to its split's budget in an embedded SQLite database under `.holdout/`;
 * running the quickstart again continues with what the budgets have left, until they run out.
 *
 *   npm run quickstart                      (Node, better-sqlite3)
 *   npm run quickstart:deno                 (Deno, libsql; the same database file)
 *
 * Delete `.holdout/quickstart.db` to start over (`HOLDOUT_DIR` moves `.holdout`).
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { SqliteStore } from "@holdout/store-sqlite"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { mkdirSync } from "node:fs"
import { render, session } from "./session.js"
import { budgets, make, splits } from "./stack.js"

const dir = process.env["HOLDOUT_DIR"] ?? ".holdout"
const filename = `${dir}/quickstart.db`
mkdirSync(dir, { recursive: true })

// better-sqlite3 is the embedded default on Node; it does not load under Deno, libsql does
const stores = ("Deno" in globalThis
  ? SqliteStore.layerLibsql({ filename, budgets })
  : SqliteStore.layer({ filename, budgets })).pipe(Layer.provide(NodeContext.layer))

const program = Effect.gen(function*() {
  process.stdout.write(
    `Holdout quickstart: k-NN settings on Iris — train ${splits.train.length} flowers (viewable), ` +
      `validation ${splits.validation.length} (non_viewable), test ${splits.test.length} (no_access)\n` +
      `budgets and results in ${filename} (delete it to start over)\n\n`
  )
  const report = yield* session()
  process.stdout.write(render(report) + "\n")
})

// Ctrl-C interrupts the program, so the store is closed before the process exits
NodeRuntime.runMain(
  program.pipe(
    Effect.provide(make(stores)),
    Effect.provide(Logger.minimumLogLevel(LogLevel.Error)),
    Effect.tapErrorCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.void
        : Effect.sync(() => process.stderr.write(`quickstart failed: ${String(Cause.squash(cause))}\n`))
    )
  ),
  { disableErrorReporting: true }
)
