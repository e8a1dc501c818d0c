/**
 * Transactions of the stores. Every store operation on one `SqlClient` holds one lock, and a
 * write runs between explicit `BEGIN IMMEDIATE` (the write lock first, so another process cannot
 * slip in between a read and a write) and `COMMIT` on the client's own connection. The client's
 * `withTransaction` is not used: libsql opens a new connection for each of its transactions and
 * never closes them, which loses the connection's settings and leaks file handles.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"

const locks = new WeakMap<SqlClient.SqlClient, Effect.Semaphore>()

const lockOf = (sql: SqlClient.SqlClient): Effect.Semaphore => {
  let lock = locks.get(sql)
  if (lock === undefined) {
    lock = Effect.unsafeMakeSemaphore(1)
    locks.set(sql, lock)
  }
  return lock
}

/** Runs `effect` alone on the client (no store transaction is open meanwhile). */
export const exclusive = <A, E, R>(sql: SqlClient.SqlClient, effect: Effect.Effect<A, E, R>) =>
  lockOf(sql).withPermits(1)(effect)

const begin = (sql: SqlClient.SqlClient) =>
  sql.onDialectOrElse({ sqlite: () => sql.unsafe("BEGIN IMMEDIATE"), orElse: () => sql.unsafe("BEGIN") })

/** Runs `effect` in a write transaction: committed if it succeeds, rolled back otherwise. */
export const write = <A, E, R>(
  sql: SqlClient.SqlClient,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | SqlError, R> =>
  exclusive(
    sql,
    Effect.uninterruptibleMask((restore) =>
      Effect.zipRight(
        begin(sql),
        Effect.flatMap(Effect.exit(restore(effect)), (exit): Effect.Effect<A, E | SqlError, R> =>
          Exit.isSuccess(exit)
            ? Effect.as(sql.unsafe("COMMIT"), exit.value)
            : Effect.zipRight(Effect.ignore(sql.unsafe("ROLLBACK")), exit))
      )
    )
  )
