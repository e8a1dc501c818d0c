import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { retryPolicy } from "../src/internal/failure.js"
import { runPage } from "../src/internal/page.js"
import * as Stage from "../src/internal/stage.js"
import * as TaskStore from "../src/TaskStore.js"

const settings: Stage.Settings = {
  concurrency: 4,
  timeoutMs: Infinity,
  maxAttempts: 1,
  baseDelayMs: 1,
  maxDelayMs: 1,
  isRetryable: () => false,
  batchSize: 1
}

const items = (count: number): Array<Stage.Item> =>
  Array.from({ length: count }, (_, sampleId) => ({ sampleId, row: null, input: null, record: undefined }))

describe("a page's workers", () => {
  it.live("a worker started for the page that fails fails the page, even once it has ended", () =>
    Effect.gen(function*() {
      const runner = yield* Stage.makeRunner(settings, retryPolicy(settings, "test"), TaskStore.makeMemory())
      const stage: Stage.Stage = {
        unitSize: 1,
        needs: (item) => item.record === undefined,
        // sample 0 waits in the page's own fiber, having let the page start a worker; that worker
        // takes sample 1 and dies at once, long before sample 0 is done
        run: (own, unit) =>
          unit[0]!.sampleId === 0
            ? Effect.zipRight(own.suspending, Effect.as(Effect.sleep("30 millis"), unit))
            : Effect.dieMessage("a defect in a worker"),
        unit: () => ({
          first: () => undefined,
          proceed: () => Effect.dieMessage("not started by another stage"),
          succeeded: () => Effect.dieMessage("not started by another stage")
        })
      }
      const exit = yield* Effect.exit(runPage(runner, [stage], items(2)))
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) assert.include(Cause.pretty(exit.cause), "a defect in a worker")
    }).pipe(Effect.scoped))
})
