/**
 * The opt-in levers of the Harbor strategy, with the fake harbor: infra-retry rounds, transcripts as
 * feedback, and the detail of attempts.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { type Collation, HarborConfig, HarborTranscript } from "@holdout/strategy-harbor"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync
} from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { plan, produce, sampleOf, withStack } from "./runs.js"
import { type FakeAttempt, includes, invocations, makeFixture, removeFixtures, type StackOptions } from "./support.js"

afterAll(() => removeFixtures())

const rateLimited: FakeAttempt = { exception: "RateLimitError", message: "429 from the model API" }
const solved: FakeAttempt = { rewards: { reward: 1 } }
const runDir = (root: string, runId = "run-1") => join(root, "holdout", "runs", runId)
const argOf = (argv: ReadonlyArray<string>, flag: string) => argv[argv.indexOf(flag) + 1]

describe("HarborConfig — the levers", () => {
  it.effect("are off by default, and decoded strictly", () =>
    Effect.gen(function*() {
      const config = yield* HarborConfig.decode({ taskSource: "t", agent: "a:A" })
      assert.deepInclude(config, {
        infraRetryRounds: 0,
        infraRetryDelaySeconds: 30,
        feedbackTranscripts: false,
        feedbackMaxBytes: 3000,
        exposeAttemptDetail: false
      })
      for (
        const [field, value] of [
          ["infraRetryRounds", -1],
          ["infraRetryRounds", 1.5],
          ["infraRetryDelaySeconds", -1],
          ["feedbackTranscripts", "yes"],
          ["feedbackMaxBytes", 1.5],
          ["exposeAttemptDetail", 1],
          ["infraRetryRound", 1]
        ] as const
      ) {
        const error = yield* Effect.flip(HarborConfig.decode({ taskSource: "t", agent: "a:A", [field]: value }))
        assert.strictEqual(error._tag, "ConfigError")
        assert.include(error.message, `"${field}"`)
        assert.notInclude(error.message, "\n")
      }
    }))
})

describe("HarborStrategy — infra-retry rounds", () => {
  it.live("a sample whose every attempt died of an [infra] failure is run again, alone, into a sibling directory", () => {
    const fixture = makeFixture([
      { dir: "flaky", rounds: [[rateLimited], [solved]] },
      { dir: "steady", attempts: [{ rewards: { reward: 0.5 } }] }
    ])
    const options: StackOptions = {
      partition: { train: ["flaky", "steady"] },
      config: { infraRetryRounds: 2, infraRetryDelaySeconds: 0 }
    }
    return withStack(
      fixture,
      options,
      Effect.gen(function*() {
        const samples = yield* produce(plan([0, 1]))
        const calls = invocations(fixture)
        assert.strictEqual(calls.length, 2, "one main run and one retry round; the second round has nothing to do")
        assert.deepStrictEqual(includes(calls[1]!), ["flaky"])
        const retryDir = join(runDir(fixture.root), "jobs-infra-retry-1")
        assert.strictEqual(argOf(calls[1]!.argv, "--jobs-dir"), retryDir)
        assert.strictEqual(argOf(calls[1]!.argv, "--job-name"), "infra-retry-1")
        assert.isTrue(existsSync(join(runDir(fixture.root), "infra-retry-1.log")))
        // the run's own jobs directory (which a resume pools) holds the main run only
        assert.deepStrictEqual(readdirSync(join(runDir(fixture.root), "jobs")), ["holdout-1"])

        const flaky = sampleOf(samples, 0)
        assert.strictEqual(flaky.score, 1)
        assert.isUndefined(flaky.error)
        assert.deepInclude(flaky.output as object, {
          infraRetry: { recoveredRound: 1, discardedRounds: [["RateLimitError[infra] x1"]] }
        })
        const steady = sampleOf(samples, 1)
        assert.strictEqual(steady.score, 0.5)
        assert.notProperty(steady.output as object, "infraRetry")
      })
    )
  })

  it.live("a round without a trial keeps the error; rounds stop at the limit; an unrecovered sample is not stamped", () => {
    const fixture = makeFixture([
      { dir: "late", rounds: [[rateLimited], [{ noResult: true }], [solved]] },
      { dir: "down", attempts: [rateLimited] }
    ])
    const options: StackOptions = {
      partition: { train: ["late", "down"] },
      config: { infraRetryRounds: 2, infraRetryDelaySeconds: 0 }
    }
    return withStack(
      fixture,
      options,
      Effect.gen(function*() {
        const samples = yield* produce(plan([0, 1]))
        const calls = invocations(fixture)
        assert.strictEqual(calls.length, 3)
        assert.deepStrictEqual(calls.slice(1).map(includes), [["late", "down"], ["late", "down"]])
        assert.deepStrictEqual(
          calls.slice(1).map((call) => argOf(call.argv, "--jobs-dir")),
          [1, 2].map((k) => join(runDir(fixture.root), `jobs-infra-retry-${k}`))
        )
        // round 1 left no trial for "late": nothing was discarded then
        const late = sampleOf(samples, 0)
        assert.strictEqual(late.score, 1)
        assert.deepInclude(late.output as object, {
          infraRetry: { recoveredRound: 2, discardedRounds: [["RateLimitError[infra] x1"]] }
        })
        const down = sampleOf(samples, 1)
        assert.isUndefined(down.score)
        assert.include(down.error, "RateLimitError[infra] x1")
        assert.notProperty(down.output as object, "infraRetry")
      })
    )
  })

  it.live("key-budget deaths, crashes of the candidate and mixed deaths are never retried", () => {
    const fixture = makeFixture([
      {
        dir: "spent",
        attempts: [{ exception: "BadRequestError", message: "litellm: Budget has been exceeded for this key" }]
      },
      { dir: "crashed", attempts: [{ exception: "RuntimeError", message: "segfault" }] },
      { dir: "mixed", attempts: [rateLimited, { exception: "RuntimeError" }] },
      { dir: "zero", attempts: [{ exception: "AgentTimeoutError", rewards: { reward: 0 } }, rateLimited] }
    ])
    const options: StackOptions = {
      partition: { train: ["spent", "crashed", "mixed", "zero"] },
      config: { attempts: 2, infraRetryRounds: 3, infraRetryDelaySeconds: 0 }
    }
    return withStack(
      fixture,
      options,
      Effect.gen(function*() {
        const samples = yield* produce(plan([0, 1, 2, 3]))
        assert.strictEqual(invocations(fixture).length, 1)
        assert.isFalse(existsSync(join(runDir(fixture.root), "jobs-infra-retry-1")))
        assert.include(sampleOf(samples, 0).error, "BadRequestError[infra:llm-key-budget] x2")
        assert.include(sampleOf(samples, 2).error, "RateLimitError[infra] x1, RuntimeError x1")
        // an attempt that scored 0 is a measurement, whatever the other died of
        assert.strictEqual(sampleOf(samples, 3).score, 0)
      })
    )
  })

  it.live("the retry directory counts those already in the run directory; the rounds are off by default", () =>
    Effect.gen(function*() {
      const fixture = makeFixture([{ dir: "flaky", rounds: [[rateLimited], [rateLimited], [rateLimited], [solved]] }])
      const retried: StackOptions = {
        partition: { train: ["flaky"] },
        config: { infraRetryRounds: 1, infraRetryDelaySeconds: 0 }
      }
      const first = yield* withStack(fixture, retried, produce(plan([0])))
      assert.include(sampleOf(first, 0).error, "RateLimitError[infra]")
      // resuming the run runs the errored sample again, then retries it into the next sibling
      const second = yield* withStack(fixture, retried, produce(plan([0])))
      const calls = invocations(fixture)
      assert.deepStrictEqual(
        calls.map((call) => [argOf(call.argv, "--jobs-dir"), argOf(call.argv, "--job-name")]),
        [
          [join(runDir(fixture.root), "jobs"), "holdout-1"],
          [join(runDir(fixture.root), "jobs-infra-retry-1"), "infra-retry-1"],
          [join(runDir(fixture.root), "jobs"), "holdout-2"],
          [join(runDir(fixture.root), "jobs-infra-retry-2"), "infra-retry-2"]
        ]
      )
      // the run's jobs directory pools the attempts of both its runs; the retry rounds are not pooled
      assert.deepInclude(sampleOf(second, 0).output as object, {
        infraRetry: { recoveredRound: 1, discardedRounds: [["RateLimitError[infra] x2"]] }
      })

      // a number already taken (a directory removed in between) is skipped: a round never pools with another
      const gap = makeFixture([{ dir: "flaky", attempts: [rateLimited] }])
      yield* withStack(gap, retried, produce(plan([0])))
      renameSync(join(runDir(gap.root), "jobs-infra-retry-1"), join(runDir(gap.root), "jobs-infra-retry-2"))
      yield* withStack(gap, retried, produce(plan([0])))
      assert.strictEqual(
        argOf(invocations(gap).at(-1)!.argv, "--jobs-dir"),
        join(runDir(gap.root), "jobs-infra-retry-3")
      )

      const off = makeFixture([{ dir: "flaky", rounds: [[rateLimited], [solved]] }])
      const alone = yield* withStack(off, { partition: { train: ["flaky"] } }, produce(plan([0])))
      assert.strictEqual(invocations(off).length, 1)
      assert.include(sampleOf(alone, 0).error, "RateLimitError[infra]")
      assert.deepStrictEqual(readdirSync(runDir(off.root)).filter((entry) => entry.startsWith("jobs")), ["jobs"])
    }))

  it.effect("round n waits n times the delay (TestClock)", () =>
    Effect.gen(function*() {
      const fixture = makeFixture([{ dir: "down", attempts: [rateLimited] }])
      const options: StackOptions = {
        partition: { train: ["down"] },
        config: { infraRetryRounds: 2, infraRetryDelaySeconds: 10 },
        // no progress line comes due on the test clock meanwhile
        progressInterval: "1 hour"
      }
      const realWait = Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 20)))
      /** Waits (in real time) until the strategy sleeps until `millis` on the test clock. */
      const sleepingUntil = (millis: number) =>
        Effect.gen(function*() {
          for (let turn = 0; turn < 500; turn++) {
            if (Chunk.some(yield* TestClock.sleeps(), (deadline) => deadline === millis)) return
            yield* realWait
          }
          assert.fail(`never slept until ${millis}`)
        })
      const fiber = yield* Effect.fork(withStack(fixture, options, produce(plan([0]))))
      yield* sleepingUntil(10_000)
      assert.strictEqual(invocations(fixture).length, 1)
      yield* TestClock.adjust("9 seconds")
      yield* Effect.repeatN(realWait, 5)
      assert.strictEqual(invocations(fixture).length, 1, "round 1 started before its delay")
      yield* TestClock.adjust("1 second")
      // round 2 waits twice the delay after round 1
      yield* sleepingUntil(30_000)
      assert.strictEqual(invocations(fixture).length, 2)
      yield* TestClock.adjust("20 seconds")
      const samples = yield* Fiber.join(fiber)
      assert.strictEqual(invocations(fixture).length, 3)
      assert.include(sampleOf(samples, 0).error, "RateLimitError[infra]")
    }))
})

