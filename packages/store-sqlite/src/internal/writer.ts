/**
 * The group commit of one `SqlClient`: every write of the stores on the client (reservations, runs,
 * samples, meta values) goes through one writer, so that concurrent requests of both stores share
 * one transaction and one fsync.
 *
 * Writes are gathered in rounds. A round is open from its first write until the writer starts it;
 * the writer (core's `GroupCommit`, one round at a time) first lets the event loop turn once, so that
 * requests woken by I/O meanwhile join the round, then closes it and writes it in one transaction.
 * Each kind of write is a lane, whose inputs of a round are written together (one statement for many
 * rows) in the order they came. The writes of a round are concurrent (a caller waits for its write to
 * be committed before it makes another), so lanes need no order among themselves. Every input gets
 * its own outcome, known once the transaction is committed. A statement that fails fails the round
 * (it is rolled back, and every input of it fails with the `StoreError`), so a lane decides an
 * input's refusal before it writes anything for it.
 *
 * The writer belongs to the client, not to one store: the first store that opens on a client starts
 * it, and the last one released stops it.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { GroupCommit, type HoldoutError } from "@holdout/core"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { storeOp } from "./errors.js"
import * as Transaction from "./transaction.js"

/**
 * Writes one lane's inputs of a round inside the open transaction, in order, and returns one
 * outcome per input. `afterCommit` registers what to do once the transaction is committed (not if it
 * is rolled back). It may run again on the same inputs (a busy transaction is retried): it acts only
 * through the database and `afterCommit`.
 */
export type Write<I, A, E> = (
  inputs: ReadonlyArray<I>,
  afterCommit: (effect: () => void) => void
) => Effect.Effect<ReadonlyArray<Exit.Exit<A, E>>, SqlError>

interface Queued<I, A, E> {
  readonly input: I
  outcome: Exit.Exit<A, E> | undefined
}

type Statements = (afterCommit: (effect: () => void) => void) => Effect.Effect<void, SqlError>

/** A lane seen without its types. */
interface Lane {
  readonly op: string
  /** Takes the lane's inputs of the closing round: what writes them in its transaction. */
  readonly take: () => Statements
}

interface Round {
  /** The lanes written to in this round, each once. */
  readonly lanes: Array<Lane>
  done: Deferred.Deferred<void, HoldoutError.StoreError> | undefined
}

/**
 * The writer of a client.
 */
export interface Writer {
  /** A lane of writes: a function that queues one input and waits for its committed outcome. */
  readonly lane: <I, A, E>(
    op: string,
    write: Write<I, A, E>
  ) => (input: I) => Effect.Effect<A, E | HoldoutError.StoreError>
}

/** `setImmediate` where the runtime has it (Node, Deno): it runs after the I/O callbacks that are due. */
const runtime = globalThis as typeof globalThis & {
  readonly setImmediate?: (callback: () => void) => unknown
  readonly clearImmediate?: (handle: unknown) => void
}

/** One turn of the event loop. */
const nextTurn = Effect.async<void>((resume) => {
  const { clearImmediate, setImmediate } = runtime
  if (setImmediate !== undefined && clearImmediate !== undefined) {
    const handle = setImmediate(() => resume(Effect.void))
    return Effect.sync(() => clearImmediate(handle))
  }
  const handle = setTimeout(() => resume(Effect.void), 0)
  return Effect.sync(() => clearTimeout(handle))
})

const make = (sql: SqlClient.SqlClient): Effect.Effect<Writer, never, Scope.Scope> =>
  Effect.gen(function*() {
    let open: Round | undefined

    const commit = (rounds: ReadonlyArray<Round>) =>
      Effect.zipRight(
        nextTurn,
        Effect.suspend(() => {
          // closed: a write from now on opens the next round
          if (open !== undefined && rounds.includes(open)) open = undefined
          const statements: Array<Statements> = []
          const ops = new Set<string>()
          for (const round of rounds) {
            for (const lane of round.lanes) {
              statements.push(lane.take())
              ops.add(lane.op)
            }
          }
          // a retried transaction starts again with no after-commit effect
          let afterCommit: Array<() => void> = []
          const register = (effect: () => void) => {
            afterCommit.push(effect)
          }
          return Transaction.write(
            sql,
            Effect.suspend(() => {
              afterCommit = []
              return Effect.forEach(statements, (write) => write(register), { discard: true })
            })
          ).pipe(
            storeOp([...ops].join("+")),
            Effect.tap(() =>
              Effect.sync(() => {
                for (const effect of afterCommit) effect()
              })
            ),
            Effect.as(rounds.map(() => Exit.void))
          )
        })
      )
    const batcher = yield* GroupCommit.make(commit)

    const join = (lane: Lane, first: boolean): Deferred.Deferred<void, HoldoutError.StoreError> => {
      if (open === undefined) {
        const round: Round = { lanes: [], done: undefined }
        open = round
        round.done = batcher.unsafeSubmit(round)
      }
      if (first) open.lanes.push(lane)
      return open.done!
    }

    return {
      lane: <I, A, E>(op: string, write: Write<I, A, E>) => {
        // the inputs of the open round
        let queued: Array<Queued<I, A, E>> = []
        const lane: Lane = {
          op,
          take: () => {
            const taken = queued
            queued = []
            const inputs = taken.map((entry) => entry.input)
            return (afterCommit) =>
              Effect.map(write(inputs, afterCommit), (outcomes) => {
                for (let index = 0; index < taken.length; index++) taken[index]!.outcome = outcomes[index]
              })
          }
        }
        return (input: I) =>
          Effect.suspend(() => {
            const entry: Queued<I, A, E> = { input, outcome: undefined }
            const done = join(lane, queued.length === 0)
            queued.push(entry)
            return Effect.flatMap(
              Deferred.await(done),
              (): Effect.Effect<A, E> => entry.outcome ?? Effect.die(`The ${op} write returned no outcome`)
            )
          })
      }
    }
  })

interface Shared {
  readonly writer: Writer
  readonly scope: Scope.CloseableScope
  references: number
}

const writers = new WeakMap<SqlClient.SqlClient, Shared>()

/**
 * The writer of `sql`, started by the first store that asks for it; released with the scope, and
 * stopped when the last store using it is released.
 */
export const acquire = (sql: SqlClient.SqlClient): Effect.Effect<Writer, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.gen(function*() {
        const existing = writers.get(sql)
        if (existing !== undefined) {
          existing.references++
          return existing
        }
        const scope = yield* Scope.make()
        // started interruptible (this acquisition is not), so that closing its scope stops it
        const writer = yield* Scope.extend(Effect.interruptible(make(sql)), scope).pipe(
          Effect.onError(() => Scope.close(scope, Exit.void))
        )
        const shared: Shared = { writer, scope, references: 1 }
        writers.set(sql, shared)
        return shared
      }),
      (shared) =>
        Effect.suspend(() => {
          shared.references--
          if (shared.references > 0) return Effect.void
          writers.delete(sql)
          return Scope.close(shared.scope, Exit.void)
        })
    ),
    (shared) => shared.writer
  )
