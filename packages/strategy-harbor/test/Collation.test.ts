import * as NodeContext from "@effect/platform-node/NodeContext"
import * as FileSystem from "@effect/platform/FileSystem"
import { assert, describe, it } from "@effect/vitest"
import { Collation } from "@holdout/strategy-harbor"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import { fileURLToPath } from "node:url"

// Real `harbor run` job directories (see fixtures/README.md)
const jobsDir = fileURLToPath(new URL("./fixtures/jobs", import.meta.url))

const trial = (taskName: string, fields: Partial<Collation.Trial> = {}): Collation.Trial => ({
  task_name: taskName,
  trial_name: `${taskName}__x`,
  file: `${taskName}/result.json`,
  ...fields
})

describe("Harbor collation over real job directories", () => {
  it.effect("reads every trial, counts the legacy job summaries, and skips nothing valid", () =>
    Effect.gen(function*() {
      const loaded = yield* Collation.load(jobsDir)
      assert.strictEqual(loaded.jobs, 4)
      assert.deepStrictEqual(loaded.invalid, [])
      assert.sameMembers(loaded.trials.map((entry) => entry.task_name), [
        "openclaw-irc-single",
        "hermes-telegram-media-failure",
        "hermes-telegram-mirror-drop",
        "harbor/buffered-log-course-correct"
      ])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.effect("errored trial, multi-key rewards, org/name task names, and a task with no trial", () =>
    Effect.gen(function*() {
      const { trials } = yield* Collation.load(jobsDir)
      const outcomes = Collation.collate(trials, [
        "openclaw-irc-single",
        "hermes-telegram-media-failure",
        "hermes-telegram-mirror-drop",
        "harbor/buffered-log-course-correct",
        "buffered-log-course-correct"
      ], { aggregate: "best" })
      // died in the agent phase: no rewards, labelled by its exception type
      const errored = outcomes.get("openclaw-irc-single")!
      assert.match(errored.error!, /No verifier rewards .*RuntimeError x1/)
      assert.isUndefined(errored.score)
      // several reward keys: "reward" is the score, every key is a metric
      assert.deepStrictEqual(outcomes.get("hermes-telegram-mirror-drop")!.score, 1)
      assert.deepStrictEqual(outcomes.get("hermes-telegram-mirror-drop")!.metrics, {
        reward: 1,
        faithful_communication: 1,
        format_adherence: 0
      })
      assert.strictEqual(outcomes.get("hermes-telegram-media-failure")!.score, 0)
      // the canonical org/name form is the key; the bare directory name finds nothing
      assert.strictEqual(outcomes.get("harbor/buffered-log-course-correct")!.score, 0)
      assert.match(outcomes.get("buffered-log-course-correct")!.error!, /No Harbor trial result/)
    }).pipe(Effect.provide(NodeContext.layer)))

  it.effect("a result file that does not decode is reported, not fatal", () =>
    Effect.scoped(
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* fs.makeTempDirectoryScoped()
        yield* fs.copy(jobsDir, `${dir}/jobs`)
        yield* fs.makeDirectory(`${dir}/jobs/broken/t1`, { recursive: true })
        yield* fs.writeFileString(`${dir}/jobs/broken/t1/result.json`, "{ not json")
        yield* fs.makeDirectory(`${dir}/jobs/broken/t2`, { recursive: true })
        yield* fs.writeFileString(`${dir}/jobs/broken/t2/result.json`, JSON.stringify({ task_name: 7 }))
        const before = (yield* Metric.value(Collation.invalidFiles)).count
        const loaded = yield* Collation.load(`${dir}/jobs`)
        assert.strictEqual(loaded.trials.length, 4)
        assert.strictEqual(loaded.invalid.length, 2)
        assert.strictEqual((yield* Metric.value(Collation.invalidFiles)).count - before, 2, "not counted")
      }).pipe(Effect.provide(NodeContext.layer))
    ))
})

describe("Harbor collation rules", () => {
  it("extracts rewards strictly: the configured key, else pass, reward, the only key; never an average", () => {
    assert.strictEqual(Collation.extractReward({ accuracy: 0.5, reward: 1 }, "accuracy"), 0.5)
    assert.isUndefined(Collation.extractReward({ reward: 1 }, "accuracy"))
    assert.strictEqual(Collation.extractReward({ pass: 1, reward: 0 }), 1)
    assert.strictEqual(Collation.extractReward({ reward: 0.25, other: 1 }), 0.25)
    assert.strictEqual(Collation.extractReward({ only: 0.75 }), 0.75)
    assert.isUndefined(Collation.extractReward({ a: 1, b: 0 }))
    assert.isUndefined(Collation.extractReward(null))
  })

  it("best of attempts prefers clean, then scored, then the higher reward, then the later finish", () => {
    const outcomes = Collation.collate(
      [
        trial("t", { verifier_result: { rewards: { reward: 1 } }, finished_at: "2026-01-01T00:00:00Z" }),
        trial("t", { verifier_result: { rewards: { reward: 0 } }, finished_at: "2026-01-02T00:00:00Z" }),
        trial("t", {
          verifier_result: { rewards: { reward: 1 } },
          exception_info: { exception_type: "AgentTimeoutError" },
          finished_at: "2026-01-03T00:00:00Z"
        })
      ],
      ["t"],
      { aggregate: "best" }
    )
    assert.strictEqual(outcomes.get("t")!.score, 1)
    assert.strictEqual(outcomes.get("t")!.output["trialName"], "t__x")
  })

  it("mean of attempts counts dead attempts as 0 and labels infrastructure failures", () => {
    const outcomes = Collation.collate(
      [
        trial("t", { verifier_result: { rewards: { reward: 1 } } }),
        trial("t", { verifier_result: { rewards: { reward: 0.5 } } }),
        trial("t", { verifier_result: null, exception_info: { exception_type: "RateLimitError" } }),
        trial("t", { verifier_result: null, exception_info: { exception_type: "RuntimeError" } })
      ],
      ["t"],
      { aggregate: "mean" }
    )
    const outcome = outcomes.get("t")!
    assert.strictEqual(outcome.score, 1.5 / 4)
    assert.deepInclude(outcome.metrics, { attempts: 4, scored: 2, dead: 2, deadInfra: 1 })
    assert.deepStrictEqual(outcome.output["attemptScores"], [1, 0.5, 0, 0])
    assert.sameMembers(outcome.output["deadAttempts"] as Array<string>, ["RateLimitError[infra] x1", "RuntimeError x1"])
  })

  it("rewards without a usable metric are an error naming the keys; a key-budget failure is infra", () => {
    const outcomes = Collation.collate([trial("t", { verifier_result: { rewards: { a: 1, b: 0 } } })], ["t"], {
      aggregate: "best"
    })
    assert.match(outcomes.get("t")!.error!, /no usable metric .*a, b/)
    assert.strictEqual(
      Collation.deadLabel({
        task_name: "t",
        exception_info: { exception_type: "BadRequestError", exception_message: "Your budget has been exceeded" }
      }),
      "BadRequestError[infra:llm-key-budget]"
    )
    assert.strictEqual(
      Collation.deadLabel({ task_name: "t", exception_info: { exception_type: "Error[x]" } }),
      "Error(x)"
    )
  })
})

describe("Harbor collation: the verifier's reward files", () => {
  const write = (dir: string, files: Record<string, string>) =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      for (const [name, text] of Object.entries(files)) {
        const file = `${dir}/${name}`
        yield* fs.makeDirectory(file.slice(0, file.lastIndexOf("/")), { recursive: true })
        yield* fs.writeFileString(file, text)
      }
    })
  const result = (taskName: string, fields: Record<string, unknown> = {}) =>
    JSON.stringify({
      task_name: taskName,
      trial_name: `${taskName}__x`,
      verifier_result: null,
      exception_info: null,
      ...fields
    })

  it.scoped("a clean trial without rewards in result.json is read from reward.json, else reward.txt", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      yield* write(dir, {
        "job/json__x/result.json": result("json"),
        "job/json__x/verifier/reward.json": `{"reward": 0.75, "style": 1}`,
        "job/json__x/verifier/reward.txt": "0.1",
        "job/txt__x/result.json": result("txt", { verifier_result: { rewards: null } }),
        "job/txt__x/verifier/reward.txt": " 0.25\n",
        "job/bad__x/result.json": result("bad"),
        "job/bad__x/verifier/reward.txt": "three quarters",
        "job/dead__x/result.json": result("dead", { exception_info: { exception_type: "VerifierTimeoutError" } }),
        "job/dead__x/verifier/reward.txt": "1",
        "job/recorded__x/result.json": result("recorded", { verifier_result: { rewards: { reward: 0 } } }),
        "job/recorded__x/verifier/reward.txt": "1"
      })
      const loaded = yield* Collation.load(dir)
      const outcomes = Collation.collate(loaded.trials, ["json", "txt", "bad", "dead", "recorded"], {
        aggregate: "best"
      })
      assert.strictEqual(outcomes.get("json")!.score, 0.75)
      assert.deepStrictEqual(outcomes.get("json")!.metrics, { reward: 0.75, style: 1 })
      assert.strictEqual(outcomes.get("txt")!.score, 0.25)
      // an unreadable reward file is reported, and the trial stays without rewards
      assert.include(outcomes.get("bad")!.error, "No verifier rewards")
      assert.deepStrictEqual(loaded.invalid.map((entry) => entry.file), [`${dir}/job/bad__x/verifier/reward.txt`])
      // Harbor's own verdict stands: a dead attempt is not rescued by a file, recorded rewards win
      assert.include(outcomes.get("dead")!.error, "VerifierTimeoutError x1")
      assert.strictEqual(outcomes.get("recorded")!.score, 0)
    }).pipe(Effect.provide(NodeContext.layer)))
})