describe("HarborStrategy — transcripts as feedback", () => {
  const feedbackOn = (partition: ReadonlyArray<string>, config: StackOptions["config"] = {}): StackOptions => ({
    partition: { train: partition },
    config: { feedbackTranscripts: true, ...config }
  })

  it.live("a failed sample gets its pane's end, else its trajectory; a scored sample gets none; off by default", () => {
    const fixture = makeFixture([
      { dir: "pane", attempts: [{ rewards: { reward: 0 }, pane: "PANE-TEXT", trajectory: "TRAJECTORY-TEXT" }] },
      { dir: "trajectory", attempts: [{ rewards: { reward: 0 }, pane: "", trajectory: "TRAJECTORY-ONLY" }] },
      { dir: "passed", attempts: [{ rewards: { reward: 1 }, pane: "PASSED-PANE" }] },
      { dir: "died", attempts: [{ exception: "RuntimeError", pane: "DIED-PANE" }] },
      { dir: "silent", attempts: [{ rewards: { reward: 0 } }] }
    ])
    const names = ["pane", "trajectory", "passed", "died", "silent"]
    return Effect.gen(function*() {
      const samples = yield* withStack(fixture, feedbackOn(names), produce(plan([0, 1, 2, 3, 4])))
      assert.deepStrictEqual(
        [0, 1, 2, 3, 4].map((id) => sampleOf(samples, id).feedback),
        ["PANE-TEXT", "TRAJECTORY-ONLY", undefined, "DIED-PANE", undefined]
      )
      assert.strictEqual(sampleOf(samples, 0).score, 0, "the feedback changes no score")
      const off = yield* withStack(fixture, { partition: { train: names } }, produce(plan([0, 1, 2, 3, 4], "run-2")))
      for (const id of [0, 1, 2, 3, 4]) assert.notProperty(sampleOf(off, id), "feedback")
    })
  })

  it.live("the first failed attempt with a transcript gives it, in the order attempts finished", () =>
    Effect.gen(function*() {
      const failing = makeFixture([{
        dir: "t",
        attempts: [
          { rewards: { reward: 0 } },
          { exception: "RuntimeError", pane: "SECOND-FAILURE" },
          { rewards: { reward: 0 }, pane: "THIRD-FAILURE" }
        ]
      }])
      const samples = yield* withStack(
        failing,
        feedbackOn(["t"], { attempts: 3, aggregate: "mean" }),
        produce(plan([0]))
      )
      assert.strictEqual(sampleOf(samples, 0).feedback, "SECOND-FAILURE")
      // a mean above 0 is not a failed sample, whatever its failed attempts left
      const partly = makeFixture([{
        dir: "t",
        attempts: [{ rewards: { reward: 1 }, pane: "PASSING" }, { rewards: { reward: 0 }, pane: "FAILING" }]
      }])
      const mean = yield* withStack(partly, feedbackOn(["t"], { attempts: 2, aggregate: "mean" }), produce(plan([0])))
      assert.strictEqual(sampleOf(mean, 0).score, 0.5)
      assert.notProperty(sampleOf(mean, 0), "feedback")
    }))

  it.live("the feedback is the last feedbackMaxBytes bytes, a split character becomes U+FFFD; 0 gives none", () => {
    const fixture = makeFixture([
      { dir: "long", attempts: [{ rewards: { reward: 0 }, pane: "x".repeat(5000) + "END-OF-PANE" }] },
      { dir: "cut", attempts: [{ rewards: { reward: 0 }, pane: "ab☃cd" }] }
    ])
    return Effect.gen(function*() {
      const capped = yield* withStack(
        fixture,
        feedbackOn(["long", "cut"], { feedbackMaxBytes: 16 }),
        produce(plan([0]))
      )
      assert.strictEqual(sampleOf(capped, 0).feedback, "xxxxxEND-OF-PANE")
      // "☃" is 3 bytes (E2 98 83): the last 4 bytes of "ab☃cd" cut it after its first byte
      const cut = yield* withStack(fixture, feedbackOn(["long", "cut"], { feedbackMaxBytes: 4 }), produce(plan([1])))
      assert.strictEqual(sampleOf(cut, 1).feedback, "\uFFFDcd")
      const none = yield* withStack(
        fixture,
        feedbackOn(["long", "cut"], { feedbackMaxBytes: 0 }),
        produce(plan([0, 1], "run-2"))
      )
      for (const id of [0, 1]) assert.notProperty(sampleOf(none, id), "feedback")
      const defaults = yield* withStack(fixture, feedbackOn(["long", "cut"]), produce(plan([0], "run-3")))
      assert.strictEqual(new TextEncoder().encode(sampleOf(defaults, 0).feedback).length, 3000)
    })
  })

  it.live("a transcript reached through a symbolic link, or outside the trial directory, is refused", () => {
    const outside = mkdtempSync(join(tmpdir(), "holdout-outside-"))
    writeFileSync(join(outside, "secret.txt"), "SECRET-OUTSIDE")
    mkdirSync(join(outside, "agent"))
    writeFileSync(join(outside, "agent", "terminus_2.pane"), "SECRET-AGENT-DIR")
    const fixture = makeFixture([
      // a link out of the trial: refused, the trajectory is read instead
      {
        dir: "linked",
        attempts: [{ rewards: { reward: 0 }, paneLink: join(outside, "secret.txt"), trajectory: "OWN-TRAJECTORY" }]
      },
      // a link to a file of the trial itself is refused too
      { dir: "inner", attempts: [{ rewards: { reward: 0 }, paneLink: "../trial.log" }] },
      // agent/ itself leads outside the trial directory
      { dir: "escape", attempts: [{ rewards: { reward: 0 }, agentLink: join(outside, "agent") }] }
    ])
    return withStack(
      fixture,
      { partition: { train: ["linked", "inner", "escape"] }, config: { feedbackTranscripts: true } },
      Effect.gen(function*() {
        const samples = yield* produce(plan([0, 1, 2]))
        assert.strictEqual(sampleOf(samples, 0).feedback, "OWN-TRAJECTORY")
        assert.notProperty(sampleOf(samples, 1), "feedback")
        assert.notProperty(sampleOf(samples, 2), "feedback")
        for (const id of [0, 1, 2]) {
          assert.strictEqual(sampleOf(samples, id).score, 0, "a refused transcript is never an error of the run")
          assert.notInclude(JSON.stringify(sampleOf(samples, id)), "SECRET")
        }
      })
    ).pipe(Effect.ensuring(Effect.sync(() => rmSync(outside, { recursive: true, force: true }))))
  })
})

