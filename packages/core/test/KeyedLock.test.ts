import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import { KeyedLock } from "../src/index.js"

describe("KeyedLock", () => {
  /** Holds `key` for 10 ms; returns when (on the test clock) it came in and went out. */
  const hold = (lock: KeyedLock.KeyedLock, key: string) =>
    lock(
      key,
      Effect.gen(function*() {
        const started = yield* Clock.currentTimeMillis
        yield* Effect.sleep("10 millis")
        return [started, yield* Clock.currentTimeMillis] as const
      })
    )

  it.effect("holders of one key take turns; holders of two keys run side by side", () =>
    Effect.gen(function*() {
      const lock = KeyedLock.make()
      const fiber = yield* Effect.fork(Effect.all([hold(lock, "a"), hold(lock, "a"), hold(lock, "b")], {
        concurrency: "unbounded"
      }))
      yield* TestClock.adjust("10 millis")
      yield* TestClock.adjust("10 millis")
      const [a1, a2, b1] = yield* Fiber.join(fiber)
      assert.deepStrictEqual([a1, a2, b1], [[0, 10], [10, 20], [0, 10]])
    }))

  it.effect("a key let go is taken again at once, also after its holder failed or was interrupted", () =>
    Effect.gen(function*() {
      const lock = KeyedLock.make()
      assert.strictEqual(yield* Effect.flip(lock("a", Effect.fail("boom"))), "boom")
      const held = yield* Effect.fork(lock("a", Effect.never))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(held)
      assert.strictEqual(yield* lock("a", Effect.succeed(1)), 1)
    }))
})
