/**
 * Group commit, the one batching seam of the durable stores: inputs submitted while a batch is
 * being committed are committed together by the next batch, so concurrent writers share one
 * transaction or one fsync. An idle committer woken by an input waits for a turn of the event loop
 * before it takes its batch, so that callers in other turns (HTTP requests) join it. Each caller gets its own outcome. The committing fiber belongs to the
 * scope that made it; closing the scope lets a batch in flight finish, then interrupts the callers
 * still queued.
 *
 * @since 0.1.0
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
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

interface Immediate {
  readonly setImmediate?: (callback: () => void) => unknown
  readonly clearImmediate?: (handle: unknown) => void
}

/**
 * A turn of the event loop: fibers resumed one after another run as microtasks, which starve the
 * loop's I/O; waiting for the loop's next check phase (`setImmediate`, on Node and Deno; a timer
 * elsewhere) lets requests that arrived meanwhile be read and queue their inputs, so that concurrent
 * callers share a batch. (Not `Effect.sleep`: a test clock would hold it.)
 */
const eventLoopTurn: Effect.Effect<void> = Effect.async<void>((resume) => {
  const { clearImmediate, setImmediate } = globalThis as Immediate
  if (setImmediate !== undefined && clearImmediate !== undefined) {
    const handle = setImmediate(() => resume(Effect.void))
    return Effect.sync(() => clearImmediate(handle))
  }
  const timer = globalThis.setTimeout(() => resume(Effect.void), 0)
  return Effect.sync(() => globalThis.clearTimeout(timer))
})

interface Entry<I, O, E> {
  readonly input: I
  readonly done: (exit: Exit.Exit<O, E>) => void
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
    // Inputs wait in an array (a submit is a push, and a wake-up of the committer when it is idle);
    // on release, whoever still waits is interrupted.
    const state = yield* Effect.acquireRelease(
      Effect.sync(() => ({
        pending: [] as Array<Entry<I, O, E>>,
        idle: undefined as Deferred.Deferred<void> | undefined,
        closed: false
      })),
      (state) =>
        Effect.sync(() => {
          state.closed = true
          const left = state.pending
          state.pending = []
          for (const entry of left) entry.done(Exit.interrupt(FiberId.none))
        })
    )
    const offer = (entry: Entry<I, O, E>) => {
      if (state.closed) return entry.done(Exit.interrupt(FiberId.none))
      state.pending.push(entry)
      const idle = state.idle
      if (idle !== undefined) {
        state.idle = undefined
        Deferred.unsafeDone(idle, Exit.void)
      }
    }
    const settle = (entries: ReadonlyArray<Entry<I, O, E>>, exit: Exit.Exit<ReadonlyArray<Exit.Exit<O, E>>, E>) =>
      Effect.sync(() => {
        if (Exit.isSuccess(exit)) {
          for (let index = 0; index < entries.length; index++) {
            entries[index]!.done(exit.value[index] ?? Exit.die("a commit returned too few outcomes"))
          }
        } else {
          const failed = Exit.failCause(exit.cause)
          for (const entry of entries) entry.done(failed)
        }
      })
    const next: Effect.Effect<never, never, R> = Effect.suspend(() => {
      if (state.pending.length === 0) {
        const idle = Deferred.unsafeMake<void>(FiberId.none)
        state.idle = idle
        return Effect.zipRight(Deferred.await(idle), Effect.zipRight(eventLoopTurn, take))
      }
      return take
    })
    const take: Effect.Effect<never, never, R> = Effect.suspend(() => {
      let entries = state.pending
      if (entries.length > maxBatch) {
        state.pending = entries.slice(maxBatch)
        entries = entries.slice(0, maxBatch)
      } else state.pending = []
      // a batch taken is committed and answered whole: closing the scope waits for it
      return Effect.zipRight(
        Effect.uninterruptible(Effect.flatMap(
          Effect.exit(commit(entries.map((entry) => entry.input))),
          (exit) => settle(entries, exit)
        )),
        next
      )
    })
    yield* Effect.forkScoped(next)
    return {
      unsafeSubmit: (input) => {
        const done = Deferred.unsafeMake<O, E>(FiberId.none)
        offer({ input, done: (exit) => Deferred.unsafeDone(done, exit) })
        return done
      },
      submit: (input) => Effect.async<O, E>((resume) => offer({ input, done: resume }))
    }
  })
