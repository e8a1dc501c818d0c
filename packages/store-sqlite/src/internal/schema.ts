/**
 * The tables, created by migrations. SQL dialect specifics live here and nowhere else.
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { Metrics, type Model } from "@holdout/core"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"

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

// What each run's stored samples add up to (its progress), kept by the sample transactions; each
// sample row keeps its own share (is_error, score), so that replacing it takes back exactly that.
const addProgress = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  for (const column of ["samples", "errors", "scored"]) {
    yield* sql.unsafe(`ALTER TABLE holdout_runs ADD COLUMN ${column} BIGINT NOT NULL DEFAULT 0`)
  }
  for (const column of ["score_sum", "score_squares"]) {
    yield* sql.unsafe(`ALTER TABLE holdout_runs ADD COLUMN ${column} DOUBLE PRECISION NOT NULL DEFAULT 0`)
  }
  yield* sql.unsafe(`ALTER TABLE holdout_samples ADD COLUMN is_error INTEGER NOT NULL DEFAULT 0`)
  yield* sql.unsafe(`ALTER TABLE holdout_samples ADD COLUMN score DOUBLE PRECISION`)
  // samples stored before: their shares by core's rule, a page at a time
  let after: { readonly runId: string; readonly sampleId: number } | undefined
  while (true) {
    const rows = yield* (after === undefined
      ? sql<SampleRow>`SELECT run_id, sample_id, record FROM holdout_samples ORDER BY run_id, sample_id LIMIT 1000`
      : sql<SampleRow>`SELECT run_id, sample_id, record FROM holdout_samples
          WHERE run_id > ${after.runId} OR (run_id = ${after.runId} AND sample_id > ${after.sampleId})
          ORDER BY run_id, sample_id LIMIT 1000`)
    for (const row of rows) {
      const share = shareOf(row.record)
      yield* sql`UPDATE holdout_samples SET is_error = ${share.error ? 1 : 0}, score = ${share.score}
        WHERE run_id = ${row.run_id} AND sample_id = ${row.sample_id}`
    }
    if (rows.length < 1000) break
    const last = rows[rows.length - 1]!
    after = { runId: last.run_id, sampleId: Number(last.sample_id) }
  }
  yield* sql.unsafe(`UPDATE holdout_runs SET ${progressFromSamples}`)
})

// A record that does not parse counts as an error: it is reported when read, never counted as a success.
const shareOf = (record: string) => {
  const parsed = Either.try(() => JSON.parse(record) as Pick<Model.SampleRecord, "error" | "evalError" | "score">)
  return Either.isRight(parsed) && typeof parsed.right === "object" && parsed.right !== null
    ? Metrics.contribution(parsed.right)
    : { error: true, score: null }
}

interface SampleRow {
  readonly run_id: string
  readonly sample_id: number
  readonly record: string
}

/** The progress columns of a run, computed from its sample rows (for a run whose samples came first). */
export const progressFromSamples = `
  samples = (SELECT COUNT(*) FROM holdout_samples s WHERE s.run_id = holdout_runs.run_id),
  errors = (SELECT COALESCE(SUM(is_error), 0) FROM holdout_samples s WHERE s.run_id = holdout_runs.run_id),
  scored = (SELECT COUNT(score) FROM holdout_samples s WHERE s.run_id = holdout_runs.run_id),
  score_sum = (SELECT COALESCE(SUM(score), 0) FROM holdout_samples s WHERE s.run_id = holdout_runs.run_id),
  score_squares = (SELECT COALESCE(SUM(score * score), 0) FROM holdout_samples s WHERE s.run_id = holdout_runs.run_id)`

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

const migrations = {
  "0001_holdout": createTables,
  "0002_spent": addSpent,
  "0003_meta": addMeta,
  "0004_progress": addProgress
}

/** The id of the last migration (the number its name starts with). */
const latestMigration = Math.max(...Object.keys(migrations).map((name) => Number.parseInt(name, 10)))

/**
 * Brings the database to the current schema. Safe to run from several processes at once. A failed
 * migration is a `SqlError` (in the error channel, for the store to map), never a defect.
 */
export const migrate: Effect.Effect<void, SqlError, SqlClient.SqlClient> = Migrator.make({})({
  loader: Migrator.fromRecord(migrations),
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

/**
 * Whether a SQLite database has every migration already (elsewhere: unknown, the migrator decides).
 * A database without the migrations' table yet has none.
 */
const upToDate = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql.onDialectOrElse({
    sqlite: () =>
      sql<{ readonly id: number | null }>`SELECT MAX(migration_id) AS id FROM holdout_migrations`.pipe(
        Effect.map(([row]) => Number(row?.id ?? 0) >= latestMigration),
        Effect.orElseSucceed(() => false)
      ),
    orElse: () => Effect.succeed(false)
  }))

/**
 * Readies a connection: its settings, and the migrations a database lacks. libsql runs a transaction
 * (the migrator's) on a connection that it then leaves open until garbage collection, and goes on
 * with a new one with SQLite's defaults (no busy timeout): a store that is up to date (every store
 * once created, `Integrity.createFresh`) is opened without the migrator, and after a migration the
 * settings are applied again to the connection that stays.
 */
export const open: Effect.Effect<void, SqlError, SqlClient.SqlClient> = Effect.zipRight(
  configure,
  Effect.flatMap(upToDate, (current) => current ? Effect.void : Effect.zipRight(migrate, configure))
)
