import { assert, describe, it } from "@effect/vitest"
import { expectFailure } from "@holdout/testkit"
import * as Chunk from "effect/Chunk"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Supervisor from "effect/Supervisor"
import * as TestClock from "effect/TestClock"
import * as DatasetSource from "../src/DatasetSource.js"
import * as EvalStrategy from "../src/EvalStrategy.js"
import { StoreError } from "../src/HoldoutError.js"
import * as LocalStrategy from "../src/LocalStrategy.js"
import type { SampleRecord } from "../src/Model.js"
import * as SampleIds from "../src/SampleIds.js"
import * as Task from "../src/Task.js"
import * as TaskStore from "../src/TaskStore.js"

interface Row {
  readonly question: string
  readonly answer: string
}

const rows: ReadonlyArray<Row> = Array.from({ length: 12 }, (_, index) => ({
  question: `q${index}`,
  answer: `a${index}`
}))

const records = { qa: { train: rows, words: ["alpha", "beta", "gamma"] } }

const ids = (count: number) => Array.from({ length: count }, (_, index) => index)

const plan = (sampleIds: ReadonlyArray<number>, runId = "run-1", split = "train"): EvalStrategy.RunPlan => ({
  runId,
  candidate: { id: "cand-1" },
  datasetId: "qa",
  split,
  sampleIds: SampleIds.fromIterable(sampleIds)
})

const deps = Layer.merge(TaskStore.layerMemory, DatasetSource.layerRecords(records))

/**
 * Runs `body` with the local strategy for `task` and the memory store it writes to; `puts` lists
 * every record the strategy wrote, in order.
 */
const withStrategy = <A, E, R, O, I>(
  task: Task.Task<R, O, I>,
  options: LocalStrategy.Options,
  body: (services: {
    readonly strategy: EvalStrategy.EvalStrategy["Type"]
    readonly store: TaskStore.TaskStore["Type"]
    readonly puts: ReadonlyArray<SampleRecord>
  }) => Effect.Effect<A, E>
) => {
  const puts: Array<SampleRecord> = []
  const memory = TaskStore.makeMemory()
  const putSample = (sample: SampleRecord) =>
    Effect.zipRight(Effect.sync(() => puts.push(sample)), memory.putSample(sample))
  const recording = Layer.succeed(TaskStore.TaskStore, {
    ...memory,
    putSample,
    putSamples: (samples) => Effect.forEach(samples, putSample, { discard: true })
  })
  return Effect.gen(function*() {
    const strategy = yield* EvalStrategy.EvalStrategy
    const store = yield* TaskStore.TaskStore
    return yield* body({ strategy, store, puts })
  }).pipe(
    Effect.provide(
      LocalStrategy.layer(task, options).pipe(
        Layer.provideMerge(Layer.merge(recording, DatasetSource.layerRecords(records)))
      )
    )
  )
}

/** Every stored sample of a run, by ascending id (read as a stream, page by page). */
const samplesOf = (store: TaskStore.TaskStore["Type"], runId: string) =>
  Effect.map(Stream.runCollect(TaskStore.streamSamples(store, runId)), Chunk.toReadonlyArray)

const byId = (a: ReadonlyArray<number | undefined>, b: ReadonlyArray<number | undefined>) => a[0]! - b[0]!

const sampleOf = (store: TaskStore.TaskStore["Type"], sampleId: number, runId = "run-1") =>
  Effect.map(store.getSample(runId, sampleId), Option.getOrThrow)

const seed = (sampleId: number, fields: Partial<SampleRecord>): SampleRecord => ({
  runId: "run-1",
  sampleId,
  datasetId: "qa",
  split: "train",
  candidateId: "cand-1",
  input: { question: `q${sampleId}` },
  output: `seeded-${sampleId}`,
  metrics: {},
  attempts: 1,
  startedAt: 0,
  finishedAt: 0,
  ...fields
})

const exact = (row: Row, output: Task.StoredOutput<string>) => (output.output === `out-${row.question}` ? 1 : 0)

class RateLimited extends Schema.TaggedError<RateLimited>()("RateLimited", { status: Schema.Number }) {}
class Boom extends Schema.TaggedError<Boom>()("Boom", { detail: Schema.String }) {
  override get message() {
    return `boom: ${this.detail}`
  }
}

/**
 * Moves the test clock, then lets real promise callbacks and the fibers they resume run (task
 * functions here return real Promises, which settle outside the test clock's control).
 */
const adjust = (duration: Duration.DurationInput) =>
  Effect.zipRight(
    TestClock.adjust(duration),
    // generous on purpose: on a loaded machine real promise callbacks can take several turns
    Effect.forEach(Array.from({ length: 20 }), () =>
      Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5))), {
      discard: true
    })
  )

