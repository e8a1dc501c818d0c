/**
 * The nested harbor is the sidecar's own: launchers that would run a harbor of the candidate's
 * checkout are refused at start, and the process a nested run starts is the trusted harbor, never a
 * `harbor` the checkout holds (the fake harbor logs the path it was started as).
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { EvalStrategy, SampleIds, TaskStore } from "@holdout/core"
import { HarborConfig, HarborLauncher } from "@holdout/strategy-harbor"
import { expectFailure, makeRun } from "@holdout/testkit"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { chmodSync, copyFileSync, mkdirSync } from "node:fs"
import { join } from "node:path"
import {
  datasetId,
  fakeHarbor,
  type Fixture,
  invocations,
  makeFixture,
  removeFixtures,
  stack,
  type StackOptions
} from "./support.js"

afterAll(() => removeFixtures())

/** A copy of the fake harbor at `file` (so that it logs that path as the one it was started as). */
const harborAt = (file: string) => {
  mkdirSync(join(file, ".."), { recursive: true })
  copyFileSync(fakeHarbor, file)
  chmodSync(file, 0o755)
  return file
}

/** Produces sample 0 of a fresh run with the strategy `options` describe, PATH being `path`. */
const produce = (fixture: Fixture, options: StackOptions, path: string) =>
  Effect.gen(function*() {
    const strategy = yield* EvalStrategy.EvalStrategy
    const store = yield* TaskStore.TaskStore
    const candidate = { id: "cand-1" }
    yield* store.createRun(makeRun("run-1", { candidate, datasetId, split: "train", sampleIds: [0] }))
    yield* strategy.produce({
      runId: "run-1",
      candidate,
      datasetId,
      split: "train",
      sampleIds: SampleIds.fromIterable([0])
    })
  }).pipe(
    Effect.provide(stack(fixture, options)),
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["PATH", path]])))
  )

/** Resolves a launcher configuration, PATH being `path`. */
const resolve = (input: Partial<HarborConfig.Input>, path = "/usr/bin:/bin") =>
  Effect.gen(function*() {
    const config = yield* HarborConfig.decode({ taskSource: "tasks", agent: "a:A", ...input })
    return yield* HarborLauncher.resolve(config)
  }).pipe(
    Effect.provide(
      Layer.merge(NodeContext.layer, Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["PATH", path]]))))
    )
  )

describe("HarborLauncher — the nested harbor is the sidecar's own", () => {
  it.effect("a launcher that could run the candidate's harbor is a one-line ConfigError at start", () =>
    Effect.gen(function*() {
      const fixture = makeFixture([])
      const trusted = harborAt(join(fixture.root, "trusted", "harbor"))
      const refused: ReadonlyArray<readonly [Partial<HarborConfig.Input>, string]> = [
        [{ launcher: ["./bin/harbor"] }, "relative path"],
        [{ launcher: ["bin/harbor"] }, "relative path"],
        [{ launcher: ["{candidatePath}/.venv/bin/harbor"] }, "candidate's checkout"],
        [{ launcher: ["uv", "run", "--project", "{candidatePath}", "harbor"] }, "{harbor}"],
        [{ launcher: ["python", "-m", "harbor"] }, "{harbor}"],
        [{ launcher: ["env", "{harbor}x"] }, "one whole argument"],
        [{ trustedHarbor: "bin/harbor" }, "absolute path"],
        [{ trustedHarbor: "{candidatePath}/harbor" }, "absolute path"],
        [{ trustedHarbor: join(fixture.root, "no-such-harbor") }, "is not a file"],
        [{ trustedHarbor: trusted, launcher: [fakeHarbor] }, "does not run trustedHarbor"]
      ]
      for (const [input, says] of refused) {
        const error = yield* expectFailure(resolve(input))
        assert.strictEqual(error._tag, "ConfigError", JSON.stringify(input))
        assert.include(error.message, says, JSON.stringify(input))
        assert.notInclude(error.message, "\n")
      }
      // what stays allowed: the default, a harbor by absolute path (with arguments), a runner given {harbor}
      for (
        const input of [
          {},
          { launcher: [fakeHarbor, "--fake-project", "{candidatePath}"] },
          { trustedHarbor: trusted },
          { trustedHarbor: trusted, launcher: ["env", "PYTHONPATH={candidatePath}", "{harbor}"] }
        ] satisfies ReadonlyArray<Partial<HarborConfig.Input>>
      ) {
        yield* resolve(input)
      }
    }))

  it.live("trustedHarbor is what runs, even with a harbor in the checkout and the checkout on PATH", () => {
    const fixture = makeFixture([{ dir: "a" }])
    const decoy = harborAt(join(fixture.candidateDir, "harbor"))
    const trusted = harborAt(join(fixture.root, "trusted", "harbor"))
    return Effect.gen(function*() {
      yield* produce(
        fixture,
        { partition: { train: ["a"] }, config: { trustedHarbor: trusted, launcher: ["{harbor}"] } },
        `.:${fixture.candidateDir}`
      )
      const [call, ...more] = invocations(fixture)
      assert.strictEqual(call!.script, trusted)
      assert.notStrictEqual(call!.script, decoy)
      assert.strictEqual(call!.cwd, fixture.candidateDir)
      assert.lengthOf(more, 0)
    })
  })

  it.live("without trustedHarbor, harbor is looked up on PATH's absolute directories only, at start", () => {
    const fixture = makeFixture([{ dir: "a" }])
    harborAt(join(fixture.candidateDir, "harbor"))
    const system = harborAt(join(fixture.root, "system-bin", "harbor"))
    return Effect.gen(function*() {
      // "." comes first, and would find the checkout's harbor: relative entries are skipped
      yield* produce(
        fixture,
        { partition: { train: ["a"] }, config: { launcher: ["harbor"] } },
        `.:bin:${join(fixture.root, "system-bin")}`
      )
      assert.deepStrictEqual(invocations(fixture).map((call) => call.script), [system])
    })
  })

  it.live("a trusted harbor that lies inside the candidate's checkout starts nothing: a StrategyError", () => {
    const fixture = makeFixture([{ dir: "a" }])
    const inside = harborAt(join(fixture.candidateDir, "tools", "harbor"))
    return Effect.gen(function*() {
      const error = yield* expectFailure(
        produce(
          fixture,
          { partition: { train: ["a"] }, config: { trustedHarbor: inside, launcher: ["harbor"] } },
          "/usr/bin:/bin"
        )
      )
      assert.strictEqual(error._tag, "StrategyError")
      assert.include(error.message, "inside the candidate's checkout")
      assert.lengthOf(invocations(fixture), 0)
    })
  })
})
