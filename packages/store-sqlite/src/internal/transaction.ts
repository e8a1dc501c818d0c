/**
 * Transactions of the stores, per dialect.
 *
 * SQLite: every store operation holds the lock of its database file in this process (one for every
 * client of the file, `shareLock`), and a write runs between explicit `BEGIN IMMEDIATE` (the write
 * lock first, so another process cannot slip in between a read and a write) and `COMMIT` on the
 * client's own connection. The client's `withTransaction` is not used there: libsql opens a new
 * connection for each of its transactions and never closes them, which loses the connection's
 * settings and leaks file handles.
 *
 * PostgreSQL: the client is a pool, so reads run side by side, and a write is a transaction on one
 * reserved connection of the pool that first takes a transaction-scoped advisory lock of
 * its store: the writes of one store are serialized across every process and host, as
 * `BEGIN IMMEDIATE` serializes them on SQLite, and every read after the lock sees what the previous
 * holder committed (READ COMMITTED). The ledger's lock row (SQLite's) is not used there: updating it
 * in every batch halved the reservations per second against the advisory lock. The budget keys a
 * batch touches are not known before its steps run, so the lock is the ledger's, not a key's.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { KeyedLock } from "@holdout/core"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Execute from "./execute.js"

/** The locks of the database files open in this process; a client of no known file is its own key. */
const fileLocks = KeyedLock.make<string | SqlClient.SqlClient>()

/** The database file of each client (`shareLock`). */
const files = new WeakMap<SqlClient.SqlClient, string>()

/**
 * Makes `sql` share the lock of every other client of the database file `key` (its real path) in
 * this process: two clients of one file then take turns in the process instead of waiting for each
 * other's SQLite lock (which, with a synchronous driver, blocks the thread the holder needs to finish).
 */
export const shareLock = (sql: SqlClient.SqlClient, key: string): Effect.Effect<void> =>
  Effect.sync(() => {
    files.set(sql, key)
  })

/** Runs `effect` alone on the client (no store transaction is open meanwhile); PostgreSQL: as is. */
export const exclusive = <A, E, R>(sql: SqlClient.SqlClient, effect: Effect.Effect<A, E, R>) =>
  sql.onDialectOrElse({ pg: () => effect, orElse: () => fileLocks(files.get(sql) ?? sql, effect) })

/**
 * The store whose writes a transaction serializes (PostgreSQL's advisory lock keys; any fixed
 * numbers, chosen not to collide with other users of advisory locks in the same database).
 */
export type Lock = "ledger" | "tasks"

const advisoryKeys: Record<Lock, number> = { ledger: 0x484f4c44, tasks: 0x484f4c45 }

/** Runs `effect` in a write transaction that holds the lock of `store`: committed if it succeeds, rolled back otherwise. */
export const write = <A, E, R>(
  sql: SqlClient.SqlClient,
  store: Lock,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | SqlError, R> =>
  sql.onDialectOrElse({
    pg: () =>
      Effect.scoped(Effect.flatMap(sql.reserve, (connection) => {
        const run = (statement: string) => Effect.asVoid(connection.executeUnprepared(statement, [], undefined))
        const inside = Effect.provideService(effect, SqlClient.TransactionConnection, [connection, 0] as const)
        // one round trip: the key is a constant of this module
        const begin = run(`BEGIN; SELECT pg_advisory_xact_lock(${advisoryKeys[store]})`)
        return inTransaction(begin, inside, run("COMMIT"), run("ROLLBACK"))
      })),
    orElse: () => {
      const execute = Execute.runner(sql)
      return exclusive(
        sql,
        inTransaction(
          execute(sql.unsafe("BEGIN IMMEDIATE")),
          effect,
          execute(sql.unsafe("COMMIT")),
          execute(sql.unsafe("ROLLBACK"))
        )
      )
    }
  })

// The client's `withTransaction` is not used on PostgreSQL either: it turns a failed COMMIT (a lost
// connection, whose outcome is unknown) into a defect, where the stores need a `StoreError`.
const inTransaction = <A, E, R, X, Y, Z>(
  begin: Effect.Effect<X, SqlError>,
  effect: Effect.Effect<A, E, R>,
  commit: Effect.Effect<Y, SqlError>,
  rollback: Effect.Effect<Z, SqlError>
): Effect.Effect<A, E | SqlError, R> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.zipRight(
      begin,
      Effect.flatMap(Effect.exit(restore(effect)), (exit): Effect.Effect<A, E | SqlError, R> =>
        Exit.isSuccess(exit)
          // a COMMIT that fails (a deferred constraint, SQLite busy) leaves the transaction open
          ? Effect.as(Effect.tapError(commit, () => Effect.ignore(rollback)), exit.value)
          : Effect.zipRight(Effect.ignore(rollback), exit))
    )
  )
