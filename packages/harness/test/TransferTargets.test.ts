/**
 * Transfer targets: a verifier target with a `model` is scored with that model instead of the
 * strategy's (Harbor: the nested run's `-m`; a local task reads it from the candidate's metadata),
 * keyed by its reward key, floored with `targetErrors` when it cannot be scored; an optimizer can
 * never set that model itself.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { assert, describe, it } from "@effect/vitest"
import { Engine, EvalStrategy, Stack, Task } from "@holdout/core"
import { Agent, StackConfig, Verifier } from "@holdout/harness"
import { expectFailure } from "@holdout/testkit"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { root, rows } from "./helpers.js"

const fakeHarbor = join(root, "packages", "strategy-harbor", "testing", "fake-harbor.mjs")

/** A Harbor stack configuration over the fake harbor, in a fresh directory. */
const harborStack = () => {
  const dir = mkdtempSync(join(tmpdir(), "holdout-transfer-"))
  for (const task of ["a", "b"]) {
    mkdirSync(join(dir, "tasks", task), { recursive: true })
    writeFileSync(join(dir, "tasks", task, "task.toml"), "[agent]\ntimeout_sec = 60\n")
  }
  mkdirSync(join(dir, "candidate"))
  const log = join(dir, "harbor.jsonl")
  const file = join(dir, "holdout.yaml")
  writeFileSync(
    file,
    `store: { kind: memory }
datasets: { kind: harbor, datasetId: tb, partition: { train: [a], test: [a, b], lost: [missing] } }
strategy:
  kind: harbor
  dir: harbor
  harbor:
    taskSource: tasks
    agent: "agent:Agent"
    model: base/model
    launcher: [${JSON.stringify(fakeHarbor)}]
    extraArgs: [--fake-log, ${JSON.stringify(log)}]
workspace: { kind: static, path: candidate }
budgets: [{ datasetId: tb, split: train, runs: 5 }]
policy: { train: viewable, test: no_access, lost: no_access }
verifier:
  mode: submit
  targets:
    - { datasetId: tb, split: test, rewardKey: reward }
    - { datasetId: tb, split: test, rewardKey: transfer, model: other/model }
    - { datasetId: tb, split: lost, rewardKey: lost, model: other/model }
`
  )
  return { dir, file, log }
}

const calls = (log: string) =>
  readFileSync(log, "utf8").trim().split("\n").map((line) => {
    const argv = (JSON.parse(line) as { readonly argv: ReadonlyArray<string> }).argv
    const at = (flag: string) => argv.flatMap((arg, index) => arg === flag ? [argv[index + 1]!] : [])
    return { model: at("-m")[0], includes: at("-i") }
  })

describe("Transfer targets", () => {
  it.live("the transfer target's nested run carries -m <its model>, the others the configured model", () => {
    const { dir, file, log } = harborStack()
    return Effect.gen(function*() {
      const loaded = yield* StackConfig.load(file).pipe(Effect.provide(NodeContext.layer))
      assert.strictEqual(loaded.config.verifier?.targets[1]?.model, "other/model")
      const program = Effect.gen(function*() {
        const agent = yield* Agent.make()
        // the optimizer cannot choose the verifier's model for itself
        const forged = yield* expectFailure(agent.evaluate({
          datasetId: "tb",
          split: "train",
          candidate: { id: "cand", metadata: { [EvalStrategy.modelOverrideKey]: "other/model" } }
        }))
        assert.strictEqual(forged._tag, "InvalidRequest")
        assert.include(forged.message, EvalStrategy.modelOverrideKey)
        yield* agent.evaluate({ datasetId: "tb", split: "train", candidate: { id: "cand" } })
        yield* agent.submit({ id: "cand" })
        const verifier = yield* Verifier.Verifier
        return yield* verifier.finalize()
      })
      const answer = yield* program.pipe(
        Effect.provide(
          StackConfig.verifier(loaded).pipe(
            Layer.provideMerge(StackConfig.stack(loaded)),
            Layer.provideMerge(NodeContext.layer)
          )
        )
      )
      assert.deepStrictEqual(answer.rewards, { reward: 1, transfer: 1, lost: 0 })
      assert.deepStrictEqual(Object.keys(answer.targetErrors), ["lost"])
      assert.include(answer.targetErrors["lost"], "reward floored")
      const made = calls(log)
      // the optimizer's evaluation, the plain target, the transfer target, then the lost target twice
      assert.deepStrictEqual(made, [
        { model: "base/model", includes: ["a"] },
        { model: "base/model", includes: ["a", "b"] },
        { model: "other/model", includes: ["a", "b"] },
        { model: "other/model", includes: ["missing"] },
        { model: "other/model", includes: ["missing"] }
      ])
    }).pipe(
      Logger.withMinimumLogLevel(LogLevel.Error),
      Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
    )
  }, 60_000)

  it.effect("a local task sees the transfer target's model in the candidate's metadata, and only there", () => {
    const seen: Array<unknown> = []
    const task = Task.make<{ index: number; answer: number }, number, "answer">({
      name: "model-aware",
      labelFields: ["answer"],
      infer: (row, run) => {
        seen.push(run.candidate.metadata?.[EvalStrategy.modelOverrideKey])
        return row.index * 2
      },
      score: () => 1
    })
    return Effect.gen(function*() {
      const engine = yield* Engine.Engine
      // an operator's candidate carrying the key: the verifier sets (or clears) it for every admin run
      const candidate = { id: "cand", metadata: { [EvalStrategy.modelOverrideKey]: "planted", note: "kept" } }
      yield* engine.evaluate({ datasetId: "ds", split: "train", candidate: { id: "cand" } })
      const verifier = yield* Verifier.make({
        mode: "submit",
        targets: [
          { datasetId: "ds", split: "test", rewardKey: "plain" },
          { datasetId: "ds", split: "test", rewardKey: "transfer", model: "other/model" }
        ]
      })
      yield* verifier.submit(candidate)
      const answer = yield* verifier.finalize()
      assert.deepStrictEqual(answer.rewards, { plain: 1, transfer: 1 })
      // the optimizer's run (none), the plain target (none: the planted key is cleared), the transfer target
      assert.deepStrictEqual(seen, [undefined, undefined, undefined, "other/model", "other/model"])
    }).pipe(
      Effect.provide(Stack.layerMemory({
        budgets: [{ datasetId: "ds", split: "train", runs: 3 }],
        policy: { train: "viewable", test: "no_access" },
        datasets: { ds: { train: rows(1), test: rows(2) } },
        task
      }))
    )
  })
})
