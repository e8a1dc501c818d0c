/**
 * A page of samples run through the stages of a run.
 */
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import type { StoreError } from "../HoldoutError.js"
import type { Item, Runner, Stage } from "./stage.js"

/**
 * Runs a page of items through the stages, in order. An item goes to the first stage that needs
 * it as soon as it is ready for it: a stage of single samples takes it at once, a batch stage once
 * it has a full chunk (the chunks still short when the page is done run last). The page's units
 * are run by workers taking them in turn: the page's own fiber, and another fiber (`FiberSet`)
 * each time a worker's unit is about to wait (`Runner.suspending`: an attempt that answers later,
 * or a retry) while units are ready, up to `width` workers. A task that answers at once is run by
 * one fiber, with no fiber started per unit; how many attempts run at once is the slots' to say.
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
  Effect.scoped(Effect.gen(function*() {
    const helpers = yield* FiberSet.make<void, StoreError>()
    /** Workers running besides the page's own fiber, and whether the page ever started one. */
    let helping = 0
    let helped = false
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
    /** Starts another worker, if a unit is ready and the page has fewer than `width` workers. */
    const suspending: Effect.Effect<void> = Effect.suspend(() => {
      while (next < ready.length && ready[next] === undefined) next++
      if (next === ready.length || helping + 1 >= runner.width) return Effect.void
      helping++
      helped = true
      return Effect.asVoid(FiberSet.run(
        helpers,
        Effect.ensuring(
          work,
          Effect.sync(() => {
            helping--
          })
        )
      ))
    })
    const own: Runner = { ...runner, suspending }
    /** Runs the unit queued at `position`, then what it made ready (its own samples first), then the rest. */
    const runAt = (position: number): Effect.Effect<void, StoreError> => {
      const [index, unit] = ready[position]!
      ready[position] = undefined
      return Effect.flatMap(stages[index]!.run(own, unit), (items) => {
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
    /**
     * Waits for the workers started besides the page's own fiber; the first failure of one fails it,
     * also when that worker has ended already.
     */
    const workers: Effect.Effect<void, StoreError> = Effect.suspend(() =>
      helped ? Effect.raceFirst(FiberSet.join(helpers), FiberSet.awaitEmpty(helpers)) : Effect.void
    )
    /** Runs what is ready; then the chunks left short, stage by stage, until nothing is left. */
    const drain: Effect.Effect<void, StoreError> = Effect.suspend(() => {
      if (ready.length - next > 0) return Effect.zipRight(Effect.zipRight(work, workers), drain)
      const short = buffers.findIndex((buffer) => buffer.length > 0)
      if (short === -1) return Effect.void
      ready.push([short, buffers[short]!])
      buffers[short] = []
      return drain
    })
    feed(0, page)
    // the page is done when its records are stored (the landing may hold the next page's too)
    return yield* Effect.zipRight(drain, runner.landing.settled)
  }))
