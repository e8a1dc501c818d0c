import { assert, describe, it } from "@effect/vitest"
import { expectFailure } from "@holdout/testkit"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import * as DatasetSource from "../src/DatasetSource.js"
import * as EvalStrategy from "../src/EvalStrategy.js"
import { StoreError } from "../src/HoldoutError.js"
import * as LocalStrategy from "../src/LocalStrategy.js"
import type { SampleRecord } from "../src/Model.js"
import * as RunEvents from "../src/RunEvents.js"
import * as SampleIds from "../src/SampleIds.js"
import * as Task from "../src/Task.js"
import * as TaskStore from "../src/TaskStore.js"

interface Row {
  readonly id: number
  readonly label: number
}

const rowsOf = (count: number): ReadonlyArray<Row> => Array.from({ length: count }, (_, id) => ({ id, label: id % 2 }))

const ids = (count: number) => Array.from({ length: count }, (_, index) => index)

const plan = (sampleIds: ReadonlyArray<number>, runId = "run-1"): EvalStrategy.RunPlan => ({
  runId,
  candidate: { id: "cand-1" },
  datasetId: "numbers",
  split: "train",
  sampleIds: SampleIds.fromIterable(sampleIds)
})

const seed = (sampleId: number, fields: Partial<SampleRecord>): SampleRecord => ({
  ...EvalStrategy.sampleRecord(plan([]), sampleId, {
    input: { id: sampleId },
    output: `seeded-${sampleId}`,
    metrics: {},
    attempts: 1,
    startedAt: 0,
    finishedAt: 0
  }),
  ...fields
})

const samplesOf = (store: TaskStore.TaskStore["Type"], runId = "run-1") =>
  Effect.map(Stream.runCollect(TaskStore.streamSamples(store, runId)), Chunk.toReadonlyArray)

/** The local strategy over `store` and `source` (memory ones by default), with an event hub when asked. */
const strategyLayer = <O, I>(
  task: Task.Task<Row, O, I>,
  options: LocalStrategy.Options,
  services: {
    readonly store?: TaskStore.TaskStore["Type"]
    readonly source?: DatasetSource.DatasetSource["Type"]
    readonly rows?: number
  } = {}
) =>
  LocalStrategy.layer(task, options).pipe(
    Layer.provideMerge(
      Layer.merge(
        Layer.succeed(TaskStore.TaskStore, services.store ?? TaskStore.makeMemory()),
        Layer.succeed(
          DatasetSource.DatasetSource,
          services.source ?? DatasetSource.makeRecords({ numbers: { train: rowsOf(services.rows ?? 12) } })
        )
      )
    )
  )

const produce = (runPlan: EvalStrategy.RunPlan) =>
  Effect.flatMap(EvalStrategy.EvalStrategy, (strategy) => strategy.produce(runPlan))

/** Produces the plan with an event hub and returns the sample events published, in order. */
const producedEvents = (runPlan: EvalStrategy.RunPlan) =>
  Effect.gen(function*() {
    const hub = yield* RunEvents.RunEvents
    const queue = yield* hub.subscribe
    yield* produce(runPlan)
    const events = Chunk.toReadonlyArray(yield* Queue.takeAll(queue))
    const errors = events.flatMap((event) =>
      event._tag === "RunStarted" || event._tag === "RunFinished" ? [] : [event.errors]
    )
    assert.deepStrictEqual(errors, [...errors].sort((a, b) => a - b), "the error count went down")
    return {
      inferred: events.flatMap((event) => event._tag === "SampleInferred" ? [event] : []),
      scored: events.flatMap((event) => event._tag === "SampleScored" ? [event] : [])
    }
  }).pipe(Effect.scoped)

