/**
 * @since 0.1.0
 */
export * as LedgerSql from "./LedgerSql.js"
export * as SqliteStore from "./SqliteStore.js"
export * as TaskStoreSql from "./TaskStoreSql.js"