describe("HarborTranscript", () => {
  it("tail keeps the last bytes as valid UTF-8", () => {
    const bytes = (text: string) => new TextEncoder().encode(text)
    assert.strictEqual(HarborTranscript.tail(bytes("hello"), 3), "llo")
    assert.strictEqual(HarborTranscript.tail(bytes("hello"), 5), "hello")
    assert.strictEqual(HarborTranscript.tail(bytes("hello"), 50), "hello")
    assert.strictEqual(HarborTranscript.tail(bytes("hello"), 0), "")
    assert.strictEqual(HarborTranscript.tail(bytes("hello"), -1), "")
    // "☃" = E2 98 83, "😀" = F0 9F 98 80
    assert.strictEqual(HarborTranscript.tail(bytes("a☃"), 3), "☃")
    assert.strictEqual(HarborTranscript.tail(bytes("a☃"), 2), "\uFFFD")
    assert.strictEqual(HarborTranscript.tail(bytes("a☃"), 1), "\uFFFD")
    assert.strictEqual(HarborTranscript.tail(bytes("😀z"), 4), "\uFFFDz")
    assert.strictEqual(HarborTranscript.tail(bytes("😀z"), 2), "\uFFFDz")
    // a byte-order mark is kept as a character, and invalid bytes elsewhere are replaced
    assert.strictEqual(HarborTranscript.tail(bytes("\uFEFFx"), 4), "\uFEFFx")
    assert.strictEqual(HarborTranscript.tail(new Uint8Array([0x61, 0xff, 0x62]), 3), "a\uFFFDb")
    for (let cap = 1; cap <= 12; cap++) {
      const text = HarborTranscript.tail(bytes("é☃😀é"), cap)
      assert.isFalse(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/.test(text), "no lone surrogate")
      assert.strictEqual(new TextDecoder("utf-8", { fatal: true }).decode(new TextEncoder().encode(text)), text)
    }
  })

  it.effect("read refuses a trial directory that resolves outside the jobs directory", () =>
    Effect.gen(function*() {
      const root = mkdtempSync(join(tmpdir(), "holdout-transcript-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(root, { recursive: true, force: true })))
      const jobs = join(root, "jobs")
      const elsewhere = join(root, "elsewhere", "trial")
      mkdirSync(join(elsewhere, "agent"), { recursive: true })
      writeFileSync(join(elsewhere, "agent", "terminus_2.pane"), "ELSEWHERE")
      mkdirSync(join(jobs, "job", "own", "agent"), { recursive: true })
      writeFileSync(join(jobs, "job", "own", "agent", "terminus_2.pane"), "OWN")
      symlinkSync(elsewhere, join(jobs, "job", "linked"))
      const read = (trialDir: string) => HarborTranscript.read({ trialDir, jobsDir: jobs, maxBytes: 100 })
      assert.deepStrictEqual(yield* read(join(jobs, "job", "own")), Option.some("OWN"))
      assert.deepStrictEqual(yield* read(join(jobs, "job", "linked")), Option.none())
      assert.deepStrictEqual(yield* read(elsewhere), Option.none())
      assert.deepStrictEqual(yield* read(join(jobs, "job", "missing")), Option.none())
    }).pipe(Effect.scoped, Effect.provide(NodeContext.layer)))
})

describe("HarborStrategy — attempt detail", () => {
  const attempts: ReadonlyArray<FakeAttempt> = [
    { rewards: { reward: 1 } },
    { exception: "AgentTimeoutError", rewards: { reward: 0 } },
    { exception: "RuntimeError" }
  ]

  it.live("exposeAttemptDetail adds one { reward, exception } per attempt, in the order they finished", () => {
    const fixture = makeFixture([{ dir: "t", attempts }, { dir: "keyed", attempts: [{ rewards: { a: 1, b: 2 } }] }])
    return Effect.gen(function*() {
      for (const aggregate of ["best", "mean"] as const) {
        const samples = yield* withStack(
          fixture,
          { partition: { train: ["t", "keyed"] }, config: { attempts: 3, aggregate, exposeAttemptDetail: true } },
          produce(plan([0, 1], `run-${aggregate}`))
        )
        const detail = (sampleOf(samples, 0).output as { attempts: ReadonlyArray<Collation.AttemptDetail> }).attempts
        assert.deepStrictEqual(detail, [
          { reward: 1, exception: null },
          { reward: 0, exception: "AgentTimeoutError" },
          { reward: null, exception: "RuntimeError" }
        ])
        assert.strictEqual(sampleOf(samples, 0).score, aggregate === "best" ? 1 : 1 / 3, "the detail changes no score")
        // several unknown reward keys are no reward, as for the score
        const keyed = (sampleOf(samples, 1).output as { attempts: ReadonlyArray<Collation.AttemptDetail> }).attempts
        assert.deepStrictEqual(keyed, [
          { reward: null, exception: null },
          { reward: null, exception: null },
          { reward: null, exception: null }
        ])
      }
      const off = yield* withStack(
        fixture,
        { partition: { train: ["t"] }, config: { attempts: 3 } },
        produce(plan([0], "run-off"))
      )
      assert.notProperty(sampleOf(off, 0).output as object, "attempts")
    })
  })
})
