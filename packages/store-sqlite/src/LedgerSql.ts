/**
 * A `Ledger` driver on any `SqlClient` (SQLite or PostgreSQL): reservations as rows with a unique id.
 * Concurrent reservations of one process are decided and inserted together in one transaction (group
 * commit) that first takes the ledger's write lock (SQLite's `BEGIN IMMEDIATE` and lock row,
 * PostgreSQL's advisory lock), so several processes or hosts sharing one database can never overspend.
 * A batch whose commit failed may be submitted again as it is: a reservation id already stored
 * returns its reservation (or `ReservationConflict`), it is never charged twice.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { type HoldoutError, Ledger, type Model } from "@holdout/core"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { storeOp } from "./internal/errors.js"
import * as Execute from "./internal/execute.js"
import * as FileCommit from "./internal/fileCommit.js"
import * as Tables from "./internal/schema.js"
import * as Transaction from "./internal/transaction.js"

type ReservationRow = {
  readonly id: string
  readonly dataset_id: string
  readonly split: string
  readonly samples: number
  readonly run_id: string
  readonly at: number
}

interface SpentRow {
  readonly dataset_id: string
  readonly split: string
  readonly runs: number
  readonly samples: number
}

const fromRow = (row: ReservationRow): Model.Reservation => ({
  id: row.id,
  datasetId: row.dataset_id,
  split: row.split,
  samples: Number(row.samples),
  runId: row.run_id,
  at: Number(row.at)
})

interface Step {
  readonly reservationId: string
  readonly step: (view: Ledger.DriverView) => Exit.Exit<Model.Reservation, Ledger.ReserveError>
}

/**
 * Builds the ledger over the `SqlClient` in context, migrating the schema first.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: {
  readonly budgets: ReadonlyArray<Model.SplitBudget>
}): Effect.Effect<
  Ledger.Ledger["Type"],
  HoldoutError.ConfigError | HoldoutError.StoreError,
  SqlClient.SqlClient | Scope.Scope
> =>
  Effect.gen(function*() {
    const budgets = yield* Ledger.validateBudgets(options.budgets)
    const sql = yield* SqlClient.SqlClient
    yield* storeOp("open")(Transaction.exclusive(sql, Tables.open))
    const execute = Execute.runner(sql)
    const spentByKey = Effect.map(
      execute(sql<SpentRow>`SELECT dataset_id, split, runs, samples FROM holdout_spent`),
      (rows) =>
        new Map(rows.map((row) => [
          Ledger.keyString({ datasetId: row.dataset_id, split: row.split }),
          { runs: Number(row.runs), samples: Number(row.samples) }
        ]))
    )

    // A batch: take the write lock, read the batch's ids and what was spent, run every step in order
    // against that view, insert what they appended. In a transaction of its own, or in the one of its
    // database file's batch (`FileCommit`, SQLite), which holds the lock already.
    const write = (steps: ReadonlyArray<Step>) =>
      Effect.gen(function*() {
        yield* sql.onDialectOrElse({
          pg: () => Effect.void,
          orElse: () => execute(sql`UPDATE holdout_ledger_lock SET version = version + 1 WHERE id = 1`)
        })
        // the batch's ids and what was spent, in one statement (the lock is held meanwhile)
        const rows = yield* execute(
          sql<ReservationRow & { readonly runs: number | null }>`SELECT id, dataset_id, split,
              samples, run_id, at, NULL AS runs
            FROM holdout_reservations WHERE ${sql.in("id", steps.map((entry) => entry.reservationId))}
            UNION ALL SELECT NULL, dataset_id, split, samples, NULL, NULL, runs FROM holdout_spent`
        )
        const found = new Map<string, Model.Reservation>()
        const spent = new Map<string, { runs: number; samples: number }>()
        for (const row of rows) {
          if (row.runs === null) found.set(row.id, fromRow(row))
          else {
            spent.set(Ledger.keyString({ datasetId: row.dataset_id, split: row.split }), {
              runs: Number(row.runs),
              samples: Number(row.samples)
            })
          }
        }
        const inserts: Array<ReservationRow> = []
        const changed = new Map<string, Model.BudgetKey>()
        const view: Ledger.DriverView = {
          find: (reservationId) => found.get(reservationId),
          spent: (key) => spent.get(key) ?? Ledger.nothingSpent,
          append: (reservation) => {
            const key = Ledger.keyString(reservation)
            const current = spent.get(key) ?? Ledger.nothingSpent
            spent.set(key, { runs: current.runs + 1, samples: current.samples + reservation.samples })
            found.set(reservation.id, reservation)
            changed.set(key, reservation)
            inserts.push({
              id: reservation.id,
              dataset_id: reservation.datasetId,
              split: reservation.split,
              samples: reservation.samples,
              run_id: reservation.runId,
              at: reservation.at
            })
          }
        }
        const outcomes = steps.map((entry) => entry.step(view))
        if (inserts.length > 0) {
          const totals = [...changed].map(([key, { datasetId, split }]) => {
            const { runs, samples } = spent.get(key)!
            return { dataset_id: datasetId, split, runs, samples }
          })
          const upsertSpent = sql`INSERT INTO holdout_spent ${sql.insert(totals)}
              ON CONFLICT (dataset_id, split) DO UPDATE SET runs = excluded.runs, samples = excluded.samples`
          // PostgreSQL: both in one statement (one round trip less while the lock is held)
          yield* sql.onDialectOrElse({
            pg: () => sql`WITH inserted AS (INSERT INTO holdout_reservations ${sql.insert(inserts)}) ${upsertSpent}`,
            orElse: () =>
              Effect.zipRight(
                execute(sql`INSERT INTO holdout_reservations ${sql.insert(inserts)}`),
                execute(upsertSpent)
              )
          })
        }
        return outcomes
      })

    const submit = yield* FileCommit.queue(sql, "ledger", "safe", { op: "reserve", maxBatch: 512, write })

    return Ledger.unsafeMake(budgets, {
      transact: (reservationId, step) => submit({ reservationId, step }),
      spent: storeOp("status")(Transaction.exclusive(sql, spentByKey)),
      reservations: (key) =>
        Effect.map(
          Transaction.exclusive(
            sql,
            execute(
              key === undefined
                ? sql<
                  ReservationRow
                >`SELECT id, dataset_id, split, samples, run_id, at FROM holdout_reservations ORDER BY seq`
                : sql<ReservationRow>`SELECT id, dataset_id, split, samples, run_id, at FROM holdout_reservations
                WHERE dataset_id = ${key.datasetId} AND split = ${key.split} ORDER BY seq`
            )
          ),
          (rows) => rows.map(fromRow)
        ).pipe(storeOp("reservations"))
    })
  })

/**
 * The SQL ledger as a layer over a `SqlClient`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: {
  readonly budgets: ReadonlyArray<Model.SplitBudget>
}): Layer.Layer<Ledger.Ledger, HoldoutError.ConfigError | HoldoutError.StoreError, SqlClient.SqlClient> =>
  Layer.scoped(Ledger.Ledger, make(options))
