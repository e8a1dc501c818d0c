import { assert, describe, it } from "@effect/vitest"
import { DatasetSource } from "@holdout/core"
import { HarborConfig, HarborDataset } from "@holdout/strategy-harbor"
import { expectFailure } from "@holdout/testkit"
import * as Effect from "effect/Effect"

describe("HarborConfig", () => {
  it.effect("fills the defaults", () =>
    Effect.gen(function*() {
      const config = yield* HarborConfig.decode({ taskSource: "tasks", agent: "agent:Agent" })
      assert.deepInclude(config, {
        environment: "docker",
        attempts: 1,
        maxRetries: 2,
        aggregate: "best",
        launcher: ["harbor"],
        timeoutSeconds: 3600
      })
    }))

  it.effect("an unknown or invalid field is a ConfigError naming it", () =>
    Effect.gen(function*() {
      const unknown = yield* expectFailure(HarborConfig.decode({ taskSource: "t", agent: "a:A", atempts: 2 }))
      assert.strictEqual(unknown._tag, "ConfigError")
      assert.include(unknown.message, "atempts")
      const invalid = yield* expectFailure(HarborConfig.decode({ taskSource: "t", agent: "a:A", aggregate: "max" }))
      assert.include(invalid.message, "aggregate")
      const missing = yield* expectFailure(HarborConfig.decode({ taskSource: "t" }))
      assert.include(missing.message, "agent")
    }))
})

describe("HarborDataset", () => {
  it.effect("rows are the tasks of each split, in list order", () =>
    Effect.gen(function*() {
      const source = yield* DatasetSource.DatasetSource
      assert.deepStrictEqual(yield* source.info("harbor"), { datasetId: "harbor", splits: { train: 2, test: 1 } })
      assert.deepStrictEqual(yield* source.rows("harbor", "train", [1]), [
        { include: "buffered-log-*", resultKey: "harbor/buffered-log-course-correct" }
      ])
      assert.deepStrictEqual(yield* source.rows("harbor", "test", [0]), [{ include: "t3", resultKey: "t3" }])
    }).pipe(Effect.provide(HarborDataset.layer({
      datasetId: "harbor",
      partition: {
        train: ["t1", { include: "buffered-log-*", resultKey: "harbor/buffered-log-course-correct" }],
        test: ["t3"]
      }
    }))))

  it.effect("an empty partition, a malformed task or a repeated task is a ConfigError", () =>
    Effect.gen(function*() {
      for (const partition of [{}, { train: [""] }, { train: ["a", "a"] }, { train: [{ include: "x" }] }]) {
        const error = yield* expectFailure(HarborDataset.normalize(partition as HarborDataset.Partition))
        assert.strictEqual(error._tag, "ConfigError")
      }
    }))
})
