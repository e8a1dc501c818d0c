/**
 * A `TaskStore` on any `SqlClient`: runs and samples as rows holding their JSON records. The writes
 * of one process (runs created and updated, samples upserted) are committed together in one
 * transaction (core's `GroupCommit`), which also keeps each run's progress; every record is decoded
 * by its schema when read back.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type * as Statement from "@effect/sql/Statement"
import { HoldoutError, Metrics, Model, TaskStore } from "@holdout/core"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { storeOp } from "./internal/errors.js"
import * as Execute from "./internal/execute.js"
import * as FileCommit from "./internal/fileCommit.js"
import * as Tables from "./internal/schema.js"
import * as Transaction from "./internal/transaction.js"

const decodeSample = Schema.decodeUnknownEither(Schema.parseJson(Model.SampleRecord))

const decoded = <A>(op: string, what: string, result: Either.Either<A, unknown>) =>
  Either.isRight(result)
    ? Effect.succeed(result.right)
    : Effect.fail(
      new HoldoutError.StoreError({
        op,
        message: `A stored ${what} does not decode: ${String(result.left)}`,
        cause: result.left
      })
    )

interface RunRow {
  readonly record: string
  readonly samples: number
  readonly errors: number
  readonly scored: number
  readonly score_sum: number
  readonly score_squares: number
  /** The record as this process updated it, when it did (not a column). */
  readonly updated?: Model.RunRecord
}

const runColumns = "record, samples, errors, scored, score_sum, score_squares"

/** A run record with the progress its row keeps. */
const withProgress = (run: Model.RunRecord, row: RunRow): Model.RunRecord => ({
  ...run,
  progress: {
    samples: Number(row.samples),
    errors: Number(row.errors),
    scored: Number(row.scored),
    scoreSum: Number(row.score_sum),
    scoreSquares: Number(row.score_squares)
  }
})

const runOf = (op: string, row: RunRow) =>
  Effect.map(decoded(op, "run", TaskStore.decodeRun(row.record)), (run) => withProgress(run, row))

type SampleRow = {
  readonly run_id: string
  readonly sample_id: number
  readonly record: string
  readonly is_error: number
  readonly score: number | null
}

/** Adds (`sign` 1) or takes back (-1) one sample row's share of its run's progress. */
const addShare = (
  delta: { samples: number; errors: number; scored: number; scoreSum: number; scoreSquares: number },
  share: { readonly is_error: number; readonly score: number | null },
  sign: 1 | -1
) => {
  delta.samples += sign
  delta.errors += sign * Number(share.is_error)
  if (share.score !== null) {
    const score = Number(share.score)
    delta.scored += sign
    delta.scoreSum += sign * score
    delta.scoreSquares += sign * score * score
  }
}

/** A write of the store: queued in its group commit. */
type Write =
  | { readonly _tag: "samples"; readonly samples: ReadonlyArray<Model.SampleRecord> }
  | { readonly _tag: "create"; readonly run: Model.RunRecord }
  | { readonly _tag: "update"; readonly runId: string; readonly update: Model.RunUpdate }