describe("LocalStrategy — labels", () => {
  it.effect("inference never sees label fields, the stored input lacks them, scoring sees the full row", () => {
    const inferred: Array<unknown> = []
    const scored: Array<unknown> = []
    const task = Task.make<Row, string, "answer">({
      name: "labels",
      labelFields: ["answer"],
      infer: (row) => {
        inferred.push(row)
        return `out-${row.question}`
      },
      score: (row: Row, output) => {
        scored.push(row)
        return exact(row, output)
      }
    })
    return withStrategy(task, {}, ({ store, strategy }) =>
      Effect.gen(function*() {
        yield* strategy.produce(plan(ids(4)))
        assert.strictEqual(inferred.length, 4)
        for (const row of inferred) {
          assert.isFalse(Object.prototype.hasOwnProperty.call(row, "answer"), "inference saw a label field")
        }
        assert.deepStrictEqual(inferred[0], { question: "q0" })
        assert.deepStrictEqual(rows[0], { question: "q0", answer: "a0" }, "the dataset row was mutated")
        const stored = yield* samplesOf(store, "run-1")
        assert.deepStrictEqual(stored.map((sample) => sample.input), ids(4).map((index) => ({ question: `q${index}` })))
        assert.deepStrictEqual(
          [...scored].sort((a, b) => (a as Row).question.localeCompare((b as Row).question)),
          rows.slice(0, 4)
        )
        assert.deepStrictEqual(stored.map((sample) => sample.score), [1, 1, 1, 1])
      }))
  })

  it.effect("rows that are not plain objects pass to inference unchanged", () => {
    const inferred: Array<unknown> = []
    const task = Task.make({
      name: "words",
      labelFields: ["answer"],
      infer: (row: string) => {
        inferred.push(row)
        return row.toUpperCase()
      },
      score: (row: string, output) => (output.output === row.toUpperCase() ? 1 : 0)
    })
    return withStrategy(task, {}, ({ store, strategy }) =>
      Effect.gen(function*() {
        yield* strategy.produce(plan([0, 2], "run-1", "words"))
        assert.deepStrictEqual(inferred, ["alpha", "gamma"])
        const stored = yield* samplesOf(store, "run-1")
        assert.deepStrictEqual(stored.map((sample) => [sample.input, sample.output, sample.score]), [
          ["alpha", "ALPHA", 1],
          ["gamma", "GAMMA", 1]
        ])
      }))
  })
})

describe("LocalStrategy — records", () => {
  it.effect("leaves exactly one complete record per planned sample and never touches other runs", () => {
    const task = Task.make<Row, string, "answer">({
      name: "records",
      labelFields: ["answer"],
      infer: (row) => Effect.succeed(`out-${row.question}`),
      score: (row: Row, output) => Promise.resolve({ score: exact(row, output), feedback: "ok", metrics: { len: 2 } })
    })
    const other = seed(3, { runId: "run-other", score: 0.5 })
    return withStrategy(task, {}, ({ store, strategy }) =>
      Effect.gen(function*() {
        yield* store.putSample(other)
        yield* TestClock.setTime(1_000)
        yield* strategy.produce(plan([5, 1, 3, 3]))
        const stored = yield* samplesOf(store, "run-1")
        assert.deepStrictEqual(stored.map((sample) => sample.sampleId), [1, 3, 5])
        assert.deepStrictEqual(stored[0], {
          runId: "run-1",
          sampleId: 1,
          datasetId: "qa",
          split: "train",
          candidateId: "cand-1",
          input: { question: "q1" },
          output: "out-q1",
          score: 1,
          feedback: "ok",
          metrics: { len: 2 },
          attempts: 1,
          startedAt: 1_000,
          finishedAt: 1_000
        })
        assert.strictEqual(yield* sampleOf(store, 3, "run-other"), other)
        assert.strictEqual((yield* samplesOf(store, "run-other")).length, 1)
      }))
  })

  it.effect("a sample scored at once is stored once; one scored later is stored inferred, then scored", () => {
    const make = (score: (row: Row, output: Task.StoredOutput<string>) => Task.Result<number>) =>
      Task.make<Row, string, "answer">({
        name: "writes",
        labelFields: ["answer"],
        infer: (row) => Promise.resolve(`out-${row.question}`),
        score
      })
    const expected = (count: number) => ids(count).map((sampleId) => [sampleId, 1])
    return Effect.gen(function*() {
      // scoring answers in the step that stored inference would start: one write a sample, final
      yield* withStrategy(
        make((row, output) => exact(row, output)),
        {},
        ({ puts, store, strategy }) =>
          Effect.gen(function*() {
            yield* strategy.produce(plan(ids(6)))
            assert.deepStrictEqual(puts.map((sample) => [sample.sampleId, sample.score]).sort(byId), expected(6))
            assert.deepStrictEqual((yield* samplesOf(store, "run-1")).map((sample) => sample.output), [
              "out-q0",
              "out-q1",
              "out-q2",
              "out-q3",
              "out-q4",
              "out-q5"
            ])
          })
      )
      // scoring that settles later: the inference record is stored first, as the stage finishes
      yield* withStrategy(
        make((row, output) => Promise.resolve(exact(row, output))),
        {},
        ({ puts, strategy }) =>
          Effect.gen(function*() {
            yield* strategy.produce(plan(ids(6)))
            assert.strictEqual(puts.length, 12)
            for (const sampleId of ids(6)) {
              const writes = puts.filter((sample) => sample.sampleId === sampleId).map((sample) => sample.score)
              assert.deepStrictEqual(writes, [undefined, 1], `sample ${sampleId}`)
            }
          })
      )
    })
  })

  it.effect("an empty plan or a fully done run reads no rows and calls nothing", () => {
    let calls = 0
    const task = Task.make({
      name: "noop",
      infer: () => {
        calls++
        return 1
      },
      score: () => 1
    })
    return withStrategy(task, {}, ({ store, strategy }) =>
      Effect.gen(function*() {
        yield* strategy.produce(plan([]))
        assert.strictEqual((yield* samplesOf(store, "run-1")).length, 0)
        // ids out of range would fail the read: none is read when everything is done
        yield* store.putSample(seed(99, { score: 1 }))
        yield* strategy.produce(plan([99]))
        assert.strictEqual(calls, 0)
      }))
  })
})

