import * as NodeContext from "@effect/platform-node/NodeContext"
import { assert, describe, it } from "@effect/vitest"
import { Engine, TaskStore } from "@holdout/core"
import { StackConfig } from "@holdout/harness"
import { PgStore } from "@holdout/store-pg"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { freshDatabase } from "./support.js"

const fixture = fileURLToPath(new URL("../../harness/test/fixtures/stack", import.meta.url))

const stackOf = (store: string) => {
  const parsed = StackConfig.parse(
    "holdout.yaml",
    `store: ${store}
datasets: { kind: jsonl, dir: ${JSON.stringify(join(fixture, "data"))} }
strategy: { kind: task, module: ${JSON.stringify(join(fixture, "task.ts"))} }
budgets: [{ datasetId: qa, split: train, runs: 5 }]
policy: { train: viewable, validation: non_viewable, test: no_access }`
  )
  assert.isTrue(Either.isRight(parsed), Either.isLeft(parsed) ? parsed.left.message : "")
  return StackConfig.stack({ config: Either.getOrThrow(parsed), baseDir: fixture, file: join(fixture, "holdout.yaml") })
    .pipe(Layer.provide(NodeContext.layer))
}

const environment = (entries: ReadonlyArray<readonly [string, string]>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(entries)))

/** Evaluates once through the stack; the run's id. */
const evaluateOnce = Effect.map(
  Effect.flatMap(
    Engine.Engine,
    (engine) => engine.evaluate({ datasetId: "qa", split: "train", candidate: { id: "c" } })
  ),
  (experiment) => experiment.run.runId
)

const runsIn = (url: string) =>
  Effect.scoped(Effect.flatMap(TaskStore.TaskStore, (store) => store.listRuns())).pipe(
    Effect.provide(PgStore.layer({ url, budgets: [] })),
    Effect.map((runs) => runs.map((run) => run.runId))
  )

describe("StackConfig: store { kind: postgres }", () => {
  it.scopedLive("store.url: the stack's runs and budget are in that database", () =>
    Effect.gen(function*() {
      const url = yield* freshDatabase("stack")
      const runId = yield* Effect.scoped(
        evaluateOnce.pipe(Effect.provide(stackOf(`{ kind: postgres, url: "${url}" }`)))
      )
      assert.deepStrictEqual(yield* runsIn(url), [runId])
    }))

  it.scopedLive("without store.url the URL is HOLDOUT_PG_URL", () =>
    Effect.gen(function*() {
      const url = yield* freshDatabase("stackenv")
      const runId = yield* Effect.scoped(evaluateOnce.pipe(Effect.provide(stackOf("{ kind: postgres }")))).pipe(
        environment([["HOLDOUT_PG_URL", url]])
      )
      assert.deepStrictEqual(yield* runsIn(url), [runId])
    }))

  it.effect("with neither, building the stack is a ConfigError saying to set one", () =>
    Effect.gen(function*() {
      const built = yield* Effect.either(Effect.scoped(Layer.build(stackOf("{ kind: postgres }")))).pipe(
        environment([])
      )
      assert.isTrue(Either.isLeft(built))
      if (Either.isRight(built)) return
      assert.strictEqual(built.left._tag, "ConfigError")
      assert.include(
        built.left.message,
        "set store.url in the configuration or the HOLDOUT_PG_URL environment variable"
      )
      assert.notInclude(built.left.message, "\n")
    }))
})
