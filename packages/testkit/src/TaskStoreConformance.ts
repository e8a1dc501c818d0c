/**
 * The conformance suite every `TaskStore` backend runs.
 *
 * @since 0.1.0
 */
import { assert, describe, it } from "@effect/vitest"
import { Metrics, type Model, SampleIds, TaskStore } from "@holdout/core"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Equal from "effect/Equal"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { expectFailure } from "./Assertions.js"

/**
 * Opens the store at one storage location; opening it again is a reopen.
 *
 * @since 0.1.0
 * @category models
 */
export type OpenTaskStore = () => Layer.Layer<TaskStore.TaskStore, unknown>

/**
 * What a backend gives the suite.
 *
 * @since 0.1.0
 * @category models
 */
export interface TaskStoreBackend {
  /** A fresh, empty storage location for one test; released with the scope. */
  readonly makeLocation: Effect.Effect<OpenTaskStore, unknown, Scope.Scope>
  /** Whether runs and samples survive closing and reopening a location. */
  readonly persistent: boolean
}

/**
 * A run record for tests.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeRun = (
  runId: string,
  { sampleIds = [0, 1, 2], ...overrides }: Partial<Omit<Model.RunRecord, "sampleIds">> & {
    readonly sampleIds?: Iterable<number>
  } = {}
): Model.RunRecord => ({
  runId,
  candidate: { id: "cand-1", label: "first", metadata: { branch: "main", depth: 2 } },
  datasetId: "ds",
  split: "train",
  status: "running",
  admin: false,
  createdAt: 1_700_000_000_000,
  ...overrides,
  sampleIds: SampleIds.fromIterable(sampleIds)
})

/**
 * A sample record for tests.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeSample = (
  runId: string,
  sampleId: number,
  overrides: Partial<Model.SampleRecord> = {}
): Model.SampleRecord => ({
  runId,
  sampleId,
  datasetId: "ds",
  split: "train",
  candidateId: "cand-1",
  output: { text: `answer ${sampleId}`, tokens: [1, 2, 3], nested: { ok: true, none: null } },
  metrics: {},
  attempts: 1,
  startedAt: 1_700_000_000_000,
  finishedAt: 1_700_000_000_500,
  ...overrides
})

/** A run as a store reads it back: with the progress of the samples it holds. */
const stored = (run: Model.RunRecord, progress: Model.RunProgress = Metrics.emptyProgress): Model.RunRecord => ({
  ...run,
  progress
})

/** Every sample of a run, read page by page. */
const allSamples = (store: TaskStore.TaskStore["Type"], runId: string, pageSize?: number) =>
  Effect.map(Stream.runCollect(TaskStore.streamSamples(store, runId, pageSize)), Chunk.toReadonlyArray)

/** The progress of a set of samples, as a store must keep it. */
const progressOf = (samples: ReadonlyArray<Model.SampleRecord>): Model.RunProgress =>
  samples.reduce((progress, sample) => Metrics.addToProgress(progress, sample), Metrics.emptyProgress)

const assertProgress = (actual: Model.RunProgress | undefined, expected: Model.RunProgress) => {
  assert.isDefined(actual, "a run read back carries its progress")
  const { scoreSquares, scoreSum, ...counts } = expected
  assert.deepStrictEqual({ ...actual!, scoreSum: 0, scoreSquares: 0 }, { ...counts, scoreSum: 0, scoreSquares: 0 })
  assert.closeTo(actual!.scoreSum, scoreSum, 1e-9)
  assert.closeTo(actual!.scoreSquares, scoreSquares, 1e-9)
}

const using = <A, E>(open: OpenTaskStore, f: (store: TaskStore.TaskStore["Type"]) => Effect.Effect<A, E>) =>
  Effect.scoped(Effect.flatMap(TaskStore.TaskStore, f).pipe(Effect.provide(open())))

/**
 * Registers the task store conformance cases for a backend.
 *
 * @since 0.1.0
 * @category conformance
 */