describe("LocalStrategy — run events", () => {
  // sample 2 fails inference, sample 3 fails scoring
  const task = Task.make<Row, number, "label">({
    name: "events",
    labelFields: ["label"],
    infer: (row) => row.id === 2 ? Promise.reject(new Error("no answer")) : Promise.resolve(row.id),
    score: (row: Row) => row.id === 3 ? { evalError: "unjudgeable" } : row.label
  })

  it.effect("a fresh run publishes every sample inferred and scored, with running counts", () =>
    Effect.gen(function*() {
      const { inferred, scored } = yield* producedEvents(plan(ids(6)))
      assert.deepStrictEqual(inferred.map((event) => event.sampleId).sort(), ids(6))
      assert.deepStrictEqual(inferred.map((event) => event.inferred), [1, 2, 3, 4, 5, 6])
      assert.deepStrictEqual(inferred.filter((event) => event.error).map((event) => event.sampleId), [2])
      // an inference error is final: it is published as scored too
      assert.deepStrictEqual(scored.map((event) => event.sampleId).sort(), ids(6))
      assert.deepStrictEqual(scored.map((event) => event.scored), [1, 2, 3, 4, 5, 6])
      assert.deepStrictEqual(scored.filter((event) => event.error).map((event) => event.sampleId).sort(), [2, 3])
      assert.strictEqual(scored.at(-1)!.errors, 2)
      for (const event of [...inferred, ...scored]) assert.strictEqual(event.runId, "run-1")
    }).pipe(Effect.provide(Layer.provideMerge(strategyLayer(task, {}), RunEvents.layer))))

  it.effect("a resume counts what the run held from the start and publishes only what it does", () => {
    const store = TaskStore.makeMemory()
    return Effect.gen(function*() {
      yield* store.putSample(seed(0, { output: 0, score: 1 }))
      yield* store.putSample(seed(1, { output: null, error: "boom", errorTrace: "trace" }))
      yield* store.putSample(seed(4, { output: 4 }))
      const { inferred, scored } = yield* producedEvents(plan(ids(6)))
      // stored: 3 records (one an error), 2 of them final
      assert.deepStrictEqual(inferred.map((event) => event.sampleId).sort(), [2, 3, 5])
      assert.deepStrictEqual(inferred.map((event) => event.inferred), [4, 5, 6])
      const two = inferred.find((event) => event.sampleId === 2)!
      assert.isTrue(two.error)
      assert.isAtLeast(two.errors, 2)
      assert.deepStrictEqual(scored.map((event) => event.sampleId).sort(), [2, 3, 4, 5])
      assert.deepStrictEqual(scored.map((event) => event.scored), [3, 4, 5, 6])
      assert.strictEqual(scored.at(-1)!.errors, 3)
      // a finished run publishes nothing
      const again = yield* producedEvents(plan(ids(6)))
      assert.strictEqual(again.inferred.length + again.scored.length, 0)
    }).pipe(Effect.provide(Layer.provideMerge(strategyLayer(task, {}, { store }), RunEvents.layer)))
  })

  it.live("nothing is published while nobody listens; a late subscriber's counts include what landed before", () => {
    const gate = Deferred.unsafeMake<void>(FiberId.none)
    const slow = Task.make<Row, number, "label">({
      name: "late",
      labelFields: ["label"],
      // samples from 3 on wait for the subscriber
      infer: (row) => row.id < 3 ? row.id : Effect.as(Deferred.await(gate), row.id),
      score: (row: Row) => row.label
    })
    return Effect.gen(function*() {
      const hub = yield* RunEvents.RunEvents
      const store = yield* TaskStore.TaskStore
      assert.isFalse(hub.unsafeHasSubscribers())
      const fiber = yield* Effect.fork(produce(plan(ids(6))))
      while ((yield* samplesOf(store)).filter((sample) => sample.score !== undefined).length < 3) {
        yield* Effect.sleep("5 millis")
      }
      const events = yield* Effect.scoped(Effect.gen(function*() {
        const queue = yield* hub.subscribe
        assert.isTrue(hub.unsafeHasSubscribers())
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(fiber)
        return Chunk.toReadonlyArray(yield* Queue.takeAll(queue))
      }))
      assert.isFalse(hub.unsafeHasSubscribers(), "a closed subscription still counts")
      const scored = events.flatMap((event) => event._tag === "SampleScored" ? [event] : [])
      assert.deepStrictEqual(scored.map((event) => event.sampleId).sort(), [3, 4, 5])
      assert.deepStrictEqual(scored.map((event) => event.scored), [4, 5, 6])
    }).pipe(Effect.provide(Layer.provideMerge(strategyLayer(slow, {}), RunEvents.layer)))
  })

  it.effect("without an event hub the strategy publishes nothing and runs as usual", () =>
    Effect.gen(function*() {
      yield* produce(plan(ids(6)))
      const store = yield* TaskStore.TaskStore
      assert.strictEqual((yield* samplesOf(store)).length, 6)
    }).pipe(Effect.provide(strategyLayer(task, {}))))
})

