/**
 * A page of samples run through the stages of a run.
 */
import * as Effect from "effect/Effect"
import type { StoreError } from "../HoldoutError.js"
import type { Item, Runner, Stage } from "./stage.js"

/**
 * Runs a page of items through the stages, in order. An item goes to the first stage that needs
 * it as soon as it is ready for it: a stage of single samples takes it at once, a batch stage once
 * it has a full chunk (the chunks still short when the page is done run last). The page's units
 * are run by `width` fibers (`Effect.forEach`) taking them in turn, so a fiber is started per
 * fiber of the page rather than per unit; how many attempts run at once is the semaphore's to say.
 * The page is done when every record of it is stored: its units hand their records to the run's
 * landing and go on without waiting for the store.
 *
 * @internal
 */
export const runPage = (
  runner: Runner,
  stages: ReadonlyArray<Stage>,
  page: ReadonlyArray<Item>
): Effect.Effect<void, StoreError> =>
  Effect.suspend(() => {
    const buffers: Array<Array<Item>> = stages.map(() => [])
    /** Units ready to run: stage index and samples, taken from `next` on. */
    const ready: Array<readonly [number, ReadonlyArray<Item>] | undefined> = []
    let next = 0
    /** Queues the units that `items` complete, from stage `from` on; returns the first of them. */
    const feed = (from: number, items: ReadonlyArray<Item>): number => {
      const first = ready.length
      for (const item of items) {
        let index = from
        while (index < stages.length && !stages[index]!.needs(item)) index++
        if (index === stages.length) continue
        const size = stages[index]!.unitSize
        if (size === 1) {
          ready.push([index, [item]])
          continue
        }
        const buffer = buffers[index]!
        buffer.push(item)
        if (buffer.length === size) {
          ready.push([index, buffer])
          buffers[index] = []
        }
      }
      return first
    }
    /** Runs the unit queued at `position`, then what it made ready (its own samples first), then the rest. */
    const runAt = (position: number): Effect.Effect<void, StoreError> => {
      const [index, unit] = ready[position]!
      ready[position] = undefined
      return Effect.flatMap(stages[index]!.run(runner, unit), (items) => {
        const made = feed(index + 1, items)
        // the next stage of these samples runs in this fiber at once, unless another took it
        if (made < ready.length && ready[made] !== undefined && made >= next) {
          if (made === next) next++
          return runAt(made)
        }
        return work
      })
    }
    /** One fiber of the page: runs ready units until there are none. */
    const work: Effect.Effect<void, StoreError> = Effect.suspend(() => {
      while (next < ready.length && ready[next] === undefined) next++
      return next === ready.length ? Effect.void : runAt(next++)
    })
    /** Runs what is ready; then the chunks left short, stage by stage, until nothing is left. */
    const drain: Effect.Effect<void, StoreError> = Effect.suspend(() => {
      const pending = ready.length - next
      if (pending > 0) {
        const fibers = Math.min(runner.width, pending)
        const round = fibers === 1
          ? work
          : Effect.forEach(Array.from({ length: fibers }), () => work, { concurrency: fibers, discard: true })
        return Effect.zipRight(round, drain)
      }
      const short = buffers.findIndex((buffer) => buffer.length > 0)
      if (short === -1) return Effect.void
      ready.push([short, buffers[short]!])
      buffers[short] = []
      return drain
    })
    feed(0, page)
    // the page is done when its records are stored (the landing may hold the next page's too)
    return Effect.zipRight(drain, runner.landing.settled)
  })
