/**
 * The conformance suite every `EvalStrategy` runs: one record per planned sample, resume skips
 * what is complete, no other run is touched, and the progress the store keeps for the run agrees
 * with its samples.
 *
 * @since 0.1.0
 */
import { assert, describe, it } from "@effect/vitest"
import {
  DatasetSource,
  EvalStrategy,
  LocalStrategy,
  Metrics,
  type Model,
  SampleIds,
  Task,
  TaskStore
} from "@holdout/core"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { makeRun, makeSample } from "./TaskStoreConformance.js"

/**
 * What a strategy backend gives the suite: a fresh strategy with its own store, over a dataset
 * split it can evaluate (at least 4 samples) without error samples unless told to fail one.
 *
 * @since 0.1.0
 * @category models
 */
export interface StrategyBackend {
  /** A fresh strategy and the store it writes to; called once per test. */
  readonly make: () => Layer.Layer<EvalStrategy.EvalStrategy | TaskStore.TaskStore, unknown>
  readonly datasetId: string
  readonly split: string
  /** The number of samples of the split (ids `0..size-1`); at least 4. */
  readonly size: number
  /**
   * Optional: makes the next sample the strategy evaluates fail (its task or worker throws, its
   * trial is missing…), once. When given, the suite checks that a failing sample is recorded as an
   * error sample and does not fail the run.
   */
  readonly failNextSample?: Effect.Effect<void>
}

/**
 * Whether a record is an error sample: `error` or `evalError` is set (one rule everywhere).
 */
const isErrorSample = (sample: Model.SampleRecord): boolean =>
  sample.error !== undefined || sample.evalError !== undefined

/** Every stored sample of a run, by ascending id, read as a stream. */
const samplesOf = (store: TaskStore.TaskStore["Type"], runId: string) =>
  Effect.map(Stream.runCollect(TaskStore.streamSamples(store, runId)), Chunk.toReadonlyArray)

/** Checks that the progress the store keeps for a run is that of its stored samples. */
const assertProgressOfSamples = (store: TaskStore.TaskStore["Type"], runId: string) =>
  Effect.gen(function*() {
    const run = yield* store.getRun(runId)
    assert.isTrue(Option.isSome(run), `run ${runId} is not stored`)
    const progress = Option.getOrThrow(run).progress ?? Metrics.emptyProgress
    const expected = (yield* samplesOf(store, runId)).reduce(
      (sum, sample) => Metrics.addToProgress(sum, sample),
      Metrics.emptyProgress
    )
    assert.strictEqual(progress.samples, expected.samples, "progress.samples")
    assert.strictEqual(progress.errors, expected.errors, "progress.errors")
    assert.strictEqual(progress.scored, expected.scored, "progress.scored")
    assert.closeTo(progress.scoreSum, expected.scoreSum, 1e-9, "progress.scoreSum")
    assert.closeTo(progress.scoreSquares, expected.scoreSquares, 1e-9, "progress.scoreSquares")
    assert.deepStrictEqual(Metrics.fromProgress(progress), Metrics.compute(yield* samplesOf(store, runId)))
  })

/**
 * Registers the strategy conformance cases for a backend.
 *
 * @since 0.1.0
 * @category conformance
 */