describe("LocalStrategy — resume", () => {
  it.effect("skips completed samples, never re-infers an inference error, never re-scores, scores the inferred", () => {
    const inferCalls: Array<number> = []
    const scoreCalls: Array<[number, unknown]> = []
    const task = Task.make<Row, string, "answer">({
      name: "resume",
      labelFields: ["answer"],
      infer: (row) => {
        inferCalls.push(Number(row.question.slice(1)))
        return `out-${row.question}`
      },
      score: (row: Row, output) => {
        scoreCalls.push([Number(row.question.slice(1)), output.output])
        return 1
      }
    })
    const scored = seed(0, { score: 0.25 })
    const inferenceError = seed(1, { output: null, error: "boom", errorTrace: "trace" })
    const evalError = seed(2, { evalError: "judge down", evalTrace: "trace" })
    const inferredOnly = seed(3, {})
    return withStrategy(task, {}, ({ store, strategy }) =>
      Effect.gen(function*() {
        for (const record of [scored, inferenceError, evalError, inferredOnly]) yield* store.putSample(record)
        yield* strategy.produce(plan(ids(6)))
        assert.deepStrictEqual(inferCalls.sort(), [4, 5])
        assert.deepStrictEqual(scoreCalls.sort(), [[3, "seeded-3"], [4, "out-q4"], [5, "out-q5"]])
        assert.strictEqual(yield* sampleOf(store, 0), scored)
        assert.strictEqual(yield* sampleOf(store, 1), inferenceError)
        assert.strictEqual(yield* sampleOf(store, 2), evalError)
        const resumed = yield* sampleOf(store, 3)
        assert.strictEqual(resumed.score, 1)
        assert.strictEqual(resumed.output, "seeded-3")
        assert.deepStrictEqual(resumed.input, { question: "q3" })

        // a second produce finds everything done
        yield* strategy.produce(plan(ids(6)))
        assert.strictEqual(inferCalls.length, 2)
        assert.strictEqual(scoreCalls.length, 3)
        assert.strictEqual((yield* samplesOf(store, "run-1")).length, 6)
      }))
  })

  it.effect("a run interrupted during inference stops its attempts and resumes with the rest", () => {
    const inferCalls: Array<number> = []
    let interrupted = 0
    const task = Task.make({
      name: "interrupt",
      infer: (row: Row) => {
        const index = Number(row.question.slice(1))
        inferCalls.push(index)
        return index < 2
          ? Effect.succeed(row.question)
          : Effect.onInterrupt(Effect.never, () => Effect.sync(() => interrupted++))
      },
      score: () => 1
    })
    return withStrategy(task, { concurrency: 2, timeout: "1 hour" }, ({ store, strategy }) =>
      Effect.gen(function*() {
        const fiber = yield* Effect.fork(strategy.produce(plan(ids(4))))
        yield* adjust("1 second")
        yield* Fiber.interrupt(fiber)
        for (let turn = 0; turn < 100 && interrupted < 2; turn++) yield* Effect.yieldNow()
        assert.strictEqual(interrupted, 2, "the in-flight attempts were not interrupted with the run")
        const afterCrash = yield* samplesOf(store, "run-1")
        assert.deepStrictEqual(afterCrash.map((sample) => sample.sampleId), [0, 1])
        assert.deepStrictEqual(inferCalls, [0, 1, 2, 3])
        yield* strategy.produce(plan([0, 1]))
        assert.deepStrictEqual(inferCalls, [0, 1, 2, 3], "persisted samples were inferred again")
      }))
  })
})

