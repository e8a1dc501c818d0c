/**
 * One attempt of a task function, which may return a value, a Promise or an Effect.
 *
 * The hot path is kept cheap on purpose: a function that returns synchronously costs no timer and
 * no fiber; a Promise is awaited with `Effect.async` and raced by the watchdog; an Effect result
 * runs as a fiber of its own (so that the watchdog can interrupt it), started synchronously so that
 * one that needs no async boundary is done before any watch is set up. The deadline of an attempt
 * counts from the moment the task function is called.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Runtime from "effect/Runtime"
import { Failed, fromCause, thrown } from "./failure.js"
import type { Watchdog } from "./watchdog.js"

/**
 * What attempts need from their run: the watchdog (none without a timeout) and the runtime that
 * starts the Effects task functions return.
 *
 * @internal
 */
export interface Guard {
  readonly watchdog: Watchdog | undefined
  readonly runtime: Runtime.Runtime<never>
}

/** The outcome of an attempt that did not finish synchronously: a value or a `Failed`. */
class Pending {
  constructor(readonly effect: Effect.Effect<unknown>) {}
}

const isThenable = (u: unknown): u is PromiseLike<unknown> =>
  (typeof u === "object" || typeof u === "function") && u !== null &&
  typeof (u as { readonly then?: unknown }).then === "function"

/**
 * Awaits a Promise, raced by the watchdog. No interruption handler is registered (it would cost
 * several allocations on every attempt): if the attempt is interrupted, its watch simply lapses
 * (resuming an abandoned `async` does nothing) and goes away with the run's watchdog.
 */
const awaitPromise = (promise: PromiseLike<unknown>, startedAt: number, watchdog: Watchdog | undefined) =>
  Effect.async<unknown>((resume) => {
    let settled = false
    const watch = watchdog?.add(startedAt, () => {
      if (settled) return
      settled = true
      resume(Effect.succeed(watchdog.timedOut()))
    })
    const settle = (result: unknown) => {
      if (settled) return
      settled = true
      watchdog?.remove(watch)
      resume(Effect.succeed(result))
    }
    try {
      promise.then(settle, (error: unknown) => settle(thrown(error)))
    } catch (error) {
      settle(thrown(error))
    }
  })

const exitValue = (exit: Exit.Exit<unknown, unknown>): unknown =>
  exit._tag === "Success" ? exit.value : fromCause(exit.cause)

/**
 * Starts an Effect returned by a task function. Without a timeout it runs inline. With one it is
 * started as a fiber of its own that runs synchronously as far as it can (`runFork` starts at
 * once), so an Effect that finishes without an async boundary is done before any watch is set up;
 * otherwise the watchdog watches it and interrupts it when it is late.
 */
const startEffect = (effect: Effect.Effect<unknown, unknown>, startedAt: number, guard: Guard): unknown => {
  const watchdog = guard.watchdog
  if (watchdog === undefined) return new Pending(Effect.map(Effect.exit(effect), exitValue))
  const fiber = Runtime.runFork(guard.runtime)(effect)
  const exit = fiber.unsafePoll()
  if (exit !== null) return exitValue(exit)
  // No interruption handler on the `async` (it costs several allocations an attempt): if the run
  // ends first, `abandonAll` interrupts the fiber through its watch.
  return new Pending(Effect.async<unknown>((resume) => {
    let settled = false
    const interrupt = () => fiber.unsafeInterruptAsFork(FiberId.none)
    const watch = watchdog.add(startedAt, () => {
      if (settled) return
      settled = true
      resume(Effect.succeed(watchdog.timedOut()))
      interrupt()
    }, interrupt)
    fiber.addObserver((exit) => {
      if (settled) return
      settled = true
      watchdog.remove(watch)
      resume(Effect.succeed(exitValue(exit)))
    })
  }))
}

/** Calls a task function once: its value, a `Failed`, or a `Pending` to await. */
const invoke = (call: () => unknown, startedAt: number, guard: Guard): unknown => {
  let value: unknown
  try {
    value = call()
  } catch (error) {
    return thrown(error)
  }
  if (Effect.isEffect(value)) {
    if (Exit.isExit(value)) return exitValue(value)
    return startEffect(value as Effect.Effect<unknown, unknown>, startedAt, guard)
  }
  if (isThenable(value)) return new Pending(awaitPromise(value, startedAt, guard.watchdog))
  return value
}

const settle = (value: unknown): Effect.Effect<unknown, Failed> =>
  value instanceof Failed ? Effect.fail(value) : Effect.succeed(value)

/**
 * One attempt of `call` started at `startedAt`: succeeds with what the function returned (awaited),
 * fails with a `Failed` for a throw, a rejection, a failed or dying Effect, or a timeout.
 *
 * @internal
 */
export const attempt = (call: () => unknown, startedAt: number, guard: Guard): Effect.Effect<unknown, Failed> => {
  const result = invoke(call, startedAt, guard)
  return result instanceof Pending ? Effect.flatMap(result.effect, settle) : settle(result)
}

/**
 * One attempt, answered synchronously when it can be: the value (a success), a `Failed`, or a
 * `Pending` to await (whose effect settles to the value or fails with the `Failed`).
 *
 * @internal
 */
export const attemptNow = (call: () => unknown, startedAt: number, guard: Guard): unknown => {
  const result = invoke(call, startedAt, guard)
  return result instanceof Pending ? new Settling(Effect.flatMap(result.effect, settle)) : result
}

/**
 * An attempt still running, as `attemptNow` answers it: its effect gives the value or fails with the `Failed`.
 *
 * @internal
 */
export class Settling {
  constructor(readonly effect: Effect.Effect<unknown, Failed>) {}
}
