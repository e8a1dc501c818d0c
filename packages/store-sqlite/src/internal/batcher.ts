/**
 * Group commit: requests queued while a batch is being committed are committed together by the
 * next batch, in one transaction. Each caller gets its own outcome.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"

interface Entry<I, O, E> {
  readonly input: I
  readonly done: Deferred.Deferred<O, E>
}

/** A batcher: `submit` queues one input and waits for its outcome. */
export interface Batcher<I, O, E> {
  readonly submit: (input: I) => Effect.Effect<O, E>
}

/**
 * Starts a batcher. `commit` gets the inputs of one batch and returns one exit per input, in order;
 * if it fails as a whole, every input of the batch fails with that error.
 */
export const make = <I, O, E>(
  commit: (inputs: ReadonlyArray<I>) => Effect.Effect<ReadonlyArray<Exit.Exit<O, E>>, E>,
  maxBatch = 1024
): Effect.Effect<Batcher<I, O, E>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const queue = yield* Queue.unbounded<Entry<I, O, E>>()
    const run = Effect.forever(
      Effect.flatMap(Queue.takeBetween(queue, 1, maxBatch), (chunk) => {
        const entries = Array.from(chunk)
        return Effect.exit(commit(entries.map((entry) => entry.input))).pipe(
          Effect.map((exit) => {
            if (Exit.isSuccess(exit)) {
              entries.forEach((entry, index) => Deferred.unsafeDone(entry.done, exit.value[index]!))
            } else {
              for (const entry of entries) Deferred.unsafeDone(entry.done, exit as Exit.Exit<never, E>)
            }
          })
        )
      })
    )
    const fiber = yield* Effect.forkDaemon(run)
    yield* Effect.addFinalizer(() => Fiber.interrupt(fiber))
    return {
      submit: (input) =>
        Effect.suspend(() => {
          const done = Deferred.unsafeMake<O, E>(FiberId.none)
          queue.unsafeOffer({ input, done })
          return Deferred.await(done)
        })
    }
  })