describe("LocalStrategy — retries", () => {
  it.effect("retries 429, 503 and rate-limit failures with backoff on the clock; others are final at once", () => {
    const calls = new Map<number, number>()
    const script: Record<number, (attempt: number) => unknown> = {
      0: (attempt) => attempt <= 2 ? Promise.reject({ status: 429 }) : "ok-0",
      1: (attempt) => attempt === 1 ? Promise.reject(new Error("Rate limit exceeded, slow down")) : "ok-1",
      2: () => Promise.reject(new Error("boom")),
      3: (attempt) => attempt === 1 ? Effect.fail(new RateLimited({ status: 503 })) : Effect.succeed("ok-3"),
      4: (attempt) => attempt === 1 ? Promise.reject({ response: { status: 529 } }) : "ok-4",
      5: () => Promise.reject(Object.assign(new Error("server error"), { status: 500 })),
      6: () => "ok-6"
    }
    const task = Task.make({
      name: "retries",
      infer: (row: Row) => {
        const index = Number(row.question.slice(1))
        const attempt = (calls.get(index) ?? 0) + 1
        calls.set(index, attempt)
        return script[index]!(attempt) as Task.Result<string>
      },
      // a scorer that answers later: each inference record is stored before its scored one
      score: () => Promise.resolve(1)
    })
    // concurrency 1: a unit waiting for its retry holds no slot, so the others are not held up
    return withStrategy(task, { concurrency: 1 }, ({ puts, store, strategy }) =>
      Effect.gen(function*() {
        const fiber = yield* Effect.fork(strategy.produce(plan(ids(7))))
        yield* adjust("3 seconds") // first backoff is in [3.2 s, 4 s]
        assert.deepStrictEqual([...calls.values()], [1, 1, 1, 1, 1, 1, 1])
        const boom = yield* sampleOf(store, 2)
        assert.strictEqual(boom.error, "boom")
        assert.strictEqual(boom.attempts, 1)
        const serverError = yield* sampleOf(store, 5)
        assert.strictEqual(serverError.error, "server error")
        assert.strictEqual(serverError.attempts, 1)
        assert.strictEqual((yield* sampleOf(store, 6)).output, "ok-6")
        assert.isTrue(Option.isNone(yield* store.getSample("run-1", 0)))

        yield* adjust("1 second") // t = 4 s: every first retry is due
        assert.deepStrictEqual([0, 1, 3, 4].map((index) => calls.get(index)), [2, 2, 2, 2])
        for (const index of [1, 3, 4]) {
          const sample = yield* sampleOf(store, index)
          assert.strictEqual(sample.output, `ok-${index}`)
          assert.isUndefined(sample.error)
        }
        // a sample goes on to scoring as soon as it is inferred: its inference record took 2 attempts
        assert.strictEqual(puts.find((sample) => sample.sampleId === 1 && sample.score === undefined)?.attempts, 2)
        assert.strictEqual((yield* sampleOf(store, 1)).score, 1, "not scored as soon as it was inferred")
        assert.isTrue(Option.isNone(yield* store.getSample("run-1", 0)))

        // the first retry of sample 0 ran at some t1 in [3.2 s, 4 s] and its second backoff is in
        // [6.4 s, 8 s], so the third attempt falls in [9.6 s, 12 s]
        yield* adjust("5 seconds") // t = 9 s
        assert.strictEqual(calls.get(0), 2)
        yield* adjust("3 seconds") // t = 12 s
        yield* Fiber.join(fiber)
        assert.strictEqual(calls.get(0), 3)
        const inferred = puts.filter((sample) => sample.score === undefined && sample.error === undefined)
        assert.deepStrictEqual(
          inferred.map((sample) => [sample.sampleId, sample.attempts]).sort((a, b) => a[0]! - b[0]!),
          [[0, 3], [1, 2], [3, 2], [4, 2], [6, 1]]
        )
        const zero = yield* sampleOf(store, 0)
        assert.strictEqual(zero.output, "ok-0")
        assert.strictEqual(zero.attempts, 1, "attempts are those of the last stage: scoring")
        assert.strictEqual(zero.score, 1)
        const final = yield* samplesOf(store, "run-1")
        assert.deepStrictEqual(final.map((sample) => sample.score), [1, 1, undefined, 1, 1, undefined, 1])
        assert.strictEqual(calls.get(2), 1)
        assert.strictEqual(calls.get(5), 1)
      }))
  })

  it.effect("gives up after maxAttempts and keeps the history; a custom isRetryable overrides the default", () => {
    const calls = new Map<number, number>()
    const task = Task.make({
      name: "give-up",
      infer: (row: Row) => {
        const index = Number(row.question.slice(1))
        calls.set(index, (calls.get(index) ?? 0) + 1)
        if (index === 0) return Promise.reject(Object.assign(new Error("Too Many Requests"), { statusCode: 429 }))
        if (index === 1) return Promise.reject(new Error("flaky"))
        return Promise.resolve("fine")
      },
      score: () => 1
    })
    const options: LocalStrategy.Options = {
      retry: {
        maxAttempts: 4,
        baseDelay: "1 second",
        maxDelay: "2 seconds",
        isRetryable: (error) => error instanceof Error && error.message === "flaky"
      }
    }
    return withStrategy(task, options, ({ store, strategy }) =>
      Effect.gen(function*() {
        const fiber = yield* Effect.fork(strategy.produce(plan(ids(3))))
        // waits: [0.8, 1] + [1.6, 2] + [1.6, 2] (capped at maxDelay) <= 5 s
        yield* adjust("5 seconds")
        yield* Fiber.join(fiber)
        const zero = yield* sampleOf(store, 0)
        assert.strictEqual(zero.error, "Too Many Requests", "429 was retried though isRetryable says no")
        assert.strictEqual(zero.attempts, 1)
        const one = yield* sampleOf(store, 1)
        assert.strictEqual(one.error, "flaky")
        assert.strictEqual(one.attempts, 4)
        assert.strictEqual(calls.get(1), 4)
        assert.match(one.errorTrace ?? "", /Earlier attempts[\s\S]*attempt 3: flaky/)
        assert.isUndefined(one.score)
        assert.strictEqual((yield* sampleOf(store, 2)).score, 1)
      }))
  })

  it("the default rule", () => {
    const retryable: ReadonlyArray<unknown> = [
      { status: 429 },
      { statusCode: 503 },
      { response: { status: 529 } },
      { status: "429" },
      new Error("Rate limit reached for requests"),
      new Error("429 Too Many Requests"),
      "rate_limit_error",
      new RateLimited({ status: 429 })
    ]
    const final: ReadonlyArray<unknown> = [
      { status: 500 },
      { response: { status: 400 } },
      new Error("boom"),
      "nope",
      null,
      undefined,
      42
    ]
    for (const error of retryable) assert.isTrue(LocalStrategy.isRetryable(error), String(JSON.stringify(error)))
    for (const error of final) assert.isFalse(LocalStrategy.isRetryable(error), String(JSON.stringify(error)))
  })
})

