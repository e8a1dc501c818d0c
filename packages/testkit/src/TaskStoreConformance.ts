/**
 * The conformance suite every `TaskStore` backend runs.
 *
 * @since 0.1.0
 */
import { assert, describe, it } from "@effect/vitest"
import { type Model, TaskStore } from "@holdout/core"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
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
export const makeRun = (runId: string, overrides: Partial<Model.RunRecord> = {}): Model.RunRecord => ({
  runId,
  candidate: { id: "cand-1", label: "first", metadata: { branch: "main", depth: 2 } },
  datasetId: "ds",
  split: "train",
  sampleIds: [0, 1, 2],
  status: "running",
  admin: false,
  createdAt: 1_700_000_000_000,
  ...overrides
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
          assert.deepStrictEqual(yield* store.getRun("r1"), Option.some(run))
          // optional fields absent stay absent
          const minimal = makeRun("r2", { candidate: { id: "bare" }, sampleIds: [], admin: true })
          yield* store.createRun(minimal)
          const stored = yield* store.getRun("r2")
          assert.deepStrictEqual(stored, Option.some(minimal))
          if (Option.isSome(stored)) {
            for (const field of ["reservationId", "idempotencyKey", "finishedAt", "metrics"]) {
              assert.isFalse(field in stored.value, `absent field "${field}" came back`)
            }
            assert.isFalse("label" in stored.value.candidate)
          }
          assert.isTrue(Option.isNone(yield* store.getRun("nope")))
        })
      ))

    it.effect("a second createRun with the same id is a StoreError and keeps the first", () =>
      withStore((store) =>
        Effect.gen(function*() {
          const run = makeRun("r1")
          yield* store.createRun(run)
          const error = yield* expectFailure(store.createRun(makeRun("r1", { split: "validation" })))
          assert.strictEqual(error._tag, "StoreError")
          assert.deepStrictEqual(yield* store.getRun("r1"), Option.some(run))
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
            avgScore: 0.5,
            avgFilledScore: 1 / 3,
            errorRate: 1 / 3
          }
          const updated = yield* store.updateRun("r1", { status: "failed", finishedAt: 1_700_000_009_000, metrics })
          assert.deepStrictEqual(updated, {
            ...makeRun("r1"),
            status: "failed",
            finishedAt: 1_700_000_009_000,
            metrics
          })
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
          assert.strictEqual((yield* store.listSamples("r1")).length, 1)
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
          const listed = yield* store.listSamples("r1")
          assert.deepStrictEqual(listed, [failed, evalFailed, plain])
          assert.isFalse("score" in listed[2]!)
          assert.isFalse("error" in listed[2]!)
        })
      ))

    it.effect("listSamples is sorted by sampleId and scoped to the run", () =>
      withStore((store) =>
        Effect.gen(function*() {
          yield* store.createRun(makeRun("r1"))
          yield* store.createRun(makeRun("r2"))
          for (const id of [10, 2, 33, 0]) yield* store.putSample(makeSample("r1", id))
          yield* store.putSample(makeSample("r2", 5))
          assert.deepStrictEqual((yield* store.listSamples("r1")).map((sample) => sample.sampleId), [0, 2, 10, 33])
          assert.deepStrictEqual((yield* store.listSamples("r2")).map((sample) => sample.sampleId), [5])
          assert.deepStrictEqual(yield* store.listSamples("r3"), [])
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
          const listed = yield* store.listSamples("r1")
          assert.deepStrictEqual(listed.map((sample) => sample.sampleId), ids)
          assert.deepStrictEqual(listed.map((sample) => sample.score), ids.map((id) => id / 500))
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
          const listed = yield* store.listSamples("r1")
          assert.strictEqual(listed.length, 1)
          assertWhole(listed[0]!)
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
          assert.deepStrictEqual(yield* store.listRuns(), [], "meta values are not runs")
        })
      ))

    if (backend.persistent) {
      it.effect("reopening keeps meta values", () =>
        Effect.scoped(Effect.gen(function*() {
          const open = yield* backend.makeLocation
          yield* using(open, (store) => store.putMetaIfAbsent("secret", "kept"))
          yield* using(open, (store) =>
            Effect.map(store.putMetaIfAbsent("secret", "other"), (value) => assert.strictEqual(value, "kept")))
        })))

      it.effect("reopening keeps runs and samples", () =>
        Effect.scoped(Effect.gen(function*() {
          const open = yield* backend.makeLocation
          const run = makeRun("r1")
          const samples = [makeSample("r1", 0, { score: 1 }), makeSample("r1", 1, { error: "x" })]
          yield* using(open, (store) =>
            Effect.gen(function*() {
              yield* store.createRun(run)
              for (const sample of samples) yield* store.putSample(sample)
              yield* store.updateRun("r1", { status: "completed", finishedAt: 5 })
            }))
          yield* using(open, (store) =>
            Effect.gen(function*() {
              assert.deepStrictEqual(
                yield* store.getRun("r1"),
                Option.some({ ...run, status: "completed", finishedAt: 5 })
              )
              assert.deepStrictEqual(yield* store.listSamples("r1"), samples)
            }))
        })))
    }
  })
}
