/**
 * The write-ahead log, synced off the event loop. With `synchronous = FULL`, SQLite syncs its log at
 * every `COMMIT`, on the thread that runs the statement: with a synchronous driver, the event loop
 * serving requests waits for the disk at every commit. A store's own client (`Client.layer`) instead
 * commits with `synchronous = NORMAL`, where SQLite writes the log without syncing it, and syncs the
 * log file itself, on the file system's threads, after the commit and before the write is
 * acknowledged (`Transaction.write`). What is acknowledged is what `FULL` acknowledges:
 *
 * - Once the sync returns, the log on disk holds every frame committed so far, as `FULL` leaves it
 *   after a commit; a sync by any process covers every commit before it in the log. A checkpoint
 *   (SQLite's own, under `NORMAL`) syncs the log before copying it into the database, and the
 *   database after.
 * - The log stays one file while the connection is open: SQLite truncates it in place, and deletes
 *   it only when the last connection of the database closes. It may have been created by this
 *   connection, so its directory is synced once, when it is opened here.
 * - A sync that fails fails the write (`StoreError`): it is committed but not acknowledged, as after
 *   a crash.
 * - Other connections may read a commit before it is synced: a power cut may take back a commit that
 *   was read, never one that was acknowledged.
 *
 * SQLite takes no lock on the log file (its locks are on the database and the `-shm` file), so the
 * handle opened here cannot release one when it is closed. When the log cannot be opened (the
 * database is not in WAL mode, the file system refuses), the connection keeps `FULL`.
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import type * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"

/**
 * The sync of the log of `sql`'s database, whose real path is `database`, open as long as the scope;
 * nothing when the connection must sync its own commits.
 */
export const open = (
  sql: SqlClient.SqlClient,
  fs: FileSystem.FileSystem,
  path: Path.Path,
  database: string
): Effect.Effect<Option.Option<Effect.Effect<void, SqlError>>, never, Scope.Scope> =>
  Effect.gen(function*() {
    // in WAL mode, any statement opens (or creates) the log
    const [mode] = yield* sql.unsafe<{ readonly journal_mode: string }>("PRAGMA journal_mode = WAL")
    if (String(mode?.journal_mode).toLowerCase() !== "wal") {
      yield* Effect.logDebug(`${database} is not in WAL mode: each commit is synced by SQLite`)
      return Option.none()
    }
    const log = yield* fs.open(`${database}-wal`, { flag: "r" })
    yield* Effect.scoped(Effect.flatMap(fs.open(path.dirname(database), { flag: "r" }), (directory) => directory.sync))
    return Option.some(Effect.mapError(
      log.sync,
      (cause) => new SqlError({ cause, message: `Failed to sync the write-ahead log of ${database}` })
    ))
  }).pipe(
    Effect.catchAll((error) =>
      Effect.as(
        Effect.logDebug(
          `The write-ahead log of ${database} cannot be synced here (${error.message}): each commit is synced by SQLite`
        ),
        Option.none()
      )
    )
  )
