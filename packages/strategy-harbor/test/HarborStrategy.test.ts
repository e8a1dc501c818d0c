import * as NodeContext from "@effect/platform-node/NodeContext"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { RunEvents, TaskStore } from "@holdout/core"
import { TaskStoreFs } from "@holdout/store-fs"
import { expectFailure, strategyConformance } from "@holdout/testkit"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Queue from "effect/Queue"
import { spawn } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { plan, produce, sampleOf, withStack } from "./runs.js"
import {
  datasetId,
  fakeHarbor,
  includes,
  invocations,
  isGone,
  makeFixture,
  removeFixtures,
  stack,
  type StackOptions
} from "./support.js"

const crashChild = fileURLToPath(new URL("./fixtures/crash-child.ts", import.meta.url))
const root = fileURLToPath(new URL("../../..", import.meta.url))

afterAll(() => removeFixtures())

describe("HarborStrategy — one nested run per produce", () => {
  it.live("builds Harbor's command, runs it in the candidate's checkout, and scores by each task's verifier", () => {
    const fixture = makeFixture([
      { dir: "alpha", attempts: [{ rewards: { reward: 1, style: 0.5 } }] },
      { dir: "beta", attempts: [{ rewardTxt: "0.25" }] },
      { dir: "gamma", attempts: [{ rewards: { pass: 0, reward: 1 } }] }
    ])
    const options: StackOptions = {
      partition: { train: ["alpha", "beta", "gamma"] },
      config: { model: "m-1", attempts: 1, concurrency: 3, maxRetries: 0, environment: "modal" }
    }
    return withStack(
      fixture,
      options,
      Effect.gen(function*() {
        const samples = yield* produce(plan([0, 1, 2]))
        const [call] = invocations(fixture)
        assert.isDefined(call)
        assert.strictEqual(call!.cwd, fixture.candidateDir)
        const jobsDir = join(fixture.strategyDir, "runs", "run-1", "jobs")
        assert.deepStrictEqual(call!.argv, [
          "run",
          "-p",
          fixture.tasksDir,
          "--agent",
          "candidate.agent:Agent",
          "-e",
          "modal",
          "-n",
          "3",
          "--n-attempts",
          "1",
          "--max-retries",
          "0",
          "-m",
          "m-1",
          "-i",
          "alpha",
          "-i",
          "beta",
          "-i",
          "gamma",
          "--jobs-dir",
          jobsDir,
          "--job-name",
          "holdout-1",
          "--fake-log",
          fixture.logFile
        ])
        const alpha = sampleOf(samples, 0)
        assert.strictEqual(alpha.score, 1)
        assert.deepStrictEqual(alpha.metrics, { reward: 1, style: 0.5 })
        assert.deepStrictEqual(alpha.input, { include: "alpha", resultKey: "alpha" })
        assert.strictEqual(alpha.candidateId, "cand-1")
        assert.strictEqual(alpha.attempts, 1)
        assert.isUndefined(alpha.error)
        assert.strictEqual(sampleOf(samples, 1).score, 0.25, "reward.txt form")
        assert.strictEqual(sampleOf(samples, 2).score, 0, "`pass` comes before `reward`")
        assert.isTrue(existsSync(join(fixture.strategyDir, "runs", "run-1", "holdout-1.log")))
      })
    )
  })

  it.live("a registry source is passed with -d; the launcher and extra args get the candidate's path", () => {
    const fixture = makeFixture([{ dir: "one" }, { dir: "two" }])
    const options: StackOptions = {
      partition: { train: ["acme/one", "acme/two"] },
      config: {
        // the fake resolves `acme/tasks` to <registry>/tasks, the fixture's task directory
        taskSource: "acme/tasks@2",
        launcher: [fakeHarbor, "--fake-project", "{candidatePath}"],
        extraArgs: ["--fake-registry", "{candidatePath}/.."]
      }
    }
    return withStack(
      fixture,
      options,
      Effect.gen(function*() {
        const samples = yield* produce(plan([1]))
        const [call] = invocations(fixture)
        assert.deepStrictEqual(call!.argv.slice(0, 5), [
          "--fake-project",
          fixture.candidateDir,
          "run",
          "-d",
          "acme/tasks@2"
        ])
        assert.deepStrictEqual(includes(call!), ["acme/two"])
        assert.deepStrictEqual(call!.argv.slice(-4, -2), ["--fake-registry", `${fixture.candidateDir}/..`])
        assert.strictEqual(sampleOf(samples, 1).score, 1)
        assert.deepStrictEqual([...samples.keys()], [1])
      })
    )
  })
})

