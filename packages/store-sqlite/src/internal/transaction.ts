/**
 * Transactions of the stores, per dialect.
 *
 * SQLite: every store operation on one `SqlClient` holds one lock, and a write runs between explicit
 * `BEGIN IMMEDIATE` (the write lock first, so another process cannot slip in between a read and a
 * write) and `COMMIT` on the client's own connection. The client's `withTransaction` is not used
 * there: libsql opens a new connection for each of its transactions and never closes them, which
 * loses the connection's settings and leaks file handles.
 *
 * PostgreSQL: the client is a pool, so reads run side by side, and a write is the client's
 * `withTransaction` (one pooled connection) that first takes a transaction-scoped advisory lock of
 * its store: the writes of one store are serialized across every process and host, as
 * `BEGIN IMMEDIATE` serializes them on SQLite, and every read after the lock sees what the previous
 * holder committed (READ COMMITTED).
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

/** Runs `effect` alone on the client (no store transaction is open meanwhile); PostgreSQL: as is. */
export const exclusive = <A, E, R>(sql: SqlClient.SqlClient, effect: Effect.Effect<A, E, R>) =>
  sql.onDialectOrElse({ pg: () => effect, orElse: () => lockOf(sql).withPermits(1)(effect) })

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
      sql.withTransaction(
        Effect.zipRight(sql`SELECT pg_advisory_xact_lock(${advisoryKeys[store]})`, effect)
      ),
    orElse: () =>
      exclusive(
        sql,
        Effect.uninterruptibleMask((restore) =>
          Effect.zipRight(
            sql.unsafe("BEGIN IMMEDIATE"),
            Effect.flatMap(Effect.exit(restore(effect)), (exit): Effect.Effect<A, E | SqlError, R> =>
              Exit.isSuccess(exit)
                ? Effect.as(sql.unsafe("COMMIT"), exit.value)
                : Effect.zipRight(Effect.ignore(sql.unsafe("ROLLBACK")), exit))
          )
        )
      )
  })
