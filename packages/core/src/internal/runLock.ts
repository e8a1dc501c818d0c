/**
 * One lock per run id in this process, so that repeats of one idempotency key and resumes of one
 * run never produce the same run twice at once. A lock lives only while someone holds or waits
 * for it.
 */
import * as Effect from "effect/Effect"

/** Runs an effect while holding the lock of a run id. */
export type WithRunLock = <A, E>(runId: string, effect: Effect.Effect<A, E>) => Effect.Effect<A, E>

/** A fresh set of run locks. */
export const make = (): WithRunLock => {
  const locks = new Map<string, { readonly semaphore: Effect.Semaphore; users: number }>()
  return (runId, effect) =>
    Effect.acquireUseRelease(
      Effect.sync(() => {
        let lock = locks.get(runId)
        if (lock === undefined) {
          lock = { semaphore: Effect.unsafeMakeSemaphore(1), users: 0 }
          locks.set(runId, lock)
        }
        lock.users++
        return lock
      }),
      (lock) => lock.semaphore.withPermits(1)(effect),
      (lock) =>
        Effect.sync(() => {
          lock.users--
          if (lock.users === 0) locks.delete(runId)
        })
    )
}
