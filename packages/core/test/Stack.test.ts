import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Stack from "../src/Stack.js"

const captureLogs = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const logger = Logger.make(({ logLevel, message }) => {
      lines.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
    })
    const result = yield* Effect.provide(effect, Logger.replace(Logger.defaultLogger, logger))
    return { result, lines }
  })

describe("Stack.reconcile", () => {
  it.effect("a budgeted split with no tier becomes non_viewable", () =>
    Effect.gen(function*() {
      const { policy } = yield* Stack.reconcile([{ datasetId: "qa", split: "validation", runs: 2 }], {
        train: "viewable"
      })
      assert.deepStrictEqual(policy, [
        { split: "train", tier: "viewable" },
        { split: "validation", tier: "non_viewable" }
      ])
    }))

  it.effect("a budgeted no_access split is a ConfigError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Stack.reconcile([{ datasetId: "qa", split: "test", runs: 2 }], { test: "no_access" })
      )
      assert.strictEqual(error._tag, "ConfigError")
      assert.include(error.message, "no_access")
    }))

  it.effect("a budgeted viewable split is allowed with a logged warning", () =>
    Effect.gen(function*() {
      const { lines, result } = yield* captureLogs(
        Stack.reconcile([{ datasetId: "qa", split: "train", samples: 10 }], { train: "viewable" })
      )
      assert.deepStrictEqual(result.policy, [{ split: "train", tier: "viewable" }])
      assert.isTrue(lines.some((line) => line.startsWith("WARN") && line.includes("viewable")))
    }))

  it.effect("invalid budgets are ConfigErrors", () =>
    Effect.gen(function*() {
      const neither = yield* Effect.flip(Stack.reconcile([{ datasetId: "qa", split: "train" }], {}))
      assert.include(neither.message, "neither")
      const negative = yield* Effect.flip(Stack.reconcile([{ datasetId: "qa", split: "train", runs: -1 }], {}))
      assert.strictEqual(negative._tag, "ConfigError")
    }))
})