describe("LocalStrategy — timeout", () => {
  it.effect("a late attempt is abandoned after the timeout, retried, and recorded as an error", () => {
    let calls = 0
    let interrupted = 0
    const task = Task.make({
      name: "timeout",
      infer: (row: Row) => {
        const index = Number(row.question.slice(1))
        if (index === 0) {
          calls++
          return new Promise<string>(() => {})
        }
        if (index === 1) return Effect.onInterrupt(Effect.never, () => Effect.sync(() => interrupted++))
        return "fast"
      },
      score: () => 1
    })
    const options: LocalStrategy.Options = { timeout: "1 second", retry: { maxAttempts: 2, baseDelay: "1 second" } }
    return withStrategy(task, options, ({ store, strategy }) =>
      Effect.gen(function*() {
        const fiber = yield* Effect.fork(strategy.produce(plan(ids(3))))
        yield* adjust("999 millis")
        assert.strictEqual(calls, 1)
        assert.strictEqual(interrupted, 0, "timed out early")
        assert.isTrue(Option.isNone(yield* store.getSample("run-1", 0)))
        assert.strictEqual((yield* sampleOf(store, 2)).output, "fast")
        // deadline 1 s, watchdog slack 10 ms; retry after [0.8 s, 1 s]
        yield* adjust("1011 millis")
        assert.strictEqual(interrupted, 1, "the timed-out Effect was not interrupted")
        assert.strictEqual(calls, 2)
        assert.isTrue(Option.isNone(yield* store.getSample("run-1", 0)))
        yield* adjust("1020 millis")
        yield* Fiber.join(fiber)
        assert.strictEqual(interrupted, 2)
        for (const index of [0, 1]) {
          const sample = yield* sampleOf(store, index)
          assert.match(sample.error ?? "", /Timed out: the attempt took longer than the per-attempt timeout of 1s/)
          assert.strictEqual(sample.attempts, 2)
          assert.match(sample.errorTrace ?? "", /TimeoutException[\s\S]*attempt 1: Timed out/)
          assert.isUndefined(sample.score)
        }
      }))
  })

  it.effect("a scoring attempt times out too, as an evalError", () => {
    const task = Task.make({
      name: "slow-judge",
      infer: (row: Row) => row.question,
      score: () => new Promise<number>(() => {})
    })
    const options: LocalStrategy.Options = { timeout: "2 seconds", retry: { maxAttempts: 1 } }
    return withStrategy(task, options, ({ store, strategy }) =>
      Effect.gen(function*() {
        const fiber = yield* Effect.fork(strategy.produce(plan([0])))
        yield* adjust("3 seconds")
        yield* Fiber.join(fiber)
        const sample = yield* sampleOf(store, 0)
        assert.strictEqual(sample.output, "q0")
        assert.isUndefined(sample.error)
        assert.match(sample.evalError ?? "", /Timed out/)
        assert.strictEqual(sample.attempts, 1)
      }))
  })
})

describe("LocalStrategy — concurrency", () => {
  it.live("never runs more units at once than the limit (Promises and Effects)", () => {
    let inFlight = 0
    let maxInferring = 0
    let maxScoring = 0
    const pause = () => new Promise<void>((resolve) => setTimeout(resolve, 1))
    const task = Task.make({
      name: "concurrency",
      infer: async (row: Row) => {
        inFlight++
        maxInferring = Math.max(maxInferring, inFlight)
        await pause()
        inFlight--
        return row.question
      },
      score: () =>
        Effect.gen(function*() {
          inFlight++
          maxScoring = Math.max(maxScoring, inFlight)
          yield* Effect.promise(pause)
          inFlight--
          return 1
        })
    })
    return withStrategy(task, { concurrency: 3 }, ({ store, strategy }) =>
      Effect.gen(function*() {
        yield* strategy.produce(plan(ids(12)))
        assert.strictEqual(maxInferring, 3)
        assert.strictEqual(maxScoring, 3)
        assert.strictEqual((yield* samplesOf(store, "run-1")).filter((sample) => sample.score === 1).length, 12)
      }))
  })
})

