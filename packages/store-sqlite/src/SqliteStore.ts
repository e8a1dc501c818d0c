/**
 * The embedded SQLite store of a stack: a `Ledger` and a `TaskStore` in one database file, on
 * better-sqlite3 (Node) or on libsql (Node and Deno). A missing file is a new store; an existing file
 * that is empty, not SQLite or not a Holdout store is `LedgerCorrupt`. A clean close checkpoints the
 * write-ahead log into the main file.
 *
 * @since 0.1.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as LibsqlClient from "@effect/sql-libsql/LibsqlClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { HoldoutError, Ledger, Model, TaskStore } from "@holdout/core"
import { createClient } from "@libsql/client/node"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { openError } from "./internal/errors.js"
import * as Integrity from "./internal/integrity.js"
import * as LedgerSql from "./LedgerSql.js"
import * as TaskStoreSql from "./TaskStoreSql.js"

/**
 * Options of an embedded store: the database file and the budgets of its ledger.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly filename: string
  readonly budgets: ReadonlyArray<Model.SplitBudget>
}

type Services = Ledger.Ledger | TaskStore.TaskStore
type Errors = HoldoutError.ConfigError | HoldoutError.StoreError | HoldoutError.LedgerCorrupt

const stores = (options: Options) =>
  Layer.unwrapScoped(Effect.gen(function*() {
    yield* Integrity.checkTables(options.filename)
    // added before the stores are built, so it runs after they are released
    yield* Integrity.checkpointOnClose
    return Layer.merge(LedgerSql.layer({ budgets: options.budgets }), TaskStoreSql.layer)
  }))

/**
 * The client layer of `filename`, once the file is known to be a SQLite file; a new store's file is
 * created whole first (`Integrity.createFresh`).
 */
const checked = <E>(filename: string, client: (filename: string) => Layer.Layer<SqlClient.SqlClient, E>) =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const missing = yield* Integrity.checkFile(fs, yield* Path.Path, filename)
    if (missing) yield* Integrity.createFresh(fs, filename, client)
    return client(filename)
  }))

const betterSqlite3 = (filename: string) => Layer.mapError(SqliteClient.layer({ filename }), openError(filename))

const libsql = (filename: string) =>
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
 * Ledger and task store in one SQLite file on better-sqlite3 (Node only; the embedded default).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Services, Errors, FileSystem.FileSystem | Path.Path> =>
  stores(options).pipe(Layer.provide(checked(options.filename, betterSqlite3)))

/**
 * Ledger and task store in one SQLite file on libsql (Node and Deno).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerLibsql = (options: Options): Layer.Layer<Services, Errors, FileSystem.FileSystem | Path.Path> =>
  stores(options).pipe(Layer.provide(checked(options.filename, libsql)))