export const taskStoreConformance = (name: string, backend: TaskStoreBackend): void => {
  const withStore = <A, E>(f: (store: TaskStore.TaskStore["Type"]) => Effect.Effect<A, E>) =>
    Effect.scoped(Effect.flatMap(backend.makeLocation, (open) => using(open, f)))

  describe(`TaskStore conformance: ${name}`, () => {
    it.effect("createRun then getRun round-trips the record; an unknown run is None", () =>
      withStore((store) =>
        Effect.gen(function*() {
          const run = makeRun("r1", { reservationId: "r1", idempotencyKey: "k" })
          yield* store.createRun(run)
          assert.deepStrictEqual(yield* store.getRun("r1"), Option.some(stored(run)))
          // optional fields absent stay absent
          const minimal = makeRun("r2", { candidate: { id: "bare" }, sampleIds: [], admin: true })
          yield* store.createRun(minimal)
          const readBack = yield* store.getRun("r2")
          assert.deepStrictEqual(readBack, Option.some(stored(minimal)))
          if (Option.isSome(readBack)) {
            for (const field of ["reservationId", "idempotencyKey", "finishedAt", "metrics"]) {
              assert.isFalse(field in readBack.value, `absent field "${field}" came back`)
            }
            assert.isFalse("label" in readBack.value.candidate)
          }
          assert.isTrue(Option.isNone(yield* store.getRun("nope")))
        })
      ))

    it.effect("a run's sample ids read back as the same set, reopened too; a whole split stays one run of ids", () =>
      Effect.scoped(Effect.gen(function*() {
        const open = yield* backend.makeLocation
        const size = 200_000
        const whole = makeRun("whole", { sampleIds: SampleIds.range(0, size) })
        const scattered = makeRun("scattered", { sampleIds: [100, 3, 27, 4, 5, 6, 9] })
        const check = (store: TaskStore.TaskStore["Type"]) =>
          Effect.gen(function*() {
            const readWhole = Option.getOrThrow(yield* store.getRun("whole")).sampleIds
            assert.isTrue(Equal.equals(readWhole, whole.sampleIds))
            // held as a run of ids, not a number per id
            assert.strictEqual(readWhole.kind, "runs")
            assert.deepStrictEqual(SampleIds.ranges(readWhole), [[0, size]])
            const readScattered = Option.getOrThrow(yield* store.getRun("scattered")).sampleIds
            assert.deepStrictEqual(SampleIds.toArray(readScattered), [3, 4, 5, 6, 9, 27, 100])
            const listed = yield* store.listRuns()
            assert.isTrue(Equal.equals(listed.find((run) => run.runId === "whole")?.sampleIds, whole.sampleIds))
          })
        yield* using(open, (store) =>
          Effect.gen(function*() {
            yield* store.createRun(whole)
            yield* store.createRun(scattered)
            yield* check(store)
          }))
        if (backend.persistent) yield* using(open, check)
      })))

    it.effect("a second createRun with the same id is a StoreError and keeps the first", () =>
      withStore((store) =>
        Effect.gen(function*() {
          const run = makeRun("r1")
          yield* store.createRun(run)
          const error = yield* expectFailure(store.createRun(makeRun("r1", { split: "validation" })))
          assert.strictEqual(error._tag, "StoreError")
          assert.deepStrictEqual(yield* store.getRun("r1"), Option.some(stored(run)))
        })
      ))

    it.effect("updateRun changes only the fields given and returns the record", () =>
      withStore((store) =>
        Effect.gen(function*() {
          yield* store.createRun(makeRun("r1"))
          const metrics: Model.Metrics = {
            numSamples: 3,
            numErrors: 1,
            numSuccesses: 2,
            numScored: 2,
            avgScore: 0.5,
            avgFilledScore: 1 / 3,
            errorRate: 1 / 3,
            standardError: 0.3,
            interval: { lower: -0.96, upper: 1.62 }
          }
          const updated = yield* store.updateRun("r1", { status: "failed", finishedAt: 1_700_000_009_000, metrics })
          assert.deepStrictEqual(
            updated,
            stored({
              ...makeRun("r1"),
              status: "failed",
              finishedAt: 1_700_000_009_000,
              metrics
            })
          )
          const again = yield* store.updateRun("r1", { status: "completed" })
          assert.deepStrictEqual(again, { ...updated, status: "completed" })
          assert.deepStrictEqual(yield* store.getRun("r1"), Option.some(again))
        })
      ))

    it.effect("updateRun of an unknown run is a StoreError", () =>
      withStore((store) =>
        Effect.gen(function*() {
          const error = yield* expectFailure(store.updateRun("ghost", { status: "completed" }))
          assert.strictEqual(error._tag, "StoreError")
          assert.strictEqual((yield* store.listRuns()).length, 0)
        })
      ))

    it.effect("listRuns lists runs oldest first", () =>
      withStore((store) =>
        Effect.gen(function*() {
          for (const id of ["b", "a", "c"]) yield* store.createRun(makeRun(id))
          assert.deepStrictEqual((yield* store.listRuns()).map((run) => run.runId), ["b", "a", "c"])
        })
      ))

    it.effect("putSample upserts by (runId, sampleId); getSample reads it back exactly", () =>
      withStore((store) =>
        Effect.gen(function*() {
          yield* store.createRun(makeRun("r1"))
          const partial = makeSample("r1", 1, { input: { question: "q" }, trace: ["step"] })
          yield* store.putSample(partial)
          assert.deepStrictEqual(yield* store.getSample("r1", 1), Option.some(partial))
          const scored = makeSample("r1", 1, {
            input: { question: "q" },
            trace: ["step"],
            score: 0.25,
            feedback: "close",
            metrics: { latencyMs: 12.5, tokens: 3 },
            evalTrace: { judge: "ok" },
            attempts: 2
          })
          yield* store.putSample(scored)
          assert.deepStrictEqual(yield* store.getSample("r1", 1), Option.some(scored))
          assert.strictEqual((yield* allSamples(store, "r1")).length, 1)
          assert.isTrue(Option.isNone(yield* store.getSample("r1", 2)))
          assert.isTrue(Option.isNone(yield* store.getSample("r2", 1)))
        })
      ))

    it.effect("records keep absent optional fields absent, and error fields exactly", () =>
      withStore((store) =>
        Effect.gen(function*() {
          yield* store.createRun(makeRun("r1"))
          const failed = makeSample("r1", 0, { output: null, error: "boom", errorTrace: "Error: boom\n  at x" })
          const evalFailed = makeSample("r1", 1, { output: "", evalError: "judge down", evalTrace: null })
          const plain = makeSample("r1", 2, { output: [1, "two", { three: 3 }] })
          for (const sample of [failed, evalFailed, plain]) yield* store.putSample(sample)
          const listed = yield* allSamples(store, "r1")
          assert.deepStrictEqual(listed, [failed, evalFailed, plain])
          assert.isFalse("score" in listed[2]!)
          assert.isFalse("error" in listed[2]!)
        })
      ))

    it.effect("listSamples reads pages by ascending sampleId, after a cursor, scoped to the run", () =>
      withStore((store) =>
        Effect.gen(function*() {
          yield* store.createRun(makeRun("r1"))
          yield* store.createRun(makeRun("r2"))
          for (const id of [10, 2, 33, 0, 7]) yield* store.putSample(makeSample("r1", id))
          yield* store.putSample(makeSample("r2", 5))
          const ids = (page: ReadonlyArray<Model.SampleRecord>) => page.map((sample) => sample.sampleId)
          assert.deepStrictEqual(ids(yield* store.listSamples("r1", { limit: 2 })), [0, 2])
          assert.deepStrictEqual(ids(yield* store.listSamples("r1", { after: 2, limit: 2 })), [7, 10])
          assert.deepStrictEqual(ids(yield* store.listSamples("r1", { after: 10, limit: 2 })), [33])
          assert.deepStrictEqual(ids(yield* store.listSamples("r1", { after: 33, limit: 2 })), [])
          // a cursor need not be a stored id
          assert.deepStrictEqual(ids(yield* store.listSamples("r1", { after: 8, limit: 10 })), [10, 33])
          assert.deepStrictEqual(ids(yield* store.listSamples("r1", { after: -1, limit: 1 })), [0])
          assert.deepStrictEqual(ids(yield* store.listSamples("r2", { limit: 100 })), [5])
          assert.deepStrictEqual(yield* store.listSamples("r3", { limit: 100 }), [])
          for (const pageSize of [1, 2, 3, 5, 1000]) {
            assert.deepStrictEqual(ids(yield* allSamples(store, "r1", pageSize)), [0, 2, 7, 10, 33])
          }
        })
      ))

    it.effect("a run read back carries the progress of the samples it holds; an upsert replaces its share", () =>
      withStore((store) =>
        Effect.gen(function*() {
          yield* store.createRun(makeRun("r1", { sampleIds: [0, 1, 2, 3, 4] }))
          yield* store.createRun(makeRun("r2"))
          const progress = (runId: string) => Effect.map(store.getRun(runId), (run) => Option.getOrThrow(run).progress)
          assertProgress(yield* progress("r1"), Metrics.emptyProgress)
          const inferred = makeSample("r1", 0)
          yield* store.putSample(inferred)
          assertProgress(yield* progress("r1"), progressOf([inferred]))
          const current = new Map<number, Model.SampleRecord>()
          const versions = [
            makeSample("r1", 0, { score: 0.75 }),
            makeSample("r1", 1, { error: "boom" }),
            makeSample("r1", 2, { score: 1, evalError: "judge down" }),
            makeSample("r1", 3, { score: 0.5 }),
            // replacements: an error that a retry turned into a success, and a success rescored
            makeSample("r1", 1, { score: 0.25, attempts: 2 }),
            makeSample("r1", 3, { score: 0 }),
            makeSample("r1", 4)
          ]
          for (const version of versions) {
            yield* store.putSample(version)
            current.set(version.sampleId, version)
            assertProgress(yield* progress("r1"), progressOf([...current.values()]))
          }
          yield* store.putSample(makeSample("r2", 0, { score: 1 }))
          assertProgress(yield* progress("r1"), progressOf([...current.values()]))
          assertProgress(yield* progress("r2"), progressOf([makeSample("r2", 0, { score: 1 })]))
          // the metrics derived from it are those of the samples
          const listed = yield* allSamples(store, "r1")
          const derived = Metrics.fromProgress((yield* progress("r1"))!)
          const direct = Metrics.compute(listed)
          assert.deepStrictEqual(
            { ...derived, avgScore: 0, avgFilledScore: 0 },
            { ...direct, avgScore: 0, avgFilledScore: 0 }
          )
          assert.closeTo(derived.avgScore!, direct.avgScore!, 1e-9)
          assert.closeTo(derived.avgFilledScore, direct.avgFilledScore, 1e-9)
          // listRuns shows the same progress, and an update keeps it
          const updated = yield* store.updateRun("r1", { status: "completed", finishedAt: 9 })
          assertProgress(updated.progress, progressOf(listed))
          const fromList = (yield* store.listRuns()).find((run) => run.runId === "r1")
          assertProgress(fromList?.progress, progressOf(listed))
        })
      ))

    it.effect("samples stored before their run count in its progress from its creation", () =>
      withStore((store) =>
        Effect.gen(function*() {
          const early = [makeSample("r1", 0, { score: 0.5 }), makeSample("r1", 1, { error: "boom" })]
          yield* store.putSamples(early)
          yield* store.putSample(makeSample("other", 0, { score: 1 }))
          yield* store.createRun(makeRun("r1"))
          const created = Option.getOrThrow(yield* store.getRun("r1"))
          assertProgress(created.progress, progressOf(early))
          const late = makeSample("r1", 2, { score: 1 })
          yield* store.putSample(late)
          assertProgress(Option.getOrThrow(yield* store.getRun("r1")).progress, progressOf([...early, late]))
        })
      ))

    it.effect("concurrent upserts keep the progress exact", () =>
      withStore((store) =>
        Effect.gen(function*() {
          yield* store.createRun(makeRun("r1"))
          const writes = Array.from({ length: 300 }, (_, index) =>
            index < 200
              ? makeSample("r1", index % 100, { error: "first try" })
              : makeSample("r1", index % 100, { score: (index % 4) / 4, attempts: 2 }))
          // every sample is written as an error first, then (later in the order) as a success
          yield* Effect.forEach(writes.slice(0, 200), (sample) => store.putSample(sample), {
            concurrency: 32,
            discard: true
          })
          yield* Effect.forEach(writes.slice(200), (sample) => store.putSample(sample), {
            concurrency: 32,
            discard: true
          })
          const run = Option.getOrThrow(yield* store.getRun("r1"))
          assertProgress(run.progress, progressOf(writes.slice(200)))
        })
      ))

    it.effect("many concurrent putSample calls all land", () =>
      withStore((store) =>
        Effect.gen(function*() {
          yield* store.createRun(makeRun("r1"))
          const ids = Array.from({ length: 500 }, (_, index) => index)
          yield* Effect.forEach(ids, (id) => store.putSample(makeSample("r1", id, { score: id / 500 })), {
            concurrency: 64,
            discard: true
          })
          const listed = yield* allSamples(store, "r1", 64)
          assert.deepStrictEqual(listed.map((sample) => sample.sampleId), ids)
          assert.deepStrictEqual(listed.map((sample) => sample.score), ids.map((id) => id / 500))
        })
      ))

    it.effect("putSamples stores a batch as putSample would one by one: the last record of a sample wins", () =>
      withStore((store) =>
        Effect.gen(function*() {
          yield* store.createRun(makeRun("r1"))
          yield* store.createRun(makeRun("r2"))
          yield* store.putSample(makeSample("r1", 3, { error: "stored before" }))
          const batch = [
            makeSample("r1", 3),
            makeSample("r1", 1, { score: 0.25 }),
            makeSample("r2", 1, { score: 1 }),
            makeSample("r1", 3, { score: 0.5, feedback: "scored" }),
            makeSample("r1", 0, { evalError: "unjudgeable" })
          ]
          yield* store.putSamples(batch)
          yield* store.putSamples([])
          const r1 = yield* allSamples(store, "r1", 2)
          assert.deepStrictEqual(r1.map((sample) => sample.sampleId), [0, 1, 3])
          assert.deepStrictEqual(Option.getOrThrow(yield* store.getSample("r1", 3)), batch[3])
          assert.deepStrictEqual(Option.getOrThrow(yield* store.getSample("r2", 1)), batch[2])
          assertProgress(
            Option.getOrThrow(yield* store.getRun("r1")).progress,
            progressOf([batch[4]!, batch[1]!, batch[3]!])
          )
          assertProgress(Option.getOrThrow(yield* store.getRun("r2")).progress, progressOf([batch[2]!]))
          // batches of many callers at once all land
          const ids = Array.from({ length: 600 }, (_, index) => index + 10)
          yield* Effect.forEach(
            Array.from({ length: 12 }, (_, chunk) => ids.slice(chunk * 50, chunk * 50 + 50)),
            (chunk) => store.putSamples(chunk.map((id) => makeSample("r2", id, { score: 0.5 }))),
            { concurrency: 12, discard: true }
          )
          assert.strictEqual((yield* allSamples(store, "r2", 100)).length, 601)
          assert.strictEqual(Option.getOrThrow(yield* store.getRun("r2")).progress?.scored, 601)
        })
      ))

    it.effect("concurrent upserts of one sample leave one whole version; readers never see a torn one", () =>
      withStore((store) =>
        Effect.gen(function*() {
          yield* store.createRun(makeRun("r1"))
          const versions = Array.from({ length: 50 }, (_, index) =>
            makeSample("r1", 7, {
              output: { version: index, text: "x".repeat(index * 40) },
              score: index / 50,
              attempts: index + 1,
              ...(index % 2 === 0 ? { feedback: `version ${index}` } : { evalError: `failed ${index}` })
            }))
          // `attempts` names the version a record claims to be; the rest of it must match that version
          const assertWhole = (sample: Model.SampleRecord) =>
            assert.deepStrictEqual(sample, versions[sample.attempts - 1], "a reader saw a torn record")
          const reads = yield* Effect.all(
            [
              Effect.forEach(versions, (version) => store.putSample(version), {
                concurrency: "unbounded",
                discard: true
              }),
              Effect.forEach(versions, () => store.getSample("r1", 7), { concurrency: "unbounded" })
            ],
            { concurrency: "unbounded" }
          ).pipe(Effect.map(([, reads]) => reads))
          for (const read of reads) {
            if (Option.isSome(read)) assertWhole(read.value)
          }
          const listed = yield* allSamples(store, "r1")
          assert.strictEqual(listed.length, 1)
          assertWhole(listed[0]!)
          assertProgress(Option.getOrThrow(yield* store.getRun("r1")).progress, progressOf(listed))
        })
      ))

    it.effect("putMetaIfAbsent: the first value written under a key wins, also among concurrent writers", () =>
      withStore((store) =>
        Effect.gen(function*() {
          assert.strictEqual(yield* store.putMetaIfAbsent("secret", "first"), "first")
          assert.strictEqual(yield* store.putMetaIfAbsent("secret", "second"), "first")
          const raced = yield* Effect.forEach(
            Array.from({ length: 50 }, (_, index) => `v${index}`),
            (value) => store.putMetaIfAbsent("raced", value),
            { concurrency: "unbounded" }
          )
          for (const value of raced) assert.strictEqual(value, raced[0])
          assert.strictEqual(yield* store.putMetaIfAbsent("raced", "late"), raced[0])
          assert.deepStrictEqual(yield* store.getMeta("raced"), Option.some(raced[0]!))
          assert.deepStrictEqual(yield* store.getMeta("secret"), Option.some("first"))
          assert.isTrue(Option.isNone(yield* store.getMeta("never")))
          assert.deepStrictEqual(yield* store.listRuns(), [], "meta values are not runs")
        })
      ))

    if (backend.persistent) {
      it.effect("reopening keeps meta values", () =>
        Effect.scoped(Effect.gen(function*() {
          const open = yield* backend.makeLocation
          yield* using(open, (store) => store.putMetaIfAbsent("secret", "kept"))
          yield* using(open, (store) =>
            Effect.gen(function*() {
              assert.deepStrictEqual(yield* store.getMeta("secret"), Option.some("kept"))
              assert.strictEqual(yield* store.putMetaIfAbsent("secret", "other"), "kept")
            }))
        })))

      it.effect("reopening keeps runs and samples", () =>
        Effect.scoped(Effect.gen(function*() {
          const open = yield* backend.makeLocation
          const run = makeRun("r1")
          const samples = [
            makeSample("r1", 0, { score: 1 }),
            makeSample("r1", 1, { error: "x" }),
            makeSample("r1", 2, { score: 0.5 })
          ]
          yield* using(open, (store) =>
            Effect.gen(function*() {
              yield* store.createRun(run)
              yield* store.putSample(makeSample("r1", 2, { error: "replaced before the reopen" }))
              for (const sample of samples) yield* store.putSample(sample)
              yield* store.updateRun("r1", { status: "completed", finishedAt: 5 })
            }))
          yield* using(open, (store) =>
            Effect.gen(function*() {
              assert.deepStrictEqual(
                yield* store.getRun("r1"),
                Option.some(stored({ ...run, status: "completed", finishedAt: 5 }, progressOf(samples)))
              )
              assert.deepStrictEqual(yield* allSamples(store, "r1"), samples)
            }))
        })))
    }
  })
}
