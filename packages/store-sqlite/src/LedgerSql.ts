/**
 * A `Ledger` on any `SqlClient`: reservations as rows with a unique id. Concurrent reservations of
 * one process are decided and inserted together in one transaction (group commit) that first takes
 * the write lock, so several processes sharing one database can never overspend.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { HoldoutError, Ledger, type Model } from "@holdout/core"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Batcher from "./internal/batcher.js"
import { storeOp } from "./internal/errors.js"
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

type ReserveError = Ledger.ReserveError

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
    yield* storeOp("open")(Transaction.exclusive(sql, Effect.zipRight(Tables.configure, Tables.migrate)))
    const limits = new Map(budgets.map((budget) => [Ledger.keyString(budget), budget] as const))

    const spentByKey = Effect.map(
      sql<SpentRow>`SELECT dataset_id, split, runs, samples FROM holdout_spent`,
      (rows) =>
        new Map(rows.map((row) => [
          Ledger.keyString({ datasetId: row.dataset_id, split: row.split }),
          { runs: Number(row.runs), samples: Number(row.samples) }
        ]))
    )

    // One transaction a batch: lock, read what was spent, decide every request in order, insert.
    const commit = (requests: ReadonlyArray<Ledger.ReserveRequest & { readonly at: number }>) =>
      Transaction.write(sql, Effect.gen(function*() {
        yield* sql`UPDATE holdout_ledger_lock SET version = version + 1 WHERE id = 1`
        const ids = requests.map((request) => request.reservationId)
        const existing = new Map(
          (yield* sql<ReservationRow>`SELECT id, dataset_id, split, samples, run_id, at
            FROM holdout_reservations WHERE ${sql.in("id", ids)}`).map((row) => [row.id, fromRow(row)] as const)
        )
        const spent = yield* spentByKey
        const inserts: Array<ReservationRow> = []
        const outcomes: Array<Exit.Exit<Model.Reservation, ReserveError>> = []
        for (const request of requests) {
          const seen = existing.get(request.reservationId)
          if (seen !== undefined) {
            outcomes.push(Ledger.repeated(seen, request))
            continue
          }
          const key = Ledger.keyString(request)
          const budget = limits.get(key)
          if (budget === undefined) {
            outcomes.push(Exit.fail(new HoldoutError.SplitNotBudgeted({ datasetId: request.datasetId, split: request.split })))
            continue
          }
          const current = spent.get(key) ?? { runs: 0, samples: 0 }
          const refusal = Ledger.decide(budget, current, request.samples)
          if (refusal !== undefined) {
            outcomes.push(Exit.fail(refusal))
            continue
          }
          spent.set(key, { runs: current.runs + 1, samples: current.samples + request.samples })
          const reservation = Ledger.reservationOf(request, request.at)
          existing.set(reservation.id, reservation)
          inserts.push({
            id: reservation.id,
            dataset_id: reservation.datasetId,
            split: reservation.split,
            samples: reservation.samples,
            run_id: reservation.runId,
            at: reservation.at
          })
          outcomes.push(Exit.succeed(reservation))
        }
        if (inserts.length > 0) {
          yield* sql`INSERT INTO holdout_reservations ${sql.insert(inserts)}`
          const changed = new Map<string, { dataset_id: string; split: string; runs: number; samples: number }>()
          for (const row of inserts) {
            const totals = spent.get(Ledger.keyString({ datasetId: row.dataset_id, split: row.split }))!
            changed.set(`${row.dataset_id}\u0000${row.split}`, {
              dataset_id: row.dataset_id,
              split: row.split,
              runs: totals.runs,
              samples: totals.samples
            })
          }
          yield* sql`INSERT INTO holdout_spent ${sql.insert([...changed.values()])}
            ON CONFLICT (dataset_id, split) DO UPDATE SET runs = excluded.runs, samples = excluded.samples`
        }
        return outcomes
      })).pipe(storeOp("reserve"))

    const batcher = yield* Batcher.make(commit, 512)

    const lookup = Ledger.budgetLookup(budgets)
    const snapshotOf = (budget: Model.SplitBudget) =>
      Effect.map(
        Transaction.exclusive(sql, sql<{ runs: number; samples: number }>`SELECT runs, samples
          FROM holdout_spent WHERE dataset_id = ${budget.datasetId} AND split = ${budget.split}`),
        ([row]) => Ledger.snapshot(budget, { runs: Number(row?.runs ?? 0), samples: Number(row?.samples ?? 0) })
      ).pipe(storeOp("get"))

    return {
      reserve: (request) =>
        Ledger.isSampleCount(request.samples)
          ? Effect.flatMap(Clock.currentTimeMillis, (at) => batcher.submit({ ...request, at }))
          : Ledger.invalidSampleCount(request.samples),
      check: (key, samples) =>
        Effect.flatMap(lookup(key), (budget) =>
          Effect.flatMap(snapshotOf(budget), (snapshot) => {
            const refusal = Ledger.decide(budget, snapshot.spent, samples)
            return refusal === undefined ? Effect.succeed(snapshot) : Effect.fail(refusal)
          })),
      get: (key) => Effect.flatMap(lookup(key), snapshotOf),
      status: () =>
        Effect.map(storeOp("status")(Transaction.exclusive(sql, spentByKey)), (spent) =>
          budgets.map((budget) => Ledger.snapshot(budget, spent.get(Ledger.keyString(budget)) ?? Ledger.nothingSpent))),
      reservations: (key) =>
        Effect.map(
          Transaction.exclusive(sql, key === undefined
            ? sql<ReservationRow>`SELECT id, dataset_id, split, samples, run_id, at FROM holdout_reservations ORDER BY seq`
            : sql<ReservationRow>`SELECT id, dataset_id, split, samples, run_id, at FROM holdout_reservations
                WHERE dataset_id = ${key.datasetId} AND split = ${key.split} ORDER BY seq`),
          (rows) => rows.map(fromRow)
        ).pipe(storeOp("reservations"))
    } satisfies Ledger.Ledger["Type"]
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