describe("HarborStrategy — failures of attempts and of the nested run", () => {
  it.live("a dead attempt is an error sample naming its exception type; model-API failures are labelled [infra]", () => {
    const fixture = makeFixture([
      { dir: "ok", attempts: [{ rewards: { reward: 1 } }] },
      { dir: "crashed", attempts: [{ exception: "RuntimeError", message: "Command timed out after 450 seconds" }] },
      { dir: "throttled", attempts: [{ exception: "RateLimitError", message: "429 from the model API" }] },
      { dir: "late", attempts: [{ exception: "AgentTimeoutError", rewards: { reward: 0.5 } }] }
    ])
    const options: StackOptions = { partition: { train: ["ok", "crashed", "throttled", "late"] } }
    return withStack(
      fixture,
      options,
      Effect.gen(function*() {
        const samples = yield* produce(plan([0, 1, 2, 3]))
        assert.strictEqual(sampleOf(samples, 0).score, 1)
        const crashed = sampleOf(samples, 1)
        assert.isUndefined(crashed.score)
        assert.include(crashed.error, `No verifier rewards for task "crashed"`)
        assert.include(crashed.error, "RuntimeError x1")
        assert.include(crashed.errorTrace, "Traceback")
        assert.deepInclude(crashed.output as object, { infra: false, deadAttempts: ["RuntimeError x1"] })
        const throttled = sampleOf(samples, 2)
        assert.include(throttled.error, "RateLimitError[infra] x1")
        assert.deepInclude(throttled.output as object, { infra: true })
        // Harbor still runs the verifier after an agent timeout: the attempt is scored
        const late = sampleOf(samples, 3)
        assert.strictEqual(late.score, 0.5)
        assert.isUndefined(late.error)
      })
    )
  })

  it.live("a timeout terminates the whole process tree and the trials that finished are kept", () => {
    const fixture = makeFixture([{ dir: "a" }, { dir: "b" }, { dir: "c" }, { dir: "d" }])
    const options: StackOptions = {
      partition: { train: ["a", "b", "c", "d"] },
      config: { timeoutSeconds: 2 },
      // after two trials the fake starts a grandchild and hangs, deaf to SIGTERM
      fake: ["--fake-hang-after", "2", "--fake-ignore-term"],
      killGrace: "300 millis"
    }
    return withStack(
      fixture,
      options,
      Effect.gen(function*() {
        const samples = yield* produce(plan([0, 1, 2, 3]))
        const [call] = invocations(fixture)
        const grandchild = Number(
          readFileSync(join(fixture.strategyDir, "runs", "run-1", "jobs", "grandchild.pid"), "utf8")
        )
        assert.isTrue(isGone(call!.pid), "the nested harbor survived its timeout")
        assert.isTrue(isGone(grandchild), "a process the nested harbor started survived")
        assert.deepStrictEqual([0, 1].map((id) => sampleOf(samples, id).score), [1, 1])
        for (const id of [2, 3]) {
          const sample = sampleOf(samples, id)
          assert.isUndefined(sample.score)
          assert.include(sample.error, "No Harbor trial result")
          assert.include(sample.error, "timed out after 2 s")
        }
      })
    )
  })

  it.live("interrupting produce ends the nested run and everything it started; progress is logged meanwhile", () => {
    const fixture = makeFixture([{ dir: "a" }, { dir: "b" }])
    const pidFile = join(fixture.strategyDir, "runs", "run-1", "jobs", "grandchild.pid")
    const lines: Array<string> = []
    const logger = Logger.make(({ message }) => {
      lines.push(Array.isArray(message) ? message.join(" ") : String(message))
    })
    const options: StackOptions = {
      partition: { train: ["a", "b"] },
      fake: ["--fake-hang-after", "1", "--fake-ignore-term"],
      killGrace: "300 millis",
      progressInterval: "100 millis"
    }
    return withStack(
      fixture,
      options,
      Effect.gen(function*() {
        const fiber = yield* Effect.fork(produce(plan([0, 1])))
        for (let turn = 0; turn < 200 && !existsSync(pidFile); turn++) yield* Effect.sleep("50 millis")
        yield* Effect.sleep("300 millis")
        yield* Fiber.interrupt(fiber)
        const [call] = invocations(fixture)
        assert.isTrue(isGone(call!.pid), "the nested harbor outlived the interruption")
        assert.isTrue(isGone(Number(readFileSync(pidFile, "utf8"))), "a process the nested harbor started survived")
        assert.isTrue(
          lines.some((line) => /^Harbor job holdout-1: 1\/2 trial\(s\) finished after \d+ s$/.test(line)),
          `no progress line in:\n${lines.join("\n")}`
        )
      })
    ).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
  })

  it.live("a non-zero exit still collates what finished", () => {
    const fixture = makeFixture([{ dir: "a" }, { dir: "b", attempts: [{ rewardTxt: "0" }] }])
    const options: StackOptions = { partition: { train: ["a", "b"] }, fake: ["--fake-exit", "3"] }
    return withStack(
      fixture,
      options,
      Effect.gen(function*() {
        const samples = yield* produce(plan([0, 1]))
        assert.deepStrictEqual([0, 1].map((id) => sampleOf(samples, id).score), [1, 0])
      })
    )
  })

  it.live("a nested run with no trial at all is a StrategyError, and nothing is scored 0", () => {
    const fixture = makeFixture([{ dir: "a" }])
    // `-i missing` matches no task: Harbor aborts with "No tasks matched the filter(s)."
    const options: StackOptions = { partition: { train: ["missing"] } }
    return withStack(
      fixture,
      options,
      Effect.gen(function*() {
        const error = yield* expectFailure(produce(plan([0])))
        assert.strictEqual(error._tag, "StrategyError")
        assert.include(error.message, "no trial results for 1 task(s)")
        assert.include(error.message, "refusing to score all samples 0")
        assert.include(error.message, "exited with code 1")
        assert.include(error.message, "No tasks matched the filter(s).")
        const store = yield* TaskStore.TaskStore
        assert.deepStrictEqual(yield* store.listSamples("run-1", { limit: 10 }), [])
      })
    )
  })

  it.live("a launcher that cannot start is a StrategyError that says what to install", () => {
    const fixture = makeFixture([{ dir: "a" }])
    const options: StackOptions = { partition: { train: ["a"] }, config: { launcher: ["holdout-no-such-harbor"] } }
    return withStack(
      fixture,
      options,
      Effect.gen(function*() {
        const error = yield* expectFailure(produce(plan([0])))
        assert.strictEqual(error._tag, "StrategyError")
        assert.include(error.message, `Could not start the Harbor launcher "holdout-no-such-harbor"`)
        assert.include(error.message, "Install Harbor")
      })
    )
  })

  it.live("task names that do not match what Harbor records are refused; { include, resultKey } maps them", () => {
    // the tasks declare `[task].name = "org/…"`: -i matches the directory, results carry the name
    const fixture = makeFixture([{ dir: "x", name: "org/x" }, { dir: "y", name: "org/y" }])
    return Effect.gen(function*() {
      const bare = yield* expectFailure(
        withStack(fixture, { partition: { train: ["x", "y"] } }, produce(plan([0, 1])))
      )
      assert.strictEqual(bare._tag, "StrategyError")
      assert.include(bare.message, `requested "x", recorded "org/x"`)
      assert.include(bare.message, "{ include, resultKey }")
      const mapped = yield* withStack(
        fixture,
        { partition: { train: [{ include: "x", resultKey: "org/x" }, { include: "y", resultKey: "org/y" }] } },
        produce(plan([0, 1], "run-2"))
      )
      assert.deepStrictEqual([0, 1].map((id) => sampleOf(mapped, id).score), [1, 1])
    })
  })
})

