import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { Slots } from "../src/internal/slots.js"

describe("the pipeline's attempt slots", () => {
  it.effect("hand a released slot to the longest waiter; an interrupted waiter leaves the queue", () =>
    Effect.gen(function*() {
      const slots = new Slots(1)
      const order: Array<string> = []
      yield* slots.take
      const waiter = (name: string) => Effect.fork(Effect.zipRight(slots.take, Effect.sync(() => order.push(name))))
      const first = yield* waiter("first")
      const gone = yield* waiter("gone")
      const third = yield* waiter("third")
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(gone)
      yield* slots.release
      yield* Fiber.join(first)
      yield* slots.release
      yield* Fiber.join(third)
      assert.deepStrictEqual(order, ["first", "third"])
      // every slot given back: two can be taken at once again after a release
      yield* slots.release
      yield* slots.take
      const free = yield* Effect.fork(slots.take)
      yield* Effect.yieldNow()
      assert.isFalse((yield* Fiber.poll(free))._tag === "Some", "a slot was handed out twice")
      yield* slots.release
      yield* Fiber.join(free)
    }))
})