export const strategyConformance = (name: string, backend: StrategyBackend): void => {
  const candidate = { id: "cand-conformance" }
  const plan = (runId: string, sampleIds: ReadonlyArray<number>): EvalStrategy.RunPlan => ({
    runId,
    candidate,
    datasetId: backend.datasetId,
    split: backend.split,
    sampleIds: SampleIds.fromIterable(sampleIds)
  })
  const all = Array.from({ length: backend.size }, (_, index) => index)
  const createRun = (store: TaskStore.TaskStore["Type"], runPlan: EvalStrategy.RunPlan) =>
    store.createRun(
      makeRun(runPlan.runId, {
        candidate,
        datasetId: runPlan.datasetId,
        split: runPlan.split,
        sampleIds: runPlan.sampleIds
      })
    )
  const withStrategy = <A, E>(
    f: (strategy: EvalStrategy.EvalStrategy["Type"], store: TaskStore.TaskStore["Type"]) => Effect.Effect<A, E>
  ) =>
    Effect.scoped(
      Effect.gen(function*() {
        const strategy = yield* EvalStrategy.EvalStrategy
        const store = yield* TaskStore.TaskStore
        return yield* f(strategy, store)
      }).pipe(Effect.provide(backend.make()))
    )
  const assertOnePerPlanned = (samples: ReadonlyArray<Model.SampleRecord>, runPlan: EvalStrategy.RunPlan) => {
    assert.deepStrictEqual(samples.map((sample) => sample.sampleId), [...runPlan.sampleIds].sort((a, b) => a - b))
    for (const sample of samples) {
      assert.strictEqual(sample.runId, runPlan.runId)
      assert.strictEqual(sample.datasetId, runPlan.datasetId)
      assert.strictEqual(sample.split, runPlan.split)
      assert.strictEqual(sample.candidateId, runPlan.candidate.id)
    }
  }

  describe(`EvalStrategy conformance: ${name}`, () => {
    it.effect("leaves exactly one record per planned sample, for that run", () =>
      withStrategy((strategy, store) =>
        Effect.gen(function*() {
          assert.isString(strategy.name)
          assert.isAbove(strategy.name.length, 0)
          const whole = plan("run-whole", all)
          yield* createRun(store, whole)
          yield* strategy.produce(whole)
          assertOnePerPlanned(yield* samplesOf(store, "run-whole"), whole)
        })
      ))

    it.effect("a subset plan produces only those samples", () =>
      withStrategy((strategy, store) =>
        Effect.gen(function*() {
          const subset = plan("run-subset", [backend.size - 1, 1])
          yield* createRun(store, subset)
          yield* strategy.produce(subset)
          assertOnePerPlanned(yield* samplesOf(store, "run-subset"), subset)
        })
      ))

    it.effect("producing the same plan again leaves every record as it was", () =>
      withStrategy((strategy, store) =>
        Effect.gen(function*() {
          const again = plan("run-again", all)
          yield* createRun(store, again)
          yield* strategy.produce(again)
          const first = yield* samplesOf(store, "run-again")
          yield* strategy.produce(again)
          assert.deepStrictEqual(yield* samplesOf(store, "run-again"), first)
        })
      ))

    it.effect("a record already complete in the run is not produced again", () =>
      withStrategy((strategy, store) =>
        Effect.gen(function*() {
          const resumed = plan("run-resumed", all)
          yield* createRun(store, resumed)
          const seeded = makeSample("run-resumed", 2, {
            datasetId: backend.datasetId,
            split: backend.split,
            candidateId: candidate.id,
            output: "seeded",
            score: 0.123,
            feedback: "from an earlier attempt"
          })
          yield* store.putSample(seeded)
          yield* strategy.produce(resumed)
          const samples = yield* samplesOf(store, "run-resumed")
          assertOnePerPlanned(samples, resumed)
          assert.deepStrictEqual(samples.find((sample) => sample.sampleId === 2), seeded)
        })
      ))

    it.effect("the progress stored with the run agrees with its samples, after a run and after a resume", () =>
      withStrategy((strategy, store) =>
        Effect.gen(function*() {
          const counted = plan("run-counted", all)
          yield* createRun(store, counted)
          // one sample from an earlier attempt, so that the resume starts from a stored record
          yield* store.putSample(
            makeSample("run-counted", 0, {
              datasetId: backend.datasetId,
              split: backend.split,
              candidateId: candidate.id,
              output: "seeded",
              score: 0.5
            })
          )
          yield* strategy.produce(plan("run-counted", all.slice(0, 2)))
          yield* assertProgressOfSamples(store, "run-counted")
          yield* strategy.produce(counted)
          yield* assertProgressOfSamples(store, "run-counted")
          assert.strictEqual((yield* samplesOf(store, "run-counted")).length, backend.size)
        })
      ))

    it.effect("samples of other runs are never touched", () =>
      withStrategy((strategy, store) =>
        Effect.gen(function*() {
          const bystander = plan("run-bystander", [0, 1, 2, 3])
          yield* createRun(store, bystander)
          const theirs = [0, 3].map((id) =>
            makeSample("run-bystander", id, {
              datasetId: backend.datasetId,
              split: backend.split,
              candidateId: candidate.id,
              output: `theirs-${id}`,
              score: 0.5
            })
          )
          for (const sample of theirs) yield* store.putSample(sample)
          const mine = plan("run-mine", all)
          yield* createRun(store, mine)
          yield* strategy.produce(mine)
          assert.deepStrictEqual(yield* samplesOf(store, "run-bystander"), theirs)
          assertOnePerPlanned(yield* samplesOf(store, "run-mine"), mine)
        })
      ))

    it.effect("two runs of one candidate, produced at once, each get their own records", () =>
      withStrategy((strategy, store) =>
        Effect.gen(function*() {
          const left = plan("run-left", all)
          const right = plan("run-right", [0, 2])
          yield* createRun(store, left)
          yield* createRun(store, right)
          yield* Effect.all([strategy.produce(left), strategy.produce(right)], { concurrency: 2 })
          assertOnePerPlanned(yield* samplesOf(store, "run-left"), left)
          assertOnePerPlanned(yield* samplesOf(store, "run-right"), right)
        })
      ))

    const failNextSample = backend.failNextSample
    if (failNextSample !== undefined) {
      it.effect("a failing sample is recorded as an error sample and the rest of the run is produced", () =>
        withStrategy((strategy, store) =>
          Effect.gen(function*() {
            const failing = plan("run-failing", all)
            yield* createRun(store, failing)
            yield* failNextSample
            yield* strategy.produce(failing)
            const samples = yield* samplesOf(store, "run-failing")
            assertOnePerPlanned(samples, failing)
            yield* assertProgressOfSamples(store, "run-failing")
            assert.strictEqual(samples.filter(isErrorSample).length, 1, "exactly the failed sample is an error")
            // the failure was for one sample only: the next run is clean
            const clean = plan("run-clean", all)
            yield* createRun(store, clean)
            yield* strategy.produce(clean)
            const cleanSamples = yield* samplesOf(store, "run-clean")
            assertOnePerPlanned(cleanSamples, clean)
            assert.strictEqual(cleanSamples.filter(isErrorSample).length, 0)
          })
        ))
    }
  })
}

