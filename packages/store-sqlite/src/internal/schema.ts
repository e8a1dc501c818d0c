/**
 * The tables, created by migrations. SQL dialect specifics live here and nowhere else.
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"

/** The column type of an auto-incrementing sequence key, per dialect. */
const sequenceKey = (sql: SqlClient.SqlClient) =>
  sql.onDialectOrElse({
    pg: () => "BIGSERIAL PRIMARY KEY",
    mysql: () => "BIGINT AUTO_INCREMENT PRIMARY KEY",
    orElse: () => "INTEGER PRIMARY KEY AUTOINCREMENT"
  })

const createTables = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const seq = sequenceKey(sql)
  yield* sql.unsafe(`CREATE TABLE IF NOT EXISTS holdout_reservations (
    seq ${seq},
    id TEXT NOT NULL UNIQUE,
    dataset_id TEXT NOT NULL,
    split TEXT NOT NULL,
    samples INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    at BIGINT NOT NULL
  )`)
  yield* sql.unsafe(`CREATE INDEX IF NOT EXISTS holdout_reservations_key ON holdout_reservations (dataset_id, split)`)
  // one row whose update every reservation transaction starts with: it takes the write lock first
  yield* sql.unsafe(`CREATE TABLE IF NOT EXISTS holdout_ledger_lock (id INTEGER PRIMARY KEY, version BIGINT NOT NULL)`)
  yield* sql.unsafe(`INSERT INTO holdout_ledger_lock (id, version) VALUES (1, 0) ON CONFLICT DO NOTHING`)
  yield* sql.unsafe(`CREATE TABLE IF NOT EXISTS holdout_runs (
    seq ${seq},
    run_id TEXT NOT NULL UNIQUE,
    record TEXT NOT NULL
  )`)
  yield* sql.unsafe(`CREATE TABLE IF NOT EXISTS holdout_samples (
    run_id TEXT NOT NULL,
    sample_id INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (run_id, sample_id)
  )`)
})

// What was spent per key, kept in the reservation transactions, so that a reservation reads one row
// instead of counting the journal.
const addSpent = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`CREATE TABLE IF NOT EXISTS holdout_spent (
    dataset_id TEXT NOT NULL,
    split TEXT NOT NULL,
    runs BIGINT NOT NULL,
    samples BIGINT NOT NULL,
    PRIMARY KEY (dataset_id, split)
  )`)
  yield* sql.unsafe(`INSERT INTO holdout_spent (dataset_id, split, runs, samples)
    SELECT dataset_id, split, COUNT(*), COALESCE(SUM(samples), 0) FROM holdout_reservations GROUP BY dataset_id, split
    ON CONFLICT DO NOTHING`)
})

// The store's own state (the secret of the non_viewable blocks): one value per key, never changed.
const addMeta = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`CREATE TABLE IF NOT EXISTS holdout_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`)
})

/** Durability settings of the connection: SQLite waits for busy locks and syncs every commit. */
export const configure = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.onDialectOrElse({
    sqlite: () =>
      Effect.all([
        sql.unsafe("PRAGMA busy_timeout = 10000"),
        sql.unsafe("PRAGMA journal_mode = WAL"),
        sql.unsafe("PRAGMA synchronous = FULL")
      ], { discard: true }),
    orElse: () => Effect.void
  })
})

/**
 * Brings the database to the current schema. Safe to run from several processes at once. A failed
 * migration is a `SqlError` (in the error channel, for the store to map), never a defect.
 */
export const migrate: Effect.Effect<void, SqlError, SqlClient.SqlClient> = Migrator.make({})({
  loader: Migrator.fromRecord({ "0001_holdout": createTables, "0002_spent": addSpent, "0003_meta": addMeta }),
  table: "holdout_migrations"
}).pipe(
  // two processes migrating at once: the loser finds the schema in place on its second try
  Effect.retry({ times: 5 }),
  Effect.catchTag(
    "MigrationError",
    (error) => Effect.fail(new SqlError({ cause: error, message: `Migration failed: ${error.message}` }))
  ),
  Effect.asVoid
)