/**
 * Builds the store over the `SqlClient` in context, migrating the schema first.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<
  TaskStore.TaskStore["Type"],
  HoldoutError.StoreError,
  SqlClient.SqlClient | Scope.Scope
> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* storeOp("open")(Transaction.exclusive(sql, Tables.open))
  const execute = Execute.runner(sql)
  const read = <A>(statement: Statement.Statement<A>) => Transaction.exclusive(sql, execute(statement))

  const getRun = (runId: string) =>
    Effect.flatMap(
      storeOp("getRun")(read(sql<RunRow>`SELECT ${sql.literal(runColumns)} FROM holdout_runs WHERE run_id = ${runId}`)),
      ([row]) =>
        row === undefined
          ? Effect.succeed(Option.none<Model.RunRecord>())
          : Effect.map(runOf("getRun", row), Option.some)
    )

  // The rows of a batch's samples, by run (the last write of a sample in a batch wins, as it would
  // one at a time), written with the change of each run's progress (what the rows they replace had
  // added is taken back).
  const writeSamples = (samples: ReadonlyArray<Model.SampleRecord>) => {
    const byRun = new Map<string, Map<number, SampleRow>>()
    for (const sample of samples) {
      let rows = byRun.get(sample.runId)
      if (rows === undefined) {
        rows = new Map()
        byRun.set(sample.runId, rows)
      }
      const share = Metrics.contribution(sample)
      rows.set(sample.sampleId, {
        run_id: sample.runId,
        sample_id: sample.sampleId,
        record: JSON.stringify(sample),
        is_error: share.error ? 1 : 0,
        score: share.score
      })
    }
    return Effect.forEach(byRun, ([runId, rows]) =>
      Effect.gen(function*() {
        const delta = { samples: 0, errors: 0, scored: 0, scoreSum: 0, scoreSquares: 0 }
        const all = [...rows.values()]
        // one statement text whatever the batch's size (its rows as one JSON parameter), so it is
        // prepared once and the statement cache holds no statement per batch size
        const ids = JSON.stringify(all.map((row) => row.sample_id))
        const values = JSON.stringify(all.map((row) => [row.sample_id, row.record, row.is_error, row.score]))
        // the shares of the rows replaced, read before the rows are written
        const previous = yield* sql.onDialectOrElse({
          // PostgreSQL: one statement (its parts see the same snapshot, so `previous` is from before)
          pg: () =>
            sql<Pick<SampleRow, "is_error" | "score">>`WITH previous AS (
                SELECT is_error, score FROM holdout_samples
                WHERE run_id = ${runId} AND sample_id IN (SELECT jsonb_array_elements_text(${ids}::jsonb)::integer)
              ), written AS (
                INSERT INTO holdout_samples (run_id, sample_id, record, is_error, score)
                SELECT ${runId}::text, (value->>0)::integer, value->>1, (value->>2)::integer,
                  (value->>3)::double precision
                FROM jsonb_array_elements(${values}::jsonb)
                ON CONFLICT (run_id, sample_id) DO UPDATE
                SET record = excluded.record, is_error = excluded.is_error, score = excluded.score
              )
              SELECT is_error, score FROM previous`,
          orElse: () =>
            Effect.zipLeft(
              execute(sql<Pick<SampleRow, "is_error" | "score">>`SELECT is_error, score FROM holdout_samples
                WHERE run_id = ${runId} AND sample_id IN (SELECT value FROM json_each(${ids}))`),
              execute(sql`INSERT INTO holdout_samples (run_id, sample_id, record, is_error, score)
                SELECT ${runId}, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
                  json_extract(value, '$[3]')
                FROM json_each(${values}) WHERE true
                ON CONFLICT (run_id, sample_id) DO UPDATE
                SET record = excluded.record, is_error = excluded.is_error, score = excluded.score`)
            )
        })
        for (const share of previous) addShare(delta, share, -1)
        for (const row of all) addShare(delta, row, 1)
        yield* execute(
          sql`UPDATE holdout_runs SET samples = samples + ${delta.samples}, errors = errors + ${delta.errors},
          scored = scored + ${delta.scored}, score_sum = score_sum + ${delta.scoreSum},
          score_squares = score_squares + ${delta.scoreSquares} WHERE run_id = ${runId}`
        )
      }), { discard: true })
  }

  // one statement: the row, with the progress of samples stored before their run (none, unless a
  // strategy wrote first), unless the run exists
  const createRunRow = (run: Model.RunRecord) =>
    Effect.map(
      execute(sql<
        { run_id: string }
      >`INSERT INTO holdout_runs (run_id, record, samples, errors, scored, score_sum, score_squares)
        SELECT ${run.runId}, ${TaskStore.encodeRun(run)}, COUNT(*), COALESCE(SUM(is_error), 0), COUNT(score),
          COALESCE(SUM(score), 0), COALESCE(SUM(score * score), 0)
        FROM holdout_samples WHERE run_id = ${run.runId}
        ON CONFLICT (run_id) DO NOTHING RETURNING run_id`),
      (inserted) =>
        inserted.length === 0
          ? Exit.fail(TaskStore.runExists(run.runId))
          : Exit.succeed<Option.Option<RunRow>>(Option.none())
    )

  const updateRunRow = (runId: string, update: Model.RunUpdate) =>
    Effect.gen(function*() {
      const [row] = yield* execute(
        sql<RunRow>`SELECT ${sql.literal(runColumns)} FROM holdout_runs WHERE run_id = ${runId}`
      )
      if (row === undefined) return Exit.fail(TaskStore.runNotFound(runId))
      const run = TaskStore.decodeRun(row.record)
      if (Either.isLeft(run)) return Exit.succeed(Option.some(row))
      const updated = TaskStore.applyUpdate(run.right, update)
      const record = TaskStore.encodeRun(updated)
      yield* execute(sql`UPDATE holdout_runs SET record = ${record} WHERE run_id = ${runId}`)
      // the record as updated, not decoded again from the text it was written as
      return Exit.succeed(Option.some<RunRow>({ ...row, record, updated }))
    })

  // Every write of this process goes through one group commit: a batch is one transaction (its own,
  // or its database file's, `FileCommit`), so concurrent runs share its commit. Writes are applied in
  // the order they were queued (samples queued one after another are written together).
  const write = (writes: ReadonlyArray<Write>) =>
    Effect.gen(function*() {
      const outcomes: Array<Exit.Exit<Option.Option<RunRow>, HoldoutError.StoreError>> = []
      let samples: Array<Model.SampleRecord> = []
      for (const write of writes) {
        if (write._tag === "samples") {
          for (const sample of write.samples) samples.push(sample)
          outcomes.push(Exit.succeed(Option.none()))
          continue
        }
        if (samples.length > 0) {
          yield* writeSamples(samples)
          samples = []
        }
        outcomes.push(
          write._tag === "create" ? yield* createRunRow(write.run) : yield* updateRunRow(write.runId, write.update)
        )
      }
      if (samples.length > 0) yield* writeSamples(samples)
      return outcomes
    })
  const queue = yield* FileCommit.queue(sql, "tasks", "once", { op: "write", maxBatch: 4096, write })
  // a batch that fails fails each of its writes, named by the caller's operation
  const submit = (op: string, queued: Write) =>
    Effect.catchIf(
      queue(queued),
      (error) => error.op === "write",
      (error) => Effect.fail(new HoldoutError.StoreError({ op, message: error.message, cause: error.cause }))
    )

  return {
    createRun: (run) => Effect.asVoid(submit("createRun", { _tag: "create", run })),
    getRun,
    updateRun: (runId, update) =>
      Effect.flatMap(
        submit("updateRun", { _tag: "update", runId, update }),
        Option.match({
          onNone: () => Effect.fail(TaskStore.runNotFound(runId)),
          onSome: (row) =>
            row.updated === undefined ? runOf("updateRun", row) : Effect.succeed(withProgress(row.updated, row))
        })
      ),
    listRuns: () =>
      Effect.flatMap(
        storeOp("listRuns")(read(sql<RunRow>`SELECT ${sql.literal(runColumns)} FROM holdout_runs ORDER BY seq`)),
        (rows) => Effect.forEach(rows, (row) => runOf("listRuns", row))
      ),
    putSample: (sample) => Effect.asVoid(submit("putSample", { _tag: "samples", samples: [sample] })),
    putSamples: (samples) =>
      samples.length === 0 ? Effect.void : Effect.asVoid(submit("putSamples", { _tag: "samples", samples })),
    getSample: (runId, sampleId) =>
      Effect.flatMap(
        storeOp("getSample")(read(
          sql<
            { record: string }
          >`SELECT record FROM holdout_samples WHERE run_id = ${runId} AND sample_id = ${sampleId}`
        )),
        ([row]) =>
          row === undefined
            ? Effect.succeed(Option.none<Model.SampleRecord>())
            : Effect.map(decoded("getSample", "sample", decodeSample(row.record)), Option.some)
      ),
    listSamples: (runId, page) =>
      Effect.flatMap(
        storeOp("listSamples")(read(
          sql<{ record: string }>`SELECT record FROM holdout_samples WHERE run_id = ${runId}
            AND sample_id > ${Math.floor(page.after ?? -1)} ORDER BY sample_id LIMIT ${Math.max(0, page.limit)}`
        )),
        (rows) => Effect.forEach(rows, (row) => decoded("listSamples", "sample", decodeSample(row.record)))
      ),
    putMetaIfAbsent: (key, value) =>
      Transaction.write(
        sql,
        "tasks",
        Effect.gen(function*() {
          yield* execute(sql`INSERT INTO holdout_meta ${sql.insert({ key, value })} ON CONFLICT (key) DO NOTHING`)
          const [row] = yield* execute(sql<{ value: string }>`SELECT value FROM holdout_meta WHERE key = ${key}`)
          return row?.value ?? value
        })
      ).pipe(storeOp("putMetaIfAbsent")),
    getMeta: (key) =>
      Effect.map(
        storeOp("getMeta")(read(sql<{ value: string }>`SELECT value FROM holdout_meta WHERE key = ${key}`)),
        ([row]) => Option.fromNullable(row?.value)
      )
  } satisfies TaskStore.TaskStore["Type"]
})

/**
 * The SQL task store as a layer over a `SqlClient`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<TaskStore.TaskStore, HoldoutError.StoreError, SqlClient.SqlClient> = Layer.scoped(
  TaskStore.TaskStore,
  make
)