/**
 * Registers the strategy conformance cases for core's `LocalStrategy` writing to the task store
 * `store` makes (called once per test): how a `TaskStore` backend shows that the local pipeline
 * runs on it (progress kept by the store, resume, error samples). The task doubles a number; the
 * split is `numbers/train`, six samples.
 *
 * @since 0.1.0
 * @category conformance
 */
export const localStrategyConformance = (
  name: string,
  store: () => Layer.Layer<TaskStore.TaskStore, unknown>
): void => {
  interface Row {
    readonly question: number
    readonly answer: number
  }
  // set by the suite's failNextSample hook: the next inference fails (a rejected promise), once
  let failNext = false
  const task = Task.make<Row, number, "answer">({
    name: "double",
    labelFields: ["answer"],
    infer: (row) => {
      if (!failNext) return row.question * 2
      failNext = false
      return Promise.reject(new Error("injected failure"))
    },
    score: (row, stored) => (stored.output === row.answer ? 1 : 0)
  })
  const rows: ReadonlyArray<Row> = Array.from({ length: 6 }, (_, index) => ({ question: index, answer: index * 2 }))
  strategyConformance(name, {
    make: () =>
      LocalStrategy.layer(task).pipe(
        Layer.provideMerge(store()),
        Layer.provide(DatasetSource.layerRecords({ numbers: { train: rows } }))
      ),
    datasetId: "numbers",
    split: "train",
    size: rows.length,
    failNextSample: Effect.sync(() => {
      failNext = true
    })
  })
}
