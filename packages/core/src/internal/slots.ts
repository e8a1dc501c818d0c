/**
 * The attempt slots of a run (its concurrency limit).
 */
import * as Effect from "effect/Effect"

/**
 * The attempt slots of a run: a count of free slots and the attempts waiting for one, in order.
 * It takes an asynchronous step only when every slot is in use. (Effect's `Semaphore` takes one on
 * every `take`; on a task that answers at once that was half of the pipeline's time.) A waiting
 * attempt that is interrupted leaves the queue; the slots belong to one run and end with it.
 */
export class Slots {
  private free: number
  private readonly waiting: Array<() => void> = []

  constructor(count: number) {
    this.free = count
  }

  readonly take: Effect.Effect<void> = Effect.suspend(() => {
    if (this.free > 0) {
      this.free--
      return Effect.void
    }
    return Effect.async<void>((resume) => {
      const wake = () => resume(Effect.void)
      this.waiting.push(wake)
      return Effect.sync(() => {
        const index = this.waiting.indexOf(wake)
        if (index !== -1) this.waiting.splice(index, 1)
      })
    })
  })

  /** Takes a slot if one is free, without waiting. */
  unsafeTryTake(): boolean {
    if (this.free === 0) return false
    this.free--
    return true
  }

  /** Gives a slot back: to the longest waiter, if any. */
  unsafeRelease(): void {
    const next = this.waiting.shift()
    if (next === undefined) this.free++
    else next()
  }

  readonly release: Effect.Effect<void> = Effect.sync(() => this.unsafeRelease())
}
