import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as RuntimeFlags from "effect/RuntimeFlags"
import * as RuntimeFlagsPatch from "effect/RuntimeFlagsPatch"
import * as Supervisor from "effect/Supervisor"
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

  it.effect("waiters come in in the order they came; one interrupted while waiting leaves the queue", () =>
    Effect.gen(function*() {
      const lock = KeyedLock.make()
      const order: Array<string> = []
      const gate = yield* Deferred.make<void>()
      const first = yield* Effect.fork(lock("a", Deferred.await(gate)))
      yield* Effect.yieldNow()
      const waiters = yield* Effect.forEach(["w1", "w2", "w3"], (name) =>
        Effect.fork(lock(
          "a",
          Effect.sync(() => {
            order.push(name)
          })
        )))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(waiters[1]!)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(first)
      yield* Fiber.join(waiters[0]!)
      yield* Fiber.join(waiters[2]!)
      assert.deepStrictEqual(order, ["w1", "w3"])
      // and the key is free again
      assert.strictEqual(yield* lock("a", Effect.succeed(1)), 1)
    }))

  it.effect("a waiter interrupted just as the key was handed to it passes the key on", () =>
    Effect.gen(function*() {
      const lock = KeyedLock.make()
      const gate = yield* Deferred.make<void>()
      const first = yield* Effect.fork(lock("a", Deferred.await(gate)))
      yield* Effect.yieldNow()
      const second = yield* Effect.fork(lock("a", Effect.succeed("second")))
      const third = yield* Effect.fork(lock("a", Effect.succeed("third")))
      yield* Effect.yieldNow()
      // the holder lets go (handing the key to the second) and the second is interrupted in the same step
      yield* Effect.sync(() => {
        Deferred.unsafeDone(gate, Exit.void)
      })
      yield* Fiber.interrupt(second)
      yield* Fiber.join(first)
      assert.strictEqual(yield* Fiber.join(third), "third")
      assert.strictEqual(yield* lock("a", Effect.succeed(1)), 1)
    }))

  it.effect("a key nobody holds is taken in a few effect steps", () =>
    Effect.gen(function*() {
      const lock = KeyedLock.make()
      let steps = 0
      const counting = new (class extends Supervisor.AbstractSupervisor<void> {
        value = Effect.void
        override onEffect() {
          steps++
        }
      })()
      const counted = <A, E>(effect: Effect.Effect<A, E>) =>
        Effect.suspend(() => {
          steps = 0
          return effect
        }).pipe(
          Effect.supervised(counting),
          Effect.withRuntimeFlagsPatch(RuntimeFlagsPatch.enable(RuntimeFlags.OpSupervision)),
          Effect.map(() => steps)
        )
      const bare = yield* counted(Effect.void)
      const locked = yield* counted(lock("a", Effect.void))
      // 14 here; a Semaphore per key, with its entry counted in and out, took 46
      assert.isAtMost(locked - bare, 16)
    }))
})