/** Counts the fibers started under it. */
class FibersStarted extends Supervisor.AbstractSupervisor<number> {
  started = 0
  get value() {
    return Effect.sync(() => this.started)
  }
  override onStart() {
    this.started++
  }
}

describe("LocalStrategy — workers", () => {
  /** The fibers started to produce the first `count` samples with `task`, at concurrency 4. */
  const fibersFor = (task: Task.Task<Row, string, Row>, count: number, runId: string) =>
    withStrategy(task, { concurrency: 4 }, ({ store, strategy }) =>
      Effect.gen(function*() {
        const fibers = new FibersStarted()
        yield* Effect.supervised(strategy.produce(plan(ids(count), runId)), fibers)
        assert.strictEqual((yield* samplesOf(store, runId)).filter((sample) => sample.score === 1).length, count)
        return fibers.started
      }))

  it.effect("a task that answers at once starts no fiber per sample: as many for 12 samples as for 2", () =>
    Effect.gen(function*() {
      const task = Task.make({ name: "at-once", infer: (row: Row) => row.question, score: () => 1 })
      const few = yield* fibersFor(task, 2, "few")
      const many = yield* fibersFor(task, 12, "many")
      assert.strictEqual(many, few)
    }))

  it.live("a task that answers later gets workers for the samples ready meanwhile", () =>
    Effect.gen(function*() {
      const task = Task.make({
        name: "later",
        infer: (row: Row) => new Promise<string>((resolve) => setTimeout(() => resolve(row.question), 1)),
        score: () => 1
      })
      const few = yield* fibersFor(task, 2, "few")
      const many = yield* fibersFor(task, 12, "many")
      // up to the concurrency (4) at once, each waiting in a worker of its own
      assert.isAtLeast(many - few, 2)
    }))
})

describe("LocalStrategy — batches", () => {
  it.effect("batch functions get chunks of batchSize and the results are paired in order", () => {
    const inferChunks: Array<ReadonlyArray<unknown>> = []
    const scoreChunks: Array<number> = []
    const task = Task.make<Row, string, "answer">({
      name: "batches",
      labelFields: ["answer"],
      batchSize: 5,
      inferBatch: (batch) => {
        inferChunks.push(batch)
        return Promise.resolve(batch.map((row) => `out-${row.question}`))
      },
      scoreBatch: (batch: ReadonlyArray<Row>, outputs) => {
        scoreChunks.push(batch.length)
        return Effect.succeed(batch.map((row, index) => exact(row, outputs[index]!)))
      }
    })
    return withStrategy(task, { batchSize: 4 }, ({ store, strategy }) =>
      Effect.gen(function*() {
        yield* strategy.produce(plan(ids(10)))
        assert.deepStrictEqual(inferChunks.map((chunk) => chunk.length).sort(), [2, 4, 4])
        for (const chunk of inferChunks) {
          for (const row of chunk) assert.isFalse(Object.prototype.hasOwnProperty.call(row, "answer"))
        }
        assert.deepStrictEqual(scoreChunks.sort(), [2, 4, 4])
        const stored = yield* samplesOf(store, "run-1")
        assert.deepStrictEqual(stored.map((sample) => sample.score), ids(10).map(() => 1))
        assert.deepStrictEqual(stored.map((sample) => sample.output), ids(10).map((index) => `out-q${index}`))
      }))
  })

  it.effect("a wrong-length batch result fails that chunk, and only that chunk", () => {
    const scored: Array<string> = []
    const task = Task.make({
      name: "short",
      batchSize: 4,
      inferBatch: (batch: ReadonlyArray<Row>) =>
        batch.some((row) => row.question === "q5")
          ? batch.slice(1).map((row) => row.question)
          : batch.map((row) => row.question),
      scoreBatch: (batch: ReadonlyArray<Row>) => {
        scored.push(...batch.map((row) => row.question))
        return batch.some((row) => row.question === "q9") ? [1, 1, 1] : batch.map(() => 1)
      }
    })
    return withStrategy(task, {}, ({ store, strategy }) =>
      Effect.gen(function*() {
        yield* strategy.produce(plan(ids(12)))
        const stored = yield* samplesOf(store, "run-1")
        assert.strictEqual(stored.length, 12)
        for (const sample of stored) {
          if (sample.sampleId >= 4 && sample.sampleId < 8) {
            assert.match(sample.error ?? "", /inferBatch returned 3 results for 4 samples/)
            assert.strictEqual(sample.output, null)
            assert.isUndefined(sample.score)
          } else if (sample.sampleId >= 8) {
            assert.isUndefined(sample.error)
            assert.match(sample.evalError ?? "", /scoreBatch returned 3 results for 4 samples/)
            assert.isUndefined(sample.score)
          } else {
            assert.isUndefined(sample.error)
            assert.isUndefined(sample.evalError)
            assert.strictEqual(sample.score, 1)
            assert.strictEqual(sample.output, `q${sample.sampleId}`)
          }
        }
        assert.deepStrictEqual(scored.sort(), ["q0", "q1", "q10", "q11", "q2", "q3", "q8", "q9"])
      }))
  })

  it.effect("a failing batch call fails its chunk; a batch element can be a soft error", () => {
    const task = Task.make({
      name: "batch-errors",
      batchSize: 2,
      inferBatch: (batch: ReadonlyArray<Row>) => {
        if (batch[0]!.question === "q0") throw new Error("batch exploded")
        return batch.map((row) => row.question === "q3" ? Task.output(null, { error: "no answer" }) : row.question)
      },
      scoreBatch: (batch: ReadonlyArray<Row>) => batch.map(() => ({ score: 0.5 }))
    })
    return withStrategy(task, {}, ({ store, strategy }) =>
      Effect.gen(function*() {
        yield* strategy.produce(plan(ids(4)))
        const stored = yield* samplesOf(store, "run-1")
        assert.deepStrictEqual(stored.map((sample) => sample.error), [
          "batch exploded",
          "batch exploded",
          undefined,
          "no answer"
        ])
        assert.match(stored[0]!.errorTrace ?? "", /batch exploded/)
        assert.deepStrictEqual(stored.map((sample) => sample.score), [undefined, undefined, 0.5, undefined])
      }))
  })
})

