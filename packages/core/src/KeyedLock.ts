/**
 * Locks by key, in this process: one holder of a key at a time, the others wait their turn, in the
 * order they came; holders of different keys run side by side. A key's lock lives only while someone
 * holds or waits for it, so a key costs nothing once let go. The engine locks run ids (repeats of one
 * idempotency key and resumes of one run never produce the run twice at once); the SQLite store locks
 * database files, around every statement it runs.
 *
 * A key nobody holds is taken in a few effect steps: its holder is noted in a `Map`, synchronously.
 * (A `Semaphore` per key, with its entry counted in and out, took 46 steps, more than the statement it
 * guarded; the stores take a lock four times or more for each evaluation.) A waiter waits on a
 * `Deferred` of its own, which the holder completes as it lets go; a waiter interrupted meanwhile
 * leaves the queue, and passes the key on if it had just been handed it.
 *
 * @since 0.1.0
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"

/**
 * Runs an effect while holding the lock of a key.
 *
 * @since 0.1.0
 * @category models
 */
export type KeyedLock<in K = string> = <A, E, R>(key: K, effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

/** One waiting for a key: resumed when the key is handed to it (`handed`). */
interface Waiter {
  readonly turn: Deferred.Deferred<void>
  handed: boolean
}

/**
 * A fresh set of locks, one per key (keys are compared as `Map` keys: strings by value, objects by
 * identity).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <K = string>(): KeyedLock<K> => {
  // a key held, with the queue of those waiting for it; a key absent is free
  const held = new Map<K, Array<Waiter>>()

  /** Lets go of a key: to the first waiter, or free. */
  const letGo = (key: K) => {
    const waiters = held.get(key)!
    const next = waiters.shift()
    if (next === undefined) {
      held.delete(key)
      return
    }
    next.handed = true
    Deferred.unsafeDone(next.turn, Exit.void)
  }

  /** A waiter interrupted: out of the queue, or, if the key was just handed to it, the key passed on. */
  const leave = (key: K, waiter: Waiter) =>
    Effect.sync(() => {
      if (waiter.handed) return letGo(key)
      const waiters = held.get(key)!
      waiters.splice(waiters.indexOf(waiter), 1)
    })

  return <A, E, R>(key: K, effect: Effect.Effect<A, E, R>) =>
    Effect.uninterruptibleMask((restore) => {
      const holding = Effect.ensuring(restore(effect), Effect.sync(() => letGo(key)))
      const waiters = held.get(key)
      if (waiters === undefined) {
        held.set(key, [])
        return holding
      }
      const waiter: Waiter = { turn: Deferred.unsafeMake<void>(FiberId.none), handed: false }
      waiters.push(waiter)
      return Effect.zipRight(
        Effect.onInterrupt(restore(Deferred.await(waiter.turn)), () => leave(key, waiter)),
        holding
      )
    })
}
