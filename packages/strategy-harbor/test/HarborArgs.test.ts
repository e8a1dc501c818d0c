import { assert, describe, it } from "@effect/vitest"
import { HarborArgs, HarborConfig } from "@holdout/strategy-harbor"
import * as Effect from "effect/Effect"

const round: HarborArgs.Round = {
  source: { _tag: "Local", path: "/tasks" },
  candidatePath: "/work/candidate",
  includes: ["hello-file", "sum-*"],
  jobsDir: "/runs/r1/jobs",
  jobName: "holdout-3"
}

describe("HarborArgs.runArgs", () => {
  it.effect("the defaults: harbor run -p with every flag in order", () =>
    Effect.gen(function*() {
      const config = yield* HarborConfig.decode({ taskSource: "/tasks", agent: "agent:Agent" })
      assert.deepStrictEqual(HarborArgs.runArgs(config, round), [
        "harbor",
        "run",
        "-p",
        "/tasks",
        "--agent",
        "agent:Agent",
        "-e",
        "docker",
        "-n",
        "8",
        "--n-attempts",
        "1",
        "--max-retries",
        "2",
        "-i",
        "hello-file",
        "-i",
        "sum-*",
        "--jobs-dir",
        "/runs/r1/jobs",
        "--job-name",
        "holdout-3"
      ])
    }))

  it.effect("a registry source, a model, a launcher and extra arguments with {candidatePath}", () =>
    Effect.gen(function*() {
      const config = yield* HarborConfig.decode({
        taskSource: "org/bench@1",
        agent: "pkg.agent:A",
        model: "provider/model",
        environment: "modal",
        attempts: 3,
        maxRetries: 0,
        concurrency: 2,
        launcher: ["uv", "run", "--project", "{candidatePath}", "harbor"],
        extraArgs: ["--agent-kwarg", "repo={candidatePath}/src"]
      })
      const args = HarborArgs.runArgs(config, {
        ...round,
        source: { _tag: "Registry", ref: "org/bench@1" },
        includes: ["org/a"]
      })
      assert.deepStrictEqual(args, [
        "uv",
        "run",
        "--project",
        "/work/candidate",
        "harbor",
        "run",
        "-d",
        "org/bench@1",
        "--agent",
        "pkg.agent:A",
        "-e",
        "modal",
        "-n",
        "2",
        "--n-attempts",
        "3",
        "--max-retries",
        "0",
        "-m",
        "provider/model",
        "-i",
        "org/a",
        "--jobs-dir",
        "/runs/r1/jobs",
        "--job-name",
        "holdout-3",
        "--agent-kwarg",
        "repo=/work/candidate/src"
      ])
    }))
})
