/**
 * The embedded SQLite store of a stack: a `Ledger` and a `TaskStore` in one database file, on
 * better-sqlite3 (Node) or on libsql (Node and Deno). A missing file is a new store; an existing file
 * that is empty, not SQLite or not a Holdout store is `LedgerCorrupt`. The writes both stores queue
 * together are one transaction (`FileCommit`). A clean close checkpoints the write-ahead log into the
 * main file.
 *
 * @since 0.1.0
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import * as SqlClient from "@effect/sql/SqlClient"
import type { HoldoutError, Ledger, Model, TaskStore } from "@holdout/core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Client from "./internal/client.js"
import * as FileCommit from "./internal/fileCommit.js"
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
    // the writes of both stores in one group commit: one transaction for what they queued together
    const fileCommit = yield* FileCommit.make(yield* SqlClient.SqlClient)
    return Layer.merge(LedgerSql.layer({ budgets: options.budgets }), TaskStoreSql.layer).pipe(
      Layer.provide(Layer.succeed(FileCommit.FileCommit, fileCommit))
    )
  }))

/**
 * Ledger and task store in one SQLite file on better-sqlite3 (Node only; the embedded default).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Services, Errors, FileSystem.FileSystem | Path.Path> =>
  stores(options).pipe(Layer.provide(Client.layer(options.filename, Client.betterSqlite3)))

/**
 * Ledger and task store in one SQLite file on libsql (Node and Deno).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerLibsql = (options: Options): Layer.Layer<Services, Errors, FileSystem.FileSystem | Path.Path> =>
  stores(options).pipe(Layer.provide(Client.layer(options.filename, Client.libsql)))