describe("LocalStrategy — task failures are sample errors", () => {
  it.effect("a throw, a rejection, a failed or dying Effect and a returned Error are recorded with a trace", () => {
    const scoredIds: Array<number> = []
    const task = Task.make({
      name: "errors",
      infer: (row: Row): Task.Result<string | Task.Output<string>> => {
        switch (row.question) {
          case "q0":
            throw new Error("thrown-0")
          case "q1":
            return Promise.reject(new Error("rejected-1"))
          case "q2":
            return Effect.fail(new Boom({ detail: "failed-2" }))
          case "q3":
            return Effect.die(new Error("defect-3"))
          case "q4":
            return Task.output("out-4", { trace: { steps: ["a", "b"] } })
          case "q5":
            return Task.output("partial", { error: "soft-5", trace: "t5" })
          case "q6":
            return new Error("returned-6") as unknown as string
          case "q7":
            return Effect.promise(() => Promise.resolve("q7")).pipe(Effect.flatMap(() => Effect.fail("string-7")))
          default:
            return row.question
        }
      },
      score: (row: Row, output) => {
        const index = Number(row.question.slice(1))
        scoredIds.push(index)
        if (index === 4) return { score: output.output === "out-4" ? 1 : 0, evalTrace: output.trace }
        if (index === 8) throw new Error("judge-8")
        if (index === 9) return { evalError: "unjudgeable-9" }
        if (index === 10) return "bad" as unknown as number
        return Effect.fail(new Boom({ detail: "judge-11" }))
      }
    })
    return withStrategy(task, {}, ({ store, strategy }) =>
      Effect.gen(function*() {
        yield* strategy.produce(plan(ids(12)))
        const stored = yield* samplesOf(store, "run-1")
        assert.strictEqual(stored.length, 12)
        const byId = (index: number) => stored[index]!
        const expected: ReadonlyArray<[number, RegExp]> = [
          [0, /thrown-0/],
          [1, /rejected-1/],
          [2, /boom: failed-2/],
          [3, /defect-3/],
          [5, /soft-5/],
          [6, /returned-6/],
          [7, /string-7/]
        ]
        for (const [index, message] of expected) {
          const sample = byId(index)
          assert.match(sample.error ?? "", message, `sample ${index}`)
          assert.isString(sample.errorTrace, `sample ${index} has no trace`)
          assert.isAbove(sample.errorTrace!.length, 0)
          assert.strictEqual(sample.attempts, 1, `sample ${index} was retried`)
          assert.isUndefined(sample.score)
        }
        assert.match(byId(0).errorTrace!, /thrown-0[\s\S]*at /, "the stack of a thrown error is kept")
        assert.match(byId(2).errorTrace!, /Boom/)
        assert.strictEqual(byId(5).output, "partial")
        assert.strictEqual(byId(5).trace, "t5")
        assert.deepStrictEqual(scoredIds.sort((a, b) => a - b), [4, 8, 9, 10, 11], "an inference error was scored")

        assert.deepStrictEqual(byId(4).trace, { steps: ["a", "b"] })
        assert.strictEqual(byId(4).score, 1)
        assert.deepStrictEqual(byId(4).evalTrace, { steps: ["a", "b"] })
        assert.strictEqual(byId(8).evalError, "judge-8")
        assert.match(String(byId(8).evalTrace), /judge-8[\s\S]*at /)
        assert.strictEqual(byId(9).evalError, "unjudgeable-9")
        assert.match(byId(10).evalError ?? "", /score returned a string; it must return a number or \{ score\?/)
        assert.strictEqual(byId(11).evalError, "boom: judge-11")
        for (const index of [8, 9, 10, 11]) {
          assert.isUndefined(byId(index).error)
          assert.isUndefined(byId(index).score)
        }
      }))
  })
})

describe("LocalStrategy — strategy errors", () => {
  const task = Task.make({ name: "ok", infer: (row: Row) => row.question, score: () => 1 })

  it.effect("rows that cannot be read are a StrategyError", () =>
    withStrategy(task, {}, ({ store, strategy }) =>
      Effect.gen(function*() {
        const unknownSplit = yield* expectFailure(strategy.produce(plan([0], "run-1", "nope")))
        assert.strictEqual(unknownSplit._tag, "StrategyError")
        assert.match(unknownSplit.message, /Cannot read the rows of run "run-1".*no split "nope"/)
        const outOfRange = yield* expectFailure(strategy.produce(plan([0, 40])))
        assert.strictEqual(outOfRange._tag, "StrategyError")
        assert.match(outOfRange.message, /40/)
        assert.strictEqual((yield* samplesOf(store, "run-1")).length, 0)
      })))

  it.effect("a store failure is a StoreError", () =>
    Effect.gen(function*() {
      const failing = Layer.succeed(TaskStore.TaskStore, {
        ...TaskStore.makeMemory(),
        putSample: () => Effect.fail(new StoreError({ op: "putSample", message: "disk full" })),
        putSamples: () => Effect.fail(new StoreError({ op: "putSamples", message: "disk full" }))
      })
      const error = yield* expectFailure(
        Effect.flatMap(EvalStrategy.EvalStrategy, (strategy) => strategy.produce(plan(ids(3)))).pipe(
          Effect.provide(
            LocalStrategy.layer(task).pipe(
              Layer.provide(Layer.merge(failing, DatasetSource.layerRecords(records)))
            )
          )
        )
      )
      assert.strictEqual(error._tag, "StoreError")
      assert.strictEqual(error.message, "disk full")
    }))
})

describe("LocalStrategy — configuration", () => {
  const infer = (row: Row) => row.question
  const score = () => 1
  const cases: ReadonlyArray<[string, Task.Task<Row, string, Row>, LocalStrategy.Options, RegExp]> = [
    ["no inference function", Task.make({ name: "t", score }), {}, /has no inference function/],
    [
      "both inference functions",
      Task.make({ name: "t", infer, inferBatch: (batch: ReadonlyArray<Row>) => batch.map(infer), score }),
      {},
      /both infer and inferBatch/
    ],
    ["no scoring function", Task.make({ name: "t", infer }), {}, /has no scoring function/],
    [
      "both scoring functions",
      Task.make({ name: "t", infer, score, scoreBatch: (batch: ReadonlyArray<Row>) => batch.map(score) }),
      {},
      /both score and scoreBatch/
    ],
    ["an empty name", Task.make({ name: "", infer, score }), {}, /non-empty name/],
    [
      "batchSize 0 on the task",
      Task.make({ name: "t", infer, score, batchSize: 0 }),
      {},
      /batchSize must be an integer/
    ],
    ["a fractional batchSize", Task.make({ name: "t", infer, score }), { batchSize: 1.5 }, /batchSize must be an/],
    ["concurrency 0", Task.make({ name: "t", infer, score }), { concurrency: 0 }, /concurrency must be an integer/],
    ["maxAttempts 0", Task.make({ name: "t", infer, score }), { retry: { maxAttempts: 0 } }, /maxAttempts must be/],
    [
      "a timeout that is not a duration",
      Task.make({ name: "t", infer, score }),
      { timeout: "soon" as unknown as Duration.DurationInput },
      /timeout must be a duration/
    ],
    ["a zero timeout", Task.make({ name: "t", infer, score }), { timeout: 0 }, /timeout must be longer than zero/]
  ]
  for (const [name, task, options, message] of cases) {
    it.effect(`${name} is a ConfigError`, () =>
      Effect.gen(function*() {
        const error = yield* expectFailure(Effect.provide(LocalStrategy.make(task, options), deps))
        assert.strictEqual(error._tag, "ConfigError")
        assert.match(error.message, message)
      }))
  }

  it.effect("a value not made by Task.make is a ConfigError", () =>
    Effect.gen(function*() {
      const fake = { name: "x", infer: () => 1, score: () => 1 } as unknown as Task.Task<unknown, unknown, unknown>
      const error = yield* expectFailure(Effect.provide(LocalStrategy.make(fake), deps))
      assert.match(error.message, /Task\.make/)
    }))

  it.effect("the strategy is named local", () =>
    withStrategy(
      Task.make({ name: "t", infer: () => 1, score: () => 1 }),
      {},
      ({ strategy }) => Effect.sync(() => assert.strictEqual(strategy.name, "local"))
    ))
})