/**
 * A store whose writes wait for a gate: what a durable store's commit looks like to the pipeline.
 * It counts the records written, and the most records waiting at once.
 */
const gatedStore = (gate: Deferred.Deferred<void>) => {
  const memory = TaskStore.makeMemory()
  const state = { calls: 0, pending: 0, maxPending: 0, submitted: 0, committed: 0 }
  const putSamples = (samples: ReadonlyArray<SampleRecord>) =>
    Effect.gen(function*() {
      state.calls++
      state.submitted += samples.length
      state.pending += samples.length
      state.maxPending = Math.max(state.maxPending, state.pending)
      yield* Deferred.await(gate)
      yield* Effect.yieldNow()
      yield* memory.putSamples(samples)
      state.pending -= samples.length
      state.committed += samples.length
    })
  const store: TaskStore.TaskStore["Type"] = {
    ...memory,
    putSample: (sample) => putSamples([sample]),
    putSamples
  }
  return { store, state }
}

describe("LocalStrategy — handing samples to the store", () => {
  const inferred = { count: 0 }
  const task = Task.make<Row, number, "label">({
    name: "handoff",
    labelFields: ["label"],
    infer: (row) => {
      inferred.count++
      return Promise.resolve(row.id)
    },
    score: (row: Row) => Promise.resolve(row.label)
  })

  it.live("a sample leaves its concurrency slot when handed to the store; what waits is written together", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      // the store holds every write until all 12 samples are inferred: with concurrency 2 that
      // needs the slots free while the records wait for the store
      const { state, store } = gatedStore(gate)
      inferred.count = 0
      const opener = yield* Effect.fork(Effect.gen(function*() {
        while (inferred.count < 12) yield* Effect.sleep("2 millis")
        yield* Deferred.succeed(gate, undefined)
      }))
      yield* produce(plan(ids(12))).pipe(
        Effect.provide(strategyLayer(task, { concurrency: 2 }, { store })),
        Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("deadlock: writes held the slots") })
      )
      yield* Fiber.join(opener)
      // produce returned after every write committed; the waiting ones were written in few calls
      assert.strictEqual(state.pending, 0)
      assert.strictEqual(state.committed, state.submitted)
      assert.strictEqual(state.submitted, 24, "each sample's inference record, then its scored one")
      assert.isBelow(state.calls, 12, "records that waited together were not written together")
      assert.strictEqual((yield* samplesOf(store)).filter((sample) => sample.score !== undefined).length, 12)
    }))

  it.live("a put that fails fails produce with its StoreError", () =>
    Effect.gen(function*() {
      const memory = TaskStore.makeMemory()
      const putSample = (sample: SampleRecord) =>
        Effect.zipRight(
          Effect.sleep("1 millis"),
          sample.sampleId === 7 && sample.score !== undefined
            ? Effect.fail(new StoreError({ op: "putSample", message: "disk full at 7" }))
            : memory.putSample(sample)
        )
      const store: TaskStore.TaskStore["Type"] = {
        ...memory,
        putSample,
        putSamples: (samples) => Effect.forEach(samples, putSample, { discard: true })
      }
      const error = yield* expectFailure(
        produce(plan(ids(12))).pipe(Effect.provide(strategyLayer(task, { concurrency: 3 }, { store })))
      )
      assert.strictEqual(error._tag, "StoreError")
      assert.strictEqual(error.message, "disk full at 7")
      assert.isTrue(Option.isSome(yield* memory.getSample("run-1", 7)), "the inference record of 7 was stored")
    }))
})

