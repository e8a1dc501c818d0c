import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import * as GroupCommit from "../src/GroupCommit.js"

describe("GroupCommit", () => {
  it.scoped("inputs queued while a batch commits are committed together by the next; each gets its own outcome", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const started = yield* Deferred.make<void>()
      const batches: Array<ReadonlyArray<number>> = []
      const group = yield* GroupCommit.make((inputs: ReadonlyArray<number>) =>
        Effect.gen(function*() {
          batches.push(inputs)
          yield* Deferred.succeed(started, undefined)
          if (batches.length === 1) yield* Deferred.await(gate)
          return inputs.map((input) => input % 2 === 0 ? Exit.succeed(input * 10) : Exit.fail(`odd ${input}`))
        })
      )
      const first = yield* Effect.fork(group.submit(0))
      yield* Deferred.await(started)
      // queued while the first batch is committing
      const rest = [1, 2, 3, 4].map((input) => group.unsafeSubmit(input))
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual(yield* Fiber.join(first), 0)
      const outcomes = yield* Effect.forEach(rest, (done) => Effect.either(Deferred.await(done)))
      assert.deepStrictEqual(batches, [[0], [1, 2, 3, 4]])
      assert.deepStrictEqual(outcomes.map((outcome) => outcome._tag === "Right" ? outcome.right : outcome.left), [
        "odd 1",
        20,
        "odd 3",
        40
      ])
    }))

  it.scoped("a commit that fails as a whole fails every input of its batch", () =>
    Effect.gen(function*() {
      const group = yield* GroupCommit.make((_inputs: ReadonlyArray<string>) => Effect.fail("disk full"))
      const outcomes = yield* Effect.forEach(["a", "b"], (input) => Effect.flip(group.submit(input)), {
        concurrency: "unbounded"
      })
      assert.deepStrictEqual(outcomes, ["disk full", "disk full"])
    }))

  it.scoped("callers that arrive in separate turns of the event loop (requests, timers) share a batch", () =>
    Effect.gen(function*() {
      const batches: Array<ReadonlyArray<number>> = []
      const group = yield* GroupCommit.make((inputs: ReadonlyArray<number>) =>
        Effect.sync(() => {
          batches.push(inputs)
          return inputs.map(() => Exit.void)
        })
      )
      const runtime = yield* Effect.runtime<never>()
      // five callbacks of the event loop, each a caller of its own: a commit made at once would take
      // each alone. Node runs the immediates queued together in one check phase, before the timer the
      // group commit waits on, so they share one batch (timers would not do: on a loaded machine, timers
      // made in different milliseconds fire in different turns); Deno may run the first alone
      yield* Effect.promise(() =>
        Promise.all(
          [1, 2, 3, 4, 5].map((input) =>
            new Promise((resolve) => setImmediate(() => resolve(Runtime.runPromise(runtime)(group.submit(input)))))
          )
        )
      )
      assert.deepStrictEqual(batches.flat(), [1, 2, 3, 4, 5])
      assert.isAtMost(batches.length, "Deno" in globalThis ? 2 : 1, `batches: ${JSON.stringify(batches)}`)
    }))

  it.effect("closing the scope lets the batch in flight finish and interrupts the callers still queued", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const gate = yield* Deferred.make<void>()
      const started = yield* Deferred.make<void>()
      const committed: Array<number> = []
      const group = yield* Scope.extend(
        GroupCommit.make((inputs: ReadonlyArray<number>) =>
          Effect.gen(function*() {
            yield* Deferred.succeed(started, undefined)
            yield* Deferred.await(gate)
            committed.push(...inputs)
            return inputs.map(() => Exit.void)
          })
        ),
        scope
      )
      const inFlight = yield* Effect.fork(group.submit(1))
      // the batch of 1 is being committed
      yield* Deferred.await(started)
      const queued = yield* Effect.fork(group.submit(2))
      yield* Effect.yieldNow()
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* Effect.yieldNow()
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(closing)
      assert.isTrue(Exit.isSuccess(yield* Fiber.await(inFlight)))
      assert.isTrue(Exit.isInterrupted(yield* Fiber.await(queued)))
      assert.deepStrictEqual(committed, [1])
    }))
})
