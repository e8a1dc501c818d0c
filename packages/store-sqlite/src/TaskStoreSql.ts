/**
 * A `TaskStore` on any `SqlClient`: runs and samples as rows holding their JSON records. Sample
 * writes of one process are upserted together in one transaction (group commit); every record is
 * decoded by its schema when read back.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { HoldoutError, Model, TaskStore } from "@holdout/core"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Batcher from "./internal/batcher.js"
import { storeOp } from "./internal/errors.js"
import * as Tables from "./internal/schema.js"
import * as Transaction from "./internal/transaction.js"

const decodeRun = Schema.decodeUnknownEither(Schema.parseJson(Model.RunRecord))
const decodeSample = Schema.decodeUnknownEither(Schema.parseJson(Model.SampleRecord))

const decoded = <A>(op: string, what: string, result: Either.Either<A, unknown>) =>
  Either.isRight(result)
    ? Effect.succeed(result.right)
    : Effect.fail(
      new HoldoutError.StoreError({ op, message: `A stored ${what} does not decode: ${String(result.left)}` })
    )

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
  yield* storeOp("open")(Transaction.exclusive(sql, Effect.zipRight(Tables.configure, Tables.migrate)))
  const read = <A>(statement: Effect.Effect<A, SqlError>) => Transaction.exclusive(sql, statement)

  const getRun = (runId: string) =>
    Effect.flatMap(
      storeOp("getRun")(read(sql<{ record: string }>`SELECT record FROM holdout_runs WHERE run_id = ${runId}`)),
      ([row]) =>
        row === undefined
          ? Effect.succeed(Option.none<Model.RunRecord>())
          : Effect.map(decoded("getRun", "run", decodeRun(row.record)), Option.some)
    )

  const putBatch = (samples: ReadonlyArray<Model.SampleRecord>) => {
    // the last write of a sample in a batch wins, as it would one at a time
    const rows = new Map<string, { run_id: string; sample_id: number; record: string }>()
    for (const sample of samples) {
      rows.set(`${sample.runId}\u0000${sample.sampleId}`, {
        run_id: sample.runId,
        sample_id: sample.sampleId,
        record: JSON.stringify(sample)
      })
    }
    return Transaction.write(
      sql,
      sql`INSERT INTO holdout_samples ${sql.insert([...rows.values()])}
        ON CONFLICT (run_id, sample_id) DO UPDATE SET record = excluded.record`
    ).pipe(storeOp("putSample"), Effect.as(samples.map(() => Exit.void)))
  }
  const samples = yield* Batcher.make(putBatch, 1024)

  return {
    createRun: (run) =>
      Transaction.write(
        sql,
        Effect.gen(function*() {
          const existing = yield* sql`SELECT 1 AS found FROM holdout_runs WHERE run_id = ${run.runId}`
          if (existing.length > 0) return false
          yield* sql`INSERT INTO holdout_runs ${sql.insert({ run_id: run.runId, record: JSON.stringify(run) })}`
          return true
        })
      ).pipe(
        storeOp("createRun"),
        Effect.flatMap((created) => created ? Effect.void : Effect.fail(TaskStore.runExists(run.runId)))
      ),
    getRun,
    updateRun: (runId, update) =>
      Transaction.write(
        sql,
        Effect.gen(function*() {
          const [row] = yield* sql<{ record: string }>`SELECT record FROM holdout_runs WHERE run_id = ${runId}`
          if (row === undefined) return Option.none<string>()
          const run = decodeRun(row.record)
          if (Either.isLeft(run)) return Option.some(row.record)
          const next = TaskStore.applyUpdate(run.right, update)
          yield* sql`UPDATE holdout_runs SET record = ${JSON.stringify(next)} WHERE run_id = ${runId}`
          return Option.some(JSON.stringify(next))
        })
      ).pipe(
        storeOp("updateRun"),
        Effect.flatMap(Option.match({
          onNone: () => Effect.fail(TaskStore.runNotFound(runId)),
          onSome: (record) => decoded("updateRun", "run", decodeRun(record))
        }))
      ),
    listRuns: () =>
      Effect.flatMap(
        storeOp("listRuns")(read(sql<{ record: string }>`SELECT record FROM holdout_runs ORDER BY seq`)),
        (rows) => Effect.forEach(rows, (row) => decoded("listRuns", "run", decodeRun(row.record)))
      ),
    putSample: (sample) => samples.submit(sample),
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
    listSamples: (runId) =>
      Effect.flatMap(
        storeOp("listSamples")(read(
          sql<{ record: string }>`SELECT record FROM holdout_samples WHERE run_id = ${runId} ORDER BY sample_id`
        )),
        (rows) => Effect.forEach(rows, (row) => decoded("listSamples", "sample", decodeSample(row.record)))
      ),
    putMetaIfAbsent: (key, value) =>
      Transaction.write(
        sql,
        Effect.gen(function*() {
          yield* sql`INSERT INTO holdout_meta ${sql.insert({ key, value })} ON CONFLICT (key) DO NOTHING`
          const [row] = yield* sql<{ value: string }>`SELECT value FROM holdout_meta WHERE key = ${key}`
          return row?.value ?? value
        })
      ).pipe(storeOp("putMetaIfAbsent"))
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
