/**
 * One group commit for both stores of a SQLite database file. Each store batches its writes
 * (`GroupCommit`); with a batcher each, the ledger's reservations and the tasks' runs and samples
 * queued at the same time were two transactions, two `COMMIT`s, two syncs of the log. A sync holds
 * the thread (both drivers are synchronous) for about half a millisecond, and an evaluation writes to
 * both stores. Given a `FileCommit` (`SqliteStore` provides one), the stores queue their writes in it
 * instead: what both queued while a batch was being committed is written in one transaction, each
 * store's part by its own code (`Part`), in the order its writes came, and each write gets its own
 * outcome.
 *
 * - A part that fails fails the whole transaction, as a failing batch of one store did: its writes
 *   and those of the other part fail with the error, and are rolled back.
 * - A part takes at most its `maxBatch` writes at once (the ledger's `IN` lists and inserts stay
 *   within SQLite's parameters); more are written in chunks, in the same transaction.
 * - PostgreSQL keeps a batcher per store: there each store's transaction takes a lock of its own.
 *   `queue` gives a store the file's group commit when there is one, else one of its own.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { GroupCommit, HoldoutError } from "@holdout/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { type Retry, storeOp } from "./errors.js"
import * as Transaction from "./transaction.js"

/**
 * A store's share of a batch: writes its inputs inside the batch's transaction and returns one
 * outcome per input, in order. A batch that fails fails each of the part's inputs with a `StoreError`
 * of its `op`.
 */
export interface Part<I, O, E> {
  readonly op: string
  readonly maxBatch: number
  readonly write: (inputs: ReadonlyArray<I>) => Effect.Effect<ReadonlyArray<Exit.Exit<O, E>>, SqlError>
}

/** Queues the writes of the stores of one database file in one group commit. */
export class FileCommit extends Context.Tag("@holdout/store-sqlite/FileCommit")<FileCommit, {
  /** Queues one write of `part`; fails with a `StoreError` of the part's `op` when its batch fails. */
  readonly submit: <I, O, E>(part: Part<I, O, E>, input: I) => Effect.Effect<O, E | HoldoutError.StoreError>
}>() {}

interface Job {
  readonly part: Part<unknown, unknown, unknown>
  readonly input: unknown
}

/**
 * The writes of one batch: each part's inputs, the part first queued first, in one transaction; a
 * batch that fails fails each input as its part names it.
 */
const commit = (sql: SqlClient.SqlClient, jobs: ReadonlyArray<Job>) => {
  const parts = new Map<Job["part"], Array<number>>()
  jobs.forEach((job, index) => {
    const indexes = parts.get(job.part)
    if (indexes === undefined) parts.set(job.part, [index])
    else indexes.push(index)
  })
  return Transaction.write(
    sql,
    "tasks",
    Effect.gen(function*() {
      const outcomes = new Array<Exit.Exit<unknown, unknown>>(jobs.length)
      for (const [part, indexes] of parts) {
        for (let from = 0; from < indexes.length; from += part.maxBatch) {
          const chunk = indexes.slice(from, from + part.maxBatch)
          const exits = yield* part.write(chunk.map((index) => jobs[index]!.input))
          chunk.forEach((index, position) => {
            outcomes[index] = exits[position] ?? Exit.die("a store's part returned too few outcomes")
          })
        }
      }
      return outcomes
    })
  ).pipe(
    storeOp("write", "once"),
    Effect.catchAll((error) =>
      Effect.succeed(
        jobs.map((job) =>
          Exit.fail(new HoldoutError.StoreError({ op: job.part.op, message: error.message, cause: error.cause }))
        )
      )
    )
  )
}

/**
 * How a store queues its writes: in its database file's group commit when the context has one (the
 * stores of `SqliteStore`), else in a group commit of its own, a batch a transaction under `lock`
 * (retried after a failure as `retry` allows).
 */
export const queue = <I, O, E>(
  sql: SqlClient.SqlClient,
  lock: Transaction.Lock,
  retry: Retry,
  part: Part<I, O, E>
): Effect.Effect<(input: I) => Effect.Effect<O, E | HoldoutError.StoreError>, never, Scope.Scope> =>
  Effect.flatMap(Effect.serviceOption(FileCommit), (shared) =>
    Option.isSome(shared)
      ? Effect.succeed((input: I) => shared.value.submit(part, input))
      : Effect.map(
        GroupCommit.make<I, O, E | HoldoutError.StoreError, never>(
          (inputs) => Transaction.write(sql, lock, part.write(inputs)).pipe(storeOp(part.op, retry)),
          { maxBatch: part.maxBatch }
        ),
        (group) => group.submit
      ))

/**
 * The group commit of the database file of `sql`, for as long as the scope lasts.
 */
export const make = (sql: SqlClient.SqlClient): Effect.Effect<FileCommit["Type"], never, Scope.Scope> =>
  Effect.map(
    GroupCommit.make((jobs: ReadonlyArray<Job>) => commit(sql, jobs), { maxBatch: 4096 }),
    (group) => ({
      submit: <I, O, E>(part: Part<I, O, E>, input: I) =>
        group.submit({ part: part as Job["part"], input }) as Effect.Effect<O, E | HoldoutError.StoreError>
    })
  )
