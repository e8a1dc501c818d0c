/**
 * The SQL `Ledger` and `TaskStore` over any `SqlClient` (SQLite or PostgreSQL), without the SQLite
 * clients: what another store package (such as `@holdout/store-pg`) builds on.
 *
 * @since 0.1.0
 */
export * as LedgerSql from "./LedgerSql.js"
export * as TaskStoreSql from "./TaskStoreSql.js"