/** A store and a source that count how the pipeline reads them. */
const countingServices = (size: number) => {
  const memory = TaskStore.makeMemory()
  const reads = { maxLimit: 0, pages: 0, rowCalls: 0, maxRowIds: 0, rowsRead: 0, putsDone: 0, maxAhead: 0 }
  const records = DatasetSource.makeRecords({ numbers: { train: rowsOf(size) } })
  const putSample = (sample: SampleRecord) =>
    Effect.zipRight(
      memory.putSample(sample),
      Effect.sync(() => {
        if (sample.score !== undefined || sample.error !== undefined) reads.putsDone++
      })
    )
  const store: TaskStore.TaskStore["Type"] = {
    ...memory,
    listSamples: (runId, page) => {
      reads.pages++
      reads.maxLimit = Math.max(reads.maxLimit, page.limit)
      return memory.listSamples(runId, page)
    },
    putSample: (sample) => putSample(sample),
    putSamples: (samples) => Effect.forEach(samples, putSample, { discard: true })
  }
  const source: DatasetSource.DatasetSource["Type"] = {
    ...records,
    rows: (datasetId, split, wanted) =>
      Effect.tap(records.rows(datasetId, split, wanted), () =>
        Effect.sync(() => {
          reads.rowCalls++
          reads.maxRowIds = Math.max(reads.maxRowIds, wanted.length)
          reads.rowsRead += wanted.length
          reads.maxAhead = Math.max(reads.maxAhead, reads.rowsRead - reads.putsDone)
        }))
  }
  return { memory, reads, source, store }
}

describe("LocalStrategy — memory flat in the size of the run", () => {
  const task = Task.make<Row, number, "label">({
    name: "flat",
    labelFields: ["label"],
    infer: (row) => row.id,
    score: (row: Row) => row.label
  })

  it.effect("rows are read in chunks as the stages take them, and stored samples in pages", () => {
    const size = 20_000
    const { reads, source, store } = countingServices(size)
    return Effect.gen(function*() {
      yield* produce(plan(ids(size)))
      assert.strictEqual((yield* samplesOf(store)).length, size)
      assert.isAtMost(reads.maxRowIds, 1000, "a call of DatasetSource.rows asked for more than a chunk")
      assert.strictEqual(reads.rowsRead, size)
      // rows read but not yet finished stay within a few chunks, not the run
      assert.isAtMost(reads.maxAhead, 3000, `read ${reads.maxAhead} rows ahead of the finished samples`)
      assert.isAtMost(reads.maxLimit, TaskStore.defaultPageSize, "the pipeline asked the store for more than a page")
    }).pipe(Effect.provide(strategyLayer(task, { concurrency: 8 }, { store, source, rows: size })))
  })

  it.effect("a resume reads stored samples page by page and reads rows only for what is left", () => {
    const size = 3_500
    const { memory, reads, source, store } = countingServices(size)
    return Effect.gen(function*() {
      // inferred only (to score), scored, and nothing (to infer), in runs of ids
      for (let id = 0; id < size; id++) {
        if (id % 3 === 0) yield* memory.putSample(seed(id, { output: id, input: { id } }))
        if (id % 3 === 1) yield* memory.putSample(seed(id, { output: id, score: 1 }))
      }
      yield* produce(plan(ids(size)))
      const samples = yield* samplesOf(store)
      assert.strictEqual(samples.length, size)
      assert.isTrue(samples.every((sample) => sample.score !== undefined))
      assert.strictEqual(reads.rowsRead, size - Math.ceil((size - 1) / 3), "rows of scored samples were read")
      assert.isAtMost(reads.maxLimit, TaskStore.defaultPageSize)
      // a finished run reads the status pages and nothing else
      const before = { ...reads }
      yield* produce(plan(ids(size)))
      assert.strictEqual(reads.rowCalls, before.rowCalls)
      assert.strictEqual(reads.pages - before.pages, Math.ceil((size + 1) / TaskStore.defaultPageSize))
    }).pipe(Effect.provide(strategyLayer(task, { concurrency: 8 }, { store, source, rows: size })))
  })
})

