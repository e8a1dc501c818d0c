/**
 * The embedded SQLite store of a stack: a `Ledger` and a `TaskStore` in one database file, on
 * better-sqlite3 (Node) or on libsql (Node and Deno).
 *
 * @since 0.1.0
 */
import * as LibsqlClient from "@effect/sql-libsql/LibsqlClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import type { HoldoutError, Ledger, Model, TaskStore } from "@holdout/core"
import { createClient } from "@libsql/client/node"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
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
type Errors = HoldoutError.ConfigError | HoldoutError.StoreError

const stores = (options: Options) => Layer.merge(LedgerSql.layer({ budgets: options.budgets }), TaskStoreSql.layer)

/**
 * Ledger and task store in one SQLite file on better-sqlite3 (Node only; the embedded default).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Services, Errors> =>
  stores(options).pipe(Layer.provide(Layer.orDie(SqliteClient.layer({ filename: options.filename }))))

/**
 * Ledger and task store in one SQLite file on libsql (Node and Deno).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerLibsql = (options: Options): Layer.Layer<Services, Errors> =>
  stores(options).pipe(
    Layer.provide(
      Layer.orDie(Layer.unwrapScoped(Effect.map(
        Effect.acquireRelease(
          Effect.sync(() => createClient({ url: `file:${options.filename}` })),
          (client) => Effect.sync(() => client.close())
        ),
        (liveClient) => LibsqlClient.layer({ liveClient })
      )))
    )
  )
