/**
 * Group commit, the one batching seam of the durable stores: inputs submitted while a batch is
 * being committed are committed together by the next batch, so concurrent writers share one
 * transaction or one fsync. Each caller gets its own outcome. The committing fiber belongs to the
 * scope that made it; closing the scope lets a batch in flight finish, then interrupts the callers
 * still queued.
 *
 * @since 0.1.0
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"

/**
 * A running group commit.
 *
 * @since 0.1.0
 * @category models
 */
export interface GroupCommit<in I, O, E> {
  /** Queues one input and waits for its outcome. */
  readonly submit: (input: I) => Effect.Effect<O, E>
  /**
   * Queues one input synchronously and returns what to await: for callers that must order an input
   * with an in-memory change made in the same synchronous step (inputs are committed in the order
   * they are queued).
   */
  readonly unsafeSubmit: (input: I) => Deferred.Deferred<O, E>
}

/**
 * Options: the most inputs one batch takes (default 4,096).
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly maxBatch?: number
}

interface Entry<I, O, E> {
  readonly input: I
  readonly done: Deferred.Deferred<O, E>
}

/**
 * Starts a group commit. `commit` gets the inputs of one batch, in the order they were queued, and
 * returns one outcome per input; if it fails as a whole, every input of the batch fails with its
 * error.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <I, O, E, R>(
  commit: (inputs: ReadonlyArray<I>) => Effect.Effect<ReadonlyArray<Exit.Exit<O, E>>, E, R>,
  options: Options = {}
): Effect.Effect<GroupCommit<I, O, E>, never, Scope.Scope | R> =>
  Effect.gen(function*() {
    const maxBatch = options.maxBatch ?? 4096
    // the queue outlives the committing fiber: on release, whoever still waits is interrupted
    const queue = yield* Effect.acquireRelease(
      Queue.unbounded<Entry<I, O, E>>(),
      (queue) =>
        Effect.flatMap(Queue.takeAll(queue), (left) =>
          Effect.zipRight(
            Effect.sync(() => {
              for (const entry of left) Deferred.unsafeDone(entry.done, Exit.interrupt(FiberId.none))
            }),
            Queue.shutdown(queue)
          ))
    )
    const settle = (entries: ReadonlyArray<Entry<I, O, E>>, exit: Exit.Exit<ReadonlyArray<Exit.Exit<O, E>>, E>) =>
      Effect.sync(() => {
        if (Exit.isSuccess(exit)) {
          for (let index = 0; index < entries.length; index++) {
            Deferred.unsafeDone(
              entries[index]!.done,
              exit.value[index] ?? Exit.die("a commit returned too few outcomes")
            )
          }
        } else {
          const failed = Exit.failCause(exit.cause)
          for (const entry of entries) Deferred.unsafeDone(entry.done, failed)
        }
      })
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.flatMap(Queue.takeBetween(queue, 1, maxBatch), (chunk) => {
          const entries = Array.from(chunk)
          // a batch taken is committed and answered whole: closing the scope waits for it
          return Effect.uninterruptible(Effect.flatMap(
            Effect.exit(commit(entries.map((entry) => entry.input))),
            (exit) => settle(entries, exit)
          ))
        })
      )
    )
    const unsafeSubmit = (input: I) => {
      const done = Deferred.unsafeMake<O, E>(FiberId.none)
      queue.unsafeOffer({ input, done })
      return done
    }
    return {
      unsafeSubmit,
      submit: (input) => Effect.suspend(() => Deferred.await(unsafeSubmit(input)))
    }
  })
