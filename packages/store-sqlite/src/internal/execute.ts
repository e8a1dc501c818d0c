/**
 * How the stores run their statements. Through the `SqlClient`, a statement costs about a hundred
 * effect steps before the driver sees it: a tracing span, a scope, the client's connection permit,
 * the lookup of a transaction connection. On better-sqlite3 that is several times what SQLite's own
 * work on a small statement costs, and a request of the sidecar runs a dozen of them.
 *
 * better-sqlite3's client has one connection, which it hands out under a permit released as soon as
 * it is handed out, and runs each statement synchronously; every statement of the stores already
 * runs under the lock of its database file (`Transaction.exclusive`). So a store on it compiles its
 * statements with the client (same text, same parameters) and runs them on that connection directly
 * (`direct`, registered by `Client.betterSqlite3`). Any other client (libsql, PostgreSQL, a third
 * party's) runs them through the client as before. The clients of the stores transform neither names
 * nor rows, so the result is the same rows either way; only the `sql.execute` spans are not made.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as Connection from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import * as Effect from "effect/Effect"

/** The connection of each client whose statements run on it directly. */
const connections = new WeakMap<SqlClient.SqlClient, Connection.Connection>()

/**
 * Runs the statements of `sql` on its connection directly from now on: for a client of a single
 * connection that runs each statement synchronously (better-sqlite3), whose statements all run under
 * the lock of their database file.
 */
export const direct = (sql: SqlClient.SqlClient): Effect.Effect<void, SqlError> =>
  // the connection is handed out under the client's permit, and kept once the permit is back
  Effect.scoped(Effect.map(sql.reserve, (connection) => {
    connections.set(sql, connection)
  }))

/** Runs a statement of `sql`: on its connection when it runs them directly, else through the client. */
export type Run = <A>(statement: Statement.Statement<A>) => Effect.Effect<ReadonlyArray<A>, SqlError>

/**
 * The way statements of `sql` run (decided once, when a store is built).
 */
export const runner = (sql: SqlClient.SqlClient): Run => {
  const connection = connections.get(sql)
  if (connection === undefined) return (statement) => statement
  return <A>(statement: Statement.Statement<A>) => {
    const [text, params] = statement.compile()
    return connection.execute(text, params, undefined) as Effect.Effect<ReadonlyArray<A>, SqlError>
  }
}
