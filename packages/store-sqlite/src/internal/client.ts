/**
 * The SQLite client of a database file, on better-sqlite3 or libsql. Both drivers are synchronous:
 * while SQLite waits for a lock (`busy_timeout`), the whole thread waits with it. Two clients of one
 * file in one process (two stacks, a sidecar and a verifier) must therefore never wait on each other's
 * SQLite lock, or the waiter would block the holder it waits for: every client of a file in a process
 * shares one lock (`Transaction.shareLock`), and SQLite's own lock only ever waits for other processes.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as LibsqlClient from "@effect/sql-libsql/LibsqlClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type { HoldoutError } from "@holdout/core"
import { createClient } from "@libsql/client/node"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { openError } from "./errors.js"
import * as Execute from "./execute.js"
import * as Integrity from "./integrity.js"
import * as Transaction from "./transaction.js"

/** better-sqlite3 (Node only), its statements run on its connection directly (`Execute.direct`). */
export const betterSqlite3 = (filename: string): Layer.Layer<SqlClient.SqlClient, HoldoutError.StoreError> =>
  Layer.mapError(
    Layer.effectDiscard(Effect.flatMap(SqlClient.SqlClient, Execute.direct)).pipe(
      Layer.provideMerge(SqliteClient.layer({ filename }))
    ),
    openError(filename)
  )

/** libsql (Node and Deno). */
export const libsql = (filename: string): Layer.Layer<SqlClient.SqlClient, HoldoutError.StoreError> =>
  Layer.mapError(
    Layer.unwrapScoped(Effect.map(
      Effect.acquireRelease(
        Effect.try({ try: () => createClient({ url: `file:${filename}` }), catch: openError(filename) }),
        (client) => Effect.sync(() => client.close())
      ),
      (liveClient) => LibsqlClient.layer({ liveClient })
    )),
    openError(filename)
  )

/**
 * The client of `filename`, once the file is known to be a SQLite file (a new store's file is created
 * whole first, `Integrity.createFresh`), sharing the lock of every other client of the file in this
 * process.
 */
export const layer = <E>(
  filename: string,
  client: (filename: string) => Layer.Layer<SqlClient.SqlClient, E>
): Layer.Layer<
  SqlClient.SqlClient,
  E | HoldoutError.StoreError | HoldoutError.LedgerCorrupt,
  FileSystem.FileSystem | Path.Path
> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const missing = yield* Integrity.checkFile(fs, path, filename)
    if (missing) yield* Integrity.createFresh(fs, filename, client)
    // one file by two names (a relative path, a symbolic link) is one lock
    const key = yield* Effect.orElseSucceed(fs.realPath(filename), () => path.resolve(filename))
    return Layer.effectDiscard(Effect.flatMap(SqlClient.SqlClient, (sql) => Transaction.shareLock(sql, key))).pipe(
      Layer.provideMerge(client(filename))
    )
  }))