describe("LocalStrategy — return values are decoded", () => {
  const cases: ReadonlyArray<[string, unknown, RegExp]> = [
    ["a non-finite score", Number.NaN, /^score returned NaN, which is not a finite number; it must return a number/],
    [
      "a score that is not a number",
      { score: "x" },
      /^score returned an object whose score is "x", which is not a finite number; it must return a number or \{ score\?/
    ],
    [
      "a metric that is not a number",
      { score: 1, metrics: { acc: "hi" } },
      /whose metrics\.acc is "hi", which is not a finite/
    ],
    ["metrics that are not a record", { metrics: [1] }, /whose metrics is \[1\], which is not a record of numbers/],
    ["feedback that is not a string", { score: 1, feedback: 3 }, /whose feedback is 3, which is not a string/],
    ["an evalError that is not a string", { evalError: 404 }, /whose evalError is 404, which is not a string/],
    ["null", null, /^score returned null; it must return a number or/],
    ["an array", [1], /^score returned an array; it must return/]
  ]
  for (const [name, value, message] of cases) {
    it.effect(`${name} is the sample's evalError`, () =>
      Effect.gen(function*() {
        const store = yield* TaskStore.TaskStore
        yield* produce(plan([0]))
        const [sample] = yield* samplesOf(store)
        assert.match(sample!.evalError ?? "", message)
        assert.strictEqual(sample!.evalTrace, sample!.evalError)
        assert.isUndefined(sample!.score)
      }).pipe(
        Effect.provide(
          strategyLayer(Task.make({ name: "bad-score", infer: (row: Row) => row.id, score: () => value as number }), {})
        )
      ))
  }

  it.effect("accepted shapes keep their fields; unknown keys are ignored", () =>
    Effect.gen(function*() {
      const store = yield* TaskStore.TaskStore
      yield* produce(plan([0, 1]))
      const [zero, one] = yield* samplesOf(store)
      assert.strictEqual(zero!.score, 0.5)
      assert.deepStrictEqual(zero!.metrics, { acc: 1 })
      assert.strictEqual(zero!.feedback, "fine")
      assert.isUndefined(one!.score)
      assert.strictEqual(one!.evalError, "Scoring reported an error without a message.")
    }).pipe(Effect.provide(strategyLayer(
      Task.make({
        name: "good-score",
        infer: (row: Row) => row.id,
        score: (row: Row) =>
          row.id === 0
            ? { score: 0.5, metrics: { acc: 1 }, feedback: "fine", extra: true } as Task.Score
            : { evalError: "" }
      }),
      {}
    ))))

  it.effect("an inference output with an error of the wrong type, and a batch that is not an array", () =>
    Effect.gen(function*() {
      const store = yield* TaskStore.TaskStore
      yield* produce(plan(ids(4)))
      const samples = yield* samplesOf(store)
      for (const sample of samples.slice(0, 2)) {
        assert.match(
          sample.error ?? "",
          /^inferBatch returned a string for a chunk of 2 samples; it must return an array/
        )
      }
      assert.match(
        samples[2]!.error ?? "",
        /^inferBatch returned Task\.output\(\.\.\.\) whose error is 42, which is not a string or an Error\.$/
      )
      assert.strictEqual(samples[3]!.output, 3)
      assert.strictEqual(samples[3]!.score, 1)
    }).pipe(Effect.provide(strategyLayer(
      Task.make({
        name: "bad-output",
        batchSize: 2,
        inferBatch: (batch: ReadonlyArray<Row>) =>
          batch[0]!.id === 0
            ? "oops" as unknown as ReadonlyArray<number>
            : [Task.output(2, { error: 42 as unknown as string }), 3],
        score: () => 1
      }),
      {}
    ))))
})

describe("EvalStrategy helpers", () => {
  it.effect("pendingSampleIds: planned ids without a final record, ascending and once each", () =>
    Effect.gen(function*() {
      const store = TaskStore.makeMemory()
      yield* store.putSample(seed(1, { score: 1 }))
      yield* store.putSample(seed(3, { error: "boom", output: null }))
      yield* store.putSample(seed(9, { score: 1 })) // not planned
      yield* store.putSample({ ...seed(2, { score: 1 }), runId: "run-other" })
      const wanted = plan([5, 3, 1, 2, 5, 0])
      assert.deepStrictEqual(yield* EvalStrategy.pendingSampleIds(store, wanted), [0, 2, 5])
      assert.deepStrictEqual(
        yield* EvalStrategy.pendingSampleIds(store, wanted, { isFinal: (record) => record.error === undefined }),
        [0, 2, 3, 5]
      )
      assert.deepStrictEqual(yield* EvalStrategy.pendingSampleIds(store, plan([])), [])
    }))

  it("sampleRecord takes the run, dataset, split and candidate from the plan", () => {
    const fields = { output: "x", score: 1, metrics: {}, attempts: 2, startedAt: 1, finishedAt: 2 }
    assert.deepStrictEqual(EvalStrategy.sampleRecord(plan([4]), 4, fields), {
      runId: "run-1",
      sampleId: 4,
      datasetId: "numbers",
      split: "train",
      candidateId: "cand-1",
      ...fields
    })
  })
})
