/**
 * The multi-host test's own PostgreSQL server (`scripts/pg-cluster.sh`): a throwaway cluster that
 * also listens on the hosts' gateway address, so that every namespace reaches it, and that the test
 * may stop and start without disturbing the server other test files share. Not a test file.
 */
import * as Command from "@effect/platform/Command"
import * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { failureOf, outputOf } from "./network.js"

const script = fileURLToPath(new URL("../../scripts/pg-cluster.sh", import.meta.url))

/** The server could not be started or stopped; the message says why and what to do. */
export class DatabaseError extends Data.TaggedError("DatabaseError")<{ readonly message: string }> {
  override toString() {
    return this.message
  }
}

/** A running server: the URL the hosts use (on `address`), and its `stop` and `start` (same port, same data). */
export interface Database {
  readonly url: string
  readonly stop: Effect.Effect<void, DatabaseError>
  readonly start: Effect.Effect<void, DatabaseError>
}

/** `scripts/pg-cluster.sh <args>` listening also on `address`: its stdout, or a DatabaseError with its stderr. */
const cluster = (address: string, ...args: Array<string>) =>
  Effect.flatMap(
    outputOf(Command.make(script, ...args).pipe(Command.env({ HOLDOUT_PG_LISTEN: `127.0.0.1,${address}` }))),
    (output) =>
      output.code === 0
        ? Effect.succeed(output.stdout.trim())
        : Effect.fail(
          new DatabaseError({ message: `scripts/pg-cluster.sh ${args[0]} failed: ${failureOf(output)}` })
        )
  ).pipe(
    Effect.catchTag("SystemError", "BadArgument", (error) =>
      Effect.fail(new DatabaseError({ message: `cannot run scripts/pg-cluster.sh (${error.message})` })))
  )

/**
 * A new cluster listening on 127.0.0.1 and on `address` (which must already be an address of this
 * namespace); stopped and removed with the scope.
 */
export const database = (
  address: string
): Effect.Effect<Database, DatabaseError, CommandExecutor.CommandExecutor | Scope.Scope> =>
  Effect.gen(function*() {
    // its own directory, outside the test's private one: the server runs as the user postgres
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), "holdout-multihost-pg-"))),
      (dir) => Effect.ignore(cluster(address, "stop", dir))
    )
    const local = yield* cluster(address, "start", dir)
    const url = new URL(local)
    url.hostname = address
    const executor = yield* CommandExecutor.CommandExecutor
    const run = (...args: Array<string>) =>
      cluster(address, ...args).pipe(Effect.asVoid, Effect.provideService(CommandExecutor.CommandExecutor, executor))
    return { url: url.toString(), stop: run("stop", dir, "--keep"), start: run("start", dir) }
  })