describe("HarborStrategy — attempts", () => {
  const attempts = [
    { rewards: { reward: 1 } },
    { exception: "RateLimitError" },
    { rewardTxt: "0.5" }
  ] as const
  it.live("best of attempts takes the best clean trial", () => {
    const fixture = makeFixture([{ dir: "t", attempts }])
    const options: StackOptions = { partition: { train: ["t"] }, config: { attempts: 3, aggregate: "best" } }
    return withStack(
      fixture,
      options,
      Effect.gen(function*() {
        const sample = sampleOf(yield* produce(plan([0])), 0)
        assert.strictEqual(sample.score, 1)
        assert.strictEqual(sample.attempts, 3)
        assert.deepInclude(sample.output as object, { deadAttempts: ["RateLimitError[infra] x1"] })
        assert.include(includes(invocations(fixture)[0]!), "t")
        assert.include(invocations(fixture)[0]!.argv.join(" "), "--n-attempts 3")
      })
    )
  })

  it.live("mean of attempts counts a dead attempt as 0", () => {
    const fixture = makeFixture([{ dir: "t", attempts }])
    const options: StackOptions = { partition: { train: ["t"] }, config: { attempts: 3, aggregate: "mean" } }
    return withStack(
      fixture,
      options,
      Effect.gen(function*() {
        const sample = sampleOf(yield* produce(plan([0])), 0)
        assert.strictEqual(sample.score, 0.5)
        assert.deepInclude(sample.metrics, { rewardMean: 0.5, attempts: 3, scored: 2, dead: 1, deadInfra: 1 })
        const output = sample.output as { attemptScores: ReadonlyArray<number>; aggregate: string }
        assert.strictEqual(output.aggregate, "mean")
        assert.sameMembers([...output.attemptScores], [1, 0, 0.5])
      })
    )
  })
})

