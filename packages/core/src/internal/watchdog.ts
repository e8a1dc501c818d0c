/**
 * The per-attempt timeout: one fiber a run that abandons attempts past their deadline. It sleeps
 * (on Effect's `Clock`, so `TestClock` drives it) until the earliest deadline and is idle when
 * nothing is watched, so an attempt costs a `Set` insertion and removal, not a timer and a fiber.
 *
 * Precision: an attempt is abandoned no earlier than `timeout` after it started and at most
 * `slack = min(timeout / 100, 1 s)` later (plus timer latency); deadlines that close together are
 * handled by one wake-up.
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { Failed } from "./failure.js"

/**
 * One watched attempt.
 *
 * @internal
 */
export interface Watch {
  readonly deadline: number
  /** Called once the deadline has passed. */
  readonly expire: () => void
  /** Stops the attempt when the run ends first (an Effect's fiber is interrupted). */
  readonly abandon: (() => void) | undefined
}

/**
 * The watchdog of a run.
 *
 * @internal
 */
export class Watchdog {
  readonly watches = new Set<Watch>()
  private wake: (() => void) | undefined = undefined
  readonly slackMs: number
  readonly timeoutText: string

  constructor(readonly clock: Clock.Clock, readonly timeoutMs: number) {
    this.slackMs = Math.min(1000, Math.ceil(timeoutMs / 100))
    this.timeoutText = Duration.format(Duration.millis(timeoutMs))
  }

  /** The failure of an attempt that ran out of time (retryable by the default rule). */
  timedOut(): Failed {
    const message = `Timed out: the attempt took longer than the per-attempt timeout of ${this.timeoutText}.`
    return new Failed(new Cause.TimeoutException(message), message, `TimeoutException: ${message}`)
  }

  add(startedAt: number, expire: () => void, abandon?: () => void): Watch {
    const watch: Watch = { deadline: startedAt + this.timeoutMs, expire, abandon }
    this.watches.add(watch)
    const wake = this.wake
    if (wake !== undefined) {
      this.wake = undefined
      wake()
    }
    return watch
  }

  remove(watch: Watch | undefined): void {
    if (watch !== undefined) this.watches.delete(watch)
  }

  /** Stops every attempt still watched: the run is over (done, failed or interrupted). */
  readonly abandonAll: Effect.Effect<void> = Effect.sync(() => {
    for (const watch of this.watches) watch.abandon?.()
    this.watches.clear()
  })

  readonly idle: Effect.Effect<void> = Effect.async<void>((resume) => {
    this.wake = () => resume(Effect.void)
    return Effect.sync(() => {
      this.wake = undefined
    })
  })

  readonly run: Effect.Effect<void> = Effect.gen(this, function*() {
    while (true) {
      if (this.watches.size === 0) {
        yield* this.idle
        continue
      }
      // Deadlines are added in (clock) order, so the first watch holds the earliest one.
      const first: Watch = this.watches.values().next().value!
      const now = this.clock.unsafeCurrentTimeMillis()
      if (first.deadline > now) yield* Effect.sleep(first.deadline - now + this.slackMs)
      const after = this.clock.unsafeCurrentTimeMillis()
      for (const watch of this.watches) {
        if (watch.deadline <= after) {
          this.watches.delete(watch)
          watch.expire()
        }
      }
    }
  })
}

/**
 * Starts a watchdog for the scope (none when the timeout is infinite); closing the scope stops
 * every attempt it still watches.
 *
 * @internal
 */
export const start = (timeoutMs: number): Effect.Effect<Watchdog | undefined, never, Scope.Scope> =>
  Number.isFinite(timeoutMs)
    ? Effect.gen(function*() {
      const watchdog = new Watchdog(yield* Effect.clock, timeoutMs)
      yield* Effect.addFinalizer(() => watchdog.abandonAll)
      yield* Effect.forkScoped(watchdog.run)
      return watchdog
    })
    : Effect.succeed(undefined)
