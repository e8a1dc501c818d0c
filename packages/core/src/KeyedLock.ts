/**
 * Locks by key, in this process: one holder of a key at a time, the others wait their turn; holders
 * of different keys run side by side. A key's lock lives only while someone holds or waits for it,
 * so a key costs nothing once let go. The engine locks run ids (repeats of one idempotency key and
 * resumes of one run never produce the run twice at once); the SQLite store locks database files.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"

/**
 * Runs an effect while holding the lock of a key.
 *
 * @since 0.1.0
 * @category models
 */
export type KeyedLock<in K = string> = <A, E, R>(key: K, effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

/**
 * A fresh set of locks, one per key (keys are compared as `Map` keys: strings by value, objects by
 * identity).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <K = string>(): KeyedLock<K> => {
  const locks = new Map<K, { readonly semaphore: Effect.Semaphore; users: number }>()
  return (key, effect) =>
    Effect.acquireUseRelease(
      Effect.sync(() => {
        let lock = locks.get(key)
        if (lock === undefined) {
          lock = { semaphore: Effect.unsafeMakeSemaphore(1), users: 0 }
          locks.set(key, lock)
        }
        lock.users++
        return lock
      }),
      (lock) => lock.semaphore.withPermits(1)(effect),
      (lock) =>
        Effect.sync(() => {
          lock.users--
          if (lock.users === 0) locks.delete(key)
        })
    )
}