describe("HarborStrategy — resume", () => {
  it.live("samples with a stored score are skipped; errored samples are run again", () => {
    const fixture = makeFixture([{ dir: "a" }, { dir: "b" }, { dir: "c", attempts: [{ rewardTxt: "0.5" }] }])
    // the first trial of the next nested run leaves no result: sample 0 becomes an error sample
    writeFileSync(join(fixture.stateDir, "fail-next"), "")
    const options: StackOptions = { partition: { train: ["a", "b", "c"] }, fake: ["--fake-state", fixture.stateDir] }
    return withStack(
      fixture,
      options,
      Effect.gen(function*() {
        const first = yield* produce(plan([0, 1, 2]))
        assert.include(sampleOf(first, 0).error, `No Harbor trial result for task "a"`)
        assert.deepStrictEqual([1, 2].map((id) => sampleOf(first, id).score), [1, 0.5])
        const second = yield* produce(plan([0, 1, 2]))
        const calls = invocations(fixture)
        assert.strictEqual(calls.length, 2)
        assert.deepStrictEqual(includes(calls[1]!), ["a"], "only the errored sample ran again")
        assert.include(calls[1]!.argv.join(" "), "--job-name holdout-2")
        assert.strictEqual(sampleOf(second, 0).score, 1)
        assert.isUndefined(sampleOf(second, 0).error)
        for (const id of [1, 2]) assert.deepStrictEqual(sampleOf(second, id), sampleOf(first, id))
        // everything complete: nothing runs
        yield* produce(plan([0, 1, 2]))
        assert.strictEqual(invocations(fixture).length, 2)
      })
    )
  })

  it.live("publishes SampleScored with the run's counts when the stack has an event hub", () => {
    const fixture = makeFixture([{ dir: "a" }, { dir: "b" }, { dir: "c", attempts: [{ rewardTxt: "0.5" }] }])
    writeFileSync(join(fixture.stateDir, "fail-next"), "")
    const options: StackOptions = { partition: { train: ["a", "b", "c"] }, fake: ["--fake-state", fixture.stateDir] }
    return Effect.gen(function*() {
      const hub = yield* RunEvents.RunEvents
      const events = yield* hub.subscribe
      const scored = () =>
        Effect.map(
          Queue.takeAll(events),
          (taken) => Chunk.toReadonlyArray(taken).flatMap((event) => event._tag === "SampleScored" ? [event] : [])
        )
      yield* produce(plan([0, 1, 2]))
      const first = yield* scored()
      assert.deepStrictEqual(first.map((event) => event.sampleId).sort(), [0, 1, 2])
      assert.deepStrictEqual(first.map((event) => [event.scored, event.errors]).at(-1), [3, 1])
      assert.deepStrictEqual(first.map((event) => event.scored), [1, 2, 3])
      assert.isTrue(first.find((event) => event.sampleId === 0)!.error)
      // the resume runs the errored sample again; the two others count as done from the start
      yield* produce(plan([0, 1, 2]))
      const second = yield* scored()
      assert.deepStrictEqual(
        second.map((event) => [event.sampleId, event.error, event.scored, event.errors]),
        [[0, false, 3, 0]]
      )
    }).pipe(Effect.scoped, Effect.provide(Layer.provideMerge(stack(fixture, options), RunEvents.layer)))
  })

  it.live("after the strategy's process is killed mid-run, resume keeps the finished trials and runs the rest", () => {
    const fixture = makeFixture([{ dir: "a" }, { dir: "b" }, { dir: "c" }, { dir: "d" }])
    const jobDir = join(fixture.strategyDir, "runs", "run-crash", "jobs", "holdout-1")
    const finished = () =>
      existsSync(jobDir)
        ? readdirSync(jobDir).filter((entry) => existsSync(join(jobDir, entry, "result.json"))).length
        : 0
    const store = TaskStoreFs.layer({ dir: join(fixture.root, "store") }).pipe(Layer.provide(NodeContext.layer))
    return Effect.gen(function*() {
      const child = spawn("node", ["--import", "tsx", crashChild, fixture.root], {
        cwd: root,
        stdio: ["ignore", "pipe", "pipe"]
      })
      let output = ""
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
      const exited = new Promise<string | null>((resolve) => child.on("exit", (_code, signal) => resolve(signal)))
      // kill the strategy's process while the nested run hangs after its second trial
      for (let turn = 0; turn < 600 && (finished() < 2 || !existsSync(join(jobDir, "..", "grandchild.pid"))); turn++) {
        yield* Effect.sleep("50 millis")
      }
      assert.strictEqual(finished(), 2, `the child never got two trials done:\n${output}`)
      child.kill("SIGKILL")
      assert.strictEqual(yield* Effect.promise(() => exited), "SIGKILL")
      assert.notInclude(output, "produced")
      // the nested run lives in its own process group and outlived the kill: end it (this test started it)
      const orphan = invocations(fixture)[0]!.pid
      const grandchild = Number(readFileSync(join(jobDir, "..", "grandchild.pid"), "utf8"))
      for (const pid of [orphan, grandchild]) {
        try {
          process.kill(pid, "SIGKILL")
        } catch {
          // already gone
        }
      }

      const samples = yield* withStack(
        fixture,
        { partition: { train: ["a", "b", "c", "d"] }, store },
        produce(plan([0, 1, 2, 3], "run-crash"))
      )
      const calls = invocations(fixture)
      assert.strictEqual(calls.length, 2)
      assert.deepStrictEqual(includes(calls[1]!), ["c", "d"], "tasks with finished trials were run again")
      assert.deepStrictEqual([0, 1, 2, 3].map((id) => sampleOf(samples, id).score), [1, 1, 1, 1])
      assert.deepStrictEqual([0, 1, 2, 3].map((id) => sampleOf(samples, id).attempts), [1, 1, 1, 1])
    })
  }, 60_000)
})

// the conformance suite, with the fake harbor (one state directory: `failNextSample` marks it)
const conformanceState = mkdtempSync(join(tmpdir(), "holdout-harbor-state-"))
afterAll(() => rmSync(conformanceState, { recursive: true, force: true }))
strategyConformance("HarborStrategy (fake harbor)", {
  make: () => {
    const names = ["t0", "t1", "t2", "t3", "t4"]
    const fixture = makeFixture(names.map((dir, index) => ({ dir, attempts: [{ rewardTxt: String(index / 4) }] })))
    return stack(fixture, { partition: { train: names }, fake: ["--fake-state", conformanceState] })
  },
  datasetId,
  split: "train",
  size: 5,
  failNextSample: Effect.sync(() => writeFileSync(join(conformanceState, "fail-next"), ""))
})
