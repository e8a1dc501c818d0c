import { assert, describe, it } from "@effect/vitest"
import { expectFailure } from "@holdout/testkit"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Engine from "../src/Engine.js"
import * as Stack from "../src/Stack.js"
import * as Task from "../src/Task.js"
import * as View from "../src/View.js"
import { samplesOf } from "./fixtures.js"

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
      const error = yield* expectFailure(
        Stack.reconcile([{ datasetId: "qa", split: "test", runs: 2 }], { test: "no_access" })
      )
      assert.strictEqual(error._tag, "ConfigError")
      assert.include(error.message, "no_access")
    }))

  it.effect("a budgeted viewable split is allowed, noted at info level (no warning on every command)", () =>
    Effect.gen(function*() {
      const { lines, result } = yield* captureLogs(
        Stack.reconcile([{ datasetId: "qa", split: "train", samples: 10 }], { train: "viewable" })
      )
      assert.deepStrictEqual(result.policy, [{ split: "train", tier: "viewable" }])
      assert.isTrue(lines.some((line) => line.startsWith("INFO") && line.includes("viewable")), lines.join("\n"))
      assert.isFalse(lines.some((line) => line.startsWith("WARN")), lines.join("\n"))
    }))

  it.effect("invalid budgets are ConfigErrors", () =>
    Effect.gen(function*() {
      const neither = yield* expectFailure(Stack.reconcile([{ datasetId: "qa", split: "train" }], {}))
      assert.include(neither.message, "neither")
      const negative = yield* expectFailure(Stack.reconcile([{ datasetId: "qa", split: "train", runs: -1 }], {}))
      assert.strictEqual(negative._tag, "ConfigError")
    }))
})

describe("Stack.layerWith: budgets for splits the datasets lack", () => {
  const task = Task.make<{ readonly n: number }, number>({ name: "echo", infer: (row) => row.n, score: () => 1 })
  const build = (
    budgets: ReadonlyArray<{ readonly datasetId: string; readonly split: string; readonly runs: number }>
  ) =>
    Effect.flip(Effect.scoped(Layer.build(Stack.layerMemory({
      datasets: { qa: { train: [{ n: 1 }], validation: [{ n: 2 }] } },
      budgets,
      policy: { train: "viewable", validation: "non_viewable" },
      task
    }))))

  it.effect("a budget for a split the dataset does not have is a ConfigError at start, with the closest name", () =>
    Effect.gen(function*() {
      const error = yield* build([{ datasetId: "qa", split: "valdation", runs: 2 }])
      assert.strictEqual(error._tag, "ConfigError")
      assert.include(error.message, `split "valdation" of dataset "qa"`)
      assert.include(error.message, `Did you mean "validation"?`)
      assert.notInclude(error.message, "\n")
    }))

  it.effect("a budget for a dataset the source does not hold is a ConfigError", () =>
    Effect.gen(function*() {
      const error = yield* build([{ datasetId: "qb", split: "train", runs: 2 }])
      assert.strictEqual(error._tag, "ConfigError")
      assert.include(error.message, `dataset "qb"`)
    }))

  it.effect("budgets for existing splits build", () =>
    Effect.gen(function*() {
      const engine = yield* Engine.Engine
      const experiment = yield* engine.evaluate({ datasetId: "qa", split: "validation", candidate: { id: "c" } })
      assert.strictEqual(experiment.metrics.numSamples, 1)
    }).pipe(Effect.provide(Stack.layerMemory({
      datasets: { qa: { train: [{ n: 1 }], validation: [{ n: 2 }] } },
      budgets: [{ datasetId: "qa", split: "validation", runs: 2 }],
      policy: { validation: "viewable" },
      task
    }))))
})

describe("Stack.layerMemory", () => {
  it.effect("assembles a reconciled stack whose task sees the run's candidate", () =>
    Effect.gen(function*() {
      const engine = yield* Engine.Engine
      const left = yield* engine.evaluate({ datasetId: "d", split: "dev", candidate: { id: "left" } })
      const right = yield* engine.evaluate({ datasetId: "d", split: "dev", candidate: { id: "right" } })
      assert.deepStrictEqual((yield* samplesOf(left)).map((sample) => sample.output), [
        "left:0",
        "left:1",
        "left:2",
        "left:3",
        "left:4"
      ])
      assert.strictEqual((yield* samplesOf(right))[0]!.output, "right:0")
      // "dev" had no tier: reconciliation made it non_viewable
      const view = yield* View.experiment(left)
      assert.strictEqual(view._tag, "non_viewable")
    }).pipe(
      Effect.provide(
        Stack.layerMemory({
          datasets: { d: { dev: [0, 1, 2, 3, 4].map((n) => ({ n })) } },
          budgets: [{ datasetId: "d", split: "dev", runs: 2 }],
          policy: {},
          task: Task.make<{ n: number }, string>({
            name: "echo",
            infer: (row, run) => `${run.candidate.id}:${row.n}`,
            score: () => 1
          })
        })
      )
    ))
})

describe("Stack.closestName", () => {
  it("names the known name a typo was meant to be, and none when every known name is too far", () => {
    assert.strictEqual(Stack.closestName("validaton", ["train", "validation"]), "validation")
    assert.strictEqual(Stack.closestName("tran", ["train", "validation"]), "train")
    assert.isUndefined(Stack.closestName("secret", ["train", "validation"]))
  })

  it("compares regardless of case unless told otherwise", () => {
    assert.strictEqual(Stack.closestName("SQLite", ["sqlite", "memory"]), "sqlite")
    assert.isUndefined(Stack.closestName("SQLite", ["sqlite", "memory"], { ignoreCase: false }))
    assert.strictEqual(Stack.closestName("Budgets", ["budgets", "policy"], { ignoreCase: false }), "budgets")
  })
})
