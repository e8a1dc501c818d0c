import { assert, describe, it } from "@effect/vitest"
import { countingTaskStore, expectFailure } from "@holdout/testkit"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Engine from "../src/Engine.js"
import { InvalidRequest } from "../src/HoldoutError.js"
import * as Ledger from "../src/Ledger.js"
import type { EvalRequest } from "../src/Model.js"
import * as RunEvents from "../src/RunEvents.js"
import * as SampleIds from "../src/SampleIds.js"
import * as TaskStore from "../src/TaskStore.js"
import * as Workspace from "../src/Workspace.js"
import { candidate, samplesOf, stack } from "./fixtures.js"

/** Runs `evaluate` and returns the error's tag, failing the test when it succeeds. */
const failureTag = (request: unknown, options?: Engine.EvaluateOptions) =>
  Effect.gen(function*() {
    const engine = yield* Engine.Engine
    const error = yield* expectFailure(engine.evaluate(request as EvalRequest, options))
    return error
  })

/** Asserts that nothing at all was charged and no run was created. */
const assertNothingCharged = Effect.gen(function*() {
  const ledger = yield* Ledger.Ledger
  const store = yield* TaskStore.TaskStore
  for (const snapshot of yield* ledger.status()) {
    assert.deepStrictEqual(snapshot.spent, { runs: 0, samples: 0 }, `${snapshot.split} was charged`)
  }
  assert.strictEqual((yield* ledger.reservations()).length, 0)
  assert.strictEqual((yield* store.listRuns()).length, 0)
})

const spentOn = (split: string) =>
  Effect.flatMap(Ledger.Ledger, (ledger) => ledger.get({ datasetId: "qa", split })).pipe(
    Effect.map((snapshot) => snapshot.spent)
  )

describe("Engine.evaluate — order of DESIGN §5", () => {
  describe("step 1: decode", () => {
    for (
      const [name, request] of [
        ["a missing candidate", { datasetId: "qa", split: "train" }],
        ["an empty candidate id", { datasetId: "qa", split: "train", candidate: { id: "" } }],
        ["sampleIds that are not numbers", { datasetId: "qa", split: "train", candidate, sampleIds: "1,2" }],
        ["an unknown field", { datasetId: "qa", split: "train", candidate, sample_ids: [1] }],
        ["not an object", "evaluate please"]
      ] as const
    ) {
      it.effect(`rejects ${name} with InvalidRequest and charges nothing`, () =>
        Effect.gen(function*() {
          const error = yield* failureTag(request)
          assert.strictEqual(error._tag, "InvalidRequest")
          assert.match(error.message, /Malformed evaluation request/)
          yield* assertNothingCharged
        }).pipe(Effect.provide(stack().layer)))
    }
  })

  describe("step 2: tier gate", () => {
    it.effect("a no_access split is AccessDenied before anything is looked up", () =>
      Effect.gen(function*() {
        const error = yield* failureTag({ datasetId: "qa", split: "test", candidate })
        assert.strictEqual(error._tag, "AccessDenied")
        // even for an unknown dataset and contradictory samples: the gate comes first
        const early = yield* failureTag({ datasetId: "nope", split: "test", candidate, sampleIds: [99], numSamples: 2 })
        assert.strictEqual(early._tag, "AccessDenied")
        yield* assertNothingCharged
      }).pipe(Effect.provide(stack().layer)))

    it.effect("an unlisted split is no_access (fail closed)", () =>
      Effect.gen(function*() {
        const error = yield* failureTag({ datasetId: "qa", split: "Train", candidate })
        assert.strictEqual(error._tag, "AccessDenied")
        yield* assertNothingCharged
      }).pipe(Effect.provide(stack().layer)))
  })

  describe("step 3: the split exists", () => {
    it.effect("a listed split the dataset lacks is UnknownSplit, naming only splits the caller may see", () =>
      Effect.gen(function*() {
        const error = yield* failureTag({ datasetId: "qa", split: "dev", candidate })
        assert.strictEqual(error._tag, "UnknownSplit")
        assert.notInclude(error.message, "test")
        assert.include(error.message, "train")
        yield* assertNothingCharged
      }).pipe(Effect.provide(stack({ policy: { train: "viewable", dev: "viewable", test: "no_access" } }).layer)))

    it.effect("an unknown dataset is InvalidRequest", () =>
      Effect.gen(function*() {
        const error = yield* failureTag({ datasetId: "nope", split: "train", candidate })
        assert.strictEqual(error._tag, "InvalidRequest")
        assert.include(error.message, "Unknown dataset")
        yield* assertNothingCharged
      }).pipe(Effect.provide(stack().layer)))
  })

  describe("step 4: samples", () => {
    for (
      const [name, fields, pattern] of [
        ["sampleIds and numSamples together", { sampleIds: [1], numSamples: 1 }, /not both/],
        ["numSamples 0", { numSamples: 0 }, /at least 1/],
        ["a negative numSamples", { numSamples: -3 }, /at least 1/],
        ["a fractional numSamples", { numSamples: 1.5 }, /integer/],
        ["empty sampleIds", { sampleIds: [] }, /empty/],
        ["fractional sampleIds", { sampleIds: [1, 2.5] }, /2\.5/],
        ["repeated sampleIds", { sampleIds: [1, 2, 2, 3] }, /lists 2 more than once/],
        ["sampleIds out of range", { sampleIds: [0, 20, -1, 5] }, /20, -1.*0\.\.19/]
      ] as const
    ) {
      it.effect(`rejects ${name} with InvalidRequest and charges nothing`, () =>
        Effect.gen(function*() {
          const error = yield* failureTag({ datasetId: "qa", split: "train", candidate, ...fields })
          assert.strictEqual(error._tag, "InvalidRequest")
          assert.match(error.message, pattern)
          yield* assertNothingCharged
        }).pipe(Effect.provide(stack().layer)))
    }

    it.effect("an empty split is InvalidRequest, not a charged run of nothing", () =>
      Effect.gen(function*() {
        const error = yield* failureTag({ datasetId: "qa", split: "empty", candidate })
        assert.strictEqual(error._tag, "InvalidRequest")
        yield* assertNothingCharged
      }).pipe(Effect.provide(stack().layer)))

    it.effect("numSamples means the first N ids; more than the split means the whole split, charged its size", () =>
      Effect.gen(function*() {
        const engine = yield* Engine.Engine
        const first = yield* engine.evaluate({ datasetId: "qa", split: "train", candidate, numSamples: 3 })
        assert.deepStrictEqual(SampleIds.toArray(first.run.sampleIds), [0, 1, 2])
        const all = yield* engine.evaluate({ datasetId: "qa", split: "train", candidate, numSamples: 500 })
        assert.strictEqual(all.run.sampleIds.length, 20)
        assert.deepStrictEqual(yield* spentOn("train"), { runs: 2, samples: 23 })
      }).pipe(Effect.provide(stack().layer)))

    it.effect("sampleIds are evaluated (sorted) and charged by count; no samples means the whole split", () =>
      Effect.gen(function*() {
        const engine = yield* Engine.Engine
        const picked = yield* engine.evaluate({ datasetId: "qa", split: "train", candidate, sampleIds: [7, 2, 11] })
        assert.deepStrictEqual(SampleIds.toArray(picked.run.sampleIds), [2, 7, 11])
        assert.deepStrictEqual((yield* samplesOf(picked)).map((sample) => sample.sampleId), [2, 7, 11])
        const whole = yield* engine.evaluate({ datasetId: "qa", split: "train", candidate })
        assert.strictEqual((yield* samplesOf(whole)).length, 20)
        assert.deepStrictEqual(yield* spentOn("train"), { runs: 2, samples: 23 })
      }).pipe(Effect.provide(stack().layer)))
  })

  describe("step 5: subset floor of non_viewable splits", () => {
    it.effect("a proper subset smaller than the floor is SubsetTooSmall; sampleIds are refused on non_viewable", () =>
      Effect.gen(function*() {
        for (const sampleIds of [[3], [0, 1, 2, 3, 4, 5]]) {
          const chosen = yield* failureTag({ datasetId: "qa", split: "validation", candidate, sampleIds })
          assert.strictEqual(chosen._tag, "InvalidRequest")
          assert.include(chosen.message, "numSamples")
        }
        const four = yield* failureTag({ datasetId: "qa", split: "validation", candidate, numSamples: 4 })
        assert.deepInclude(four, { _tag: "SubsetTooSmall", requested: 4, minimum: 5 })
        yield* assertNothingCharged
      }).pipe(Effect.provide(stack().layer)))

    it.effect("the floor itself, a whole small split, and viewable subsets pass", () =>
      Effect.gen(function*() {
        const engine = yield* Engine.Engine
        yield* engine.evaluate({ datasetId: "qa", split: "validation", candidate, numSamples: 5 })
        yield* engine.evaluate({ datasetId: "qa", split: "tiny", candidate })
        yield* engine.evaluate({ datasetId: "qa", split: "train", candidate, sampleIds: [4] })
        assert.deepStrictEqual(yield* spentOn("validation"), { runs: 1, samples: 5 })
        assert.deepStrictEqual(yield* spentOn("tiny"), { runs: 1, samples: 3 })
      }).pipe(Effect.provide(stack().layer)))

    it.effect("the floor is configurable", () =>
      Effect.gen(function*() {
        const error = yield* failureTag({ datasetId: "qa", split: "validation", candidate, numSamples: 7 })
        assert.deepInclude(error, { _tag: "SubsetTooSmall", minimum: 8 })
        yield* assertNothingCharged
      }).pipe(Effect.provide(stack({ engine: { subsetFloor: 8 } }).layer)))
  })

  describe("step 5b: the candidate, through the workspace", () => {
    const hash = "f".repeat(40)
    /** A workspace that knows one name, "abc123", and counts what it was asked to resolve. */
    const withWorkspace = () => {
      const asked: Array<string> = []
      const layer = Layer.succeed(Workspace.Workspace, {
        resolve: (candidate) =>
          Effect.suspend(() => {
            asked.push(candidate.id)
            return candidate.id === "abc123" || candidate.id === hash
              ? Effect.succeed({ ...candidate, id: hash })
              : Effect.fail(new InvalidRequest({ message: `Candidate "${candidate.id}" names no commit.` }))
          }),
        checkout: () => Effect.succeed("/nowhere")
      })
      return { asked, provide: layer }
    }

    it.effect("a refused candidate is InvalidRequest before anything is charged, for admin calls too", () => {
      const workspace = withWorkspace()
      return Effect.gen(function*() {
        const error = yield* failureTag({ datasetId: "qa", split: "train", candidate: { id: "main:refs/x" } })
        assert.strictEqual(error._tag, "InvalidRequest")
        const admin = yield* failureTag({ datasetId: "qa", split: "test", candidate: { id: "main:refs/x" } }, {
          admin: true
        })
        assert.strictEqual(admin._tag, "InvalidRequest")
        // the earlier steps still come first
        const small = yield* failureTag({
          datasetId: "qa",
          split: "validation",
          candidate: { id: "nope" },
          numSamples: 1
        })
        assert.strictEqual(small._tag, "SubsetTooSmall")
        assert.deepStrictEqual(workspace.asked, ["main:refs/x", "main:refs/x"])
        yield* assertNothingCharged
      }).pipe(Effect.provide(stack().layer.pipe(Layer.provide(workspace.provide))))
    })

    it.effect("the run is recorded, planned and keyed under the resolved candidate", () => {
      const workspace = withWorkspace()
      const built = stack()
      return Effect.gen(function*() {
        const engine = yield* Engine.Engine
        const first = yield* engine.evaluate({ datasetId: "qa", split: "train", candidate, idempotencyKey: "k" })
        assert.deepStrictEqual(first.run.candidate, { ...candidate, id: hash })
        assert.strictEqual(built.fake.calls[0]!.candidate.id, hash)
        // the same request again, and the resolved id itself, repeat the run under the key
        const again = yield* engine.evaluate({ datasetId: "qa", split: "train", candidate, idempotencyKey: "k" })
        const byHash = yield* engine.evaluate({
          datasetId: "qa",
          split: "train",
          candidate: { id: hash },
          idempotencyKey: "k"
        })
        assert.strictEqual(again.run.runId, first.run.runId)
        assert.strictEqual(byHash.run.runId, first.run.runId)
        assert.deepStrictEqual(yield* spentOn("train"), { runs: 1, samples: 20 })
        const admin = yield* engine.evaluate({ datasetId: "qa", split: "test", candidate }, { admin: true })
        assert.strictEqual(admin.run.candidate.id, hash)
      }).pipe(Effect.provide(built.layer.pipe(Layer.provide(workspace.provide))))
    })
  })

  describe("step 6: the ledger", () => {
    it.effect("an evaluable split without a budget is SplitNotBudgeted", () =>
      Effect.gen(function*() {
        const error = yield* failureTag({ datasetId: "qa", split: "train", candidate })
        assert.strictEqual(error._tag, "SplitNotBudgeted")
        yield* assertNothingCharged
      }).pipe(Effect.provide(stack({ budgets: [{ datasetId: "qa", split: "validation", runs: 1 }] }).layer)))

    it.effect("exhaustion is BudgetExhausted, and a rejected request charges nothing", () =>
      Effect.gen(function*() {
        const engine = yield* Engine.Engine
        yield* engine.evaluate({ datasetId: "qa", split: "validation", candidate, numSamples: 10 })
        yield* engine.evaluate({ datasetId: "qa", split: "validation", candidate, numSamples: 10 })
        const samples = yield* failureTag({ datasetId: "qa", split: "validation", candidate, numSamples: 6 })
        // 6 samples of a non_viewable split are the fewest whole blocks holding 6: two blocks of 5
        assert.deepInclude(samples, { _tag: "BudgetExhausted", reason: "samples", requested: 10, remaining: 5 })
        yield* engine.evaluate({ datasetId: "qa", split: "validation", candidate, numSamples: 5 })
        const runs = yield* failureTag({ datasetId: "qa", split: "validation", candidate, numSamples: 5 })
        assert.deepInclude(runs, { _tag: "BudgetExhausted", reason: "runs" })
        assert.deepStrictEqual(yield* spentOn("validation"), { runs: 3, samples: 25 })
        const store = yield* TaskStore.TaskStore
        assert.strictEqual((yield* store.listRuns()).length, 3)
      }).pipe(Effect.provide(stack().layer)))

    it.effect("the per-run cap is BudgetExhausted(per_run_cap)", () =>
      Effect.gen(function*() {
        const error = yield* failureTag({ datasetId: "qa", split: "validation", candidate, numSamples: 100 })
        // numSamples beyond the split is the whole split: 10 samples, over the cap of 6
        assert.deepInclude(error, { _tag: "BudgetExhausted", reason: "per_run_cap", requested: 10, remaining: 6 })
        yield* assertNothingCharged
      }).pipe(
        Effect.provide(
          stack({ budgets: [{ datasetId: "qa", split: "validation", samples: 100, maxSamplesPerRun: 6 }] })
            .layer
        )
      ))

    it.effect("an ill-formed request that is also over budget reports the ill-formed error", () =>
      Effect.gen(function*() {
        const error = yield* failureTag({ datasetId: "qa", split: "validation", candidate, sampleIds: [1, 99] })
        assert.strictEqual(error._tag, "InvalidRequest")
        yield* assertNothingCharged
      }).pipe(Effect.provide(stack({ budgets: [{ datasetId: "qa", split: "validation", runs: 0 }] }).layer)))

    it.effect("a repeated idempotencyKey returns the first run and charges nothing", () =>
      Effect.gen(function*() {
        const engine = yield* Engine.Engine
        const request = { datasetId: "qa", split: "train", candidate, numSamples: 4, idempotencyKey: "k1" }
        const first = yield* engine.evaluate(request)
        const again = yield* engine.evaluate(request)
        assert.strictEqual(again.run.runId, first.run.runId)
        assert.deepStrictEqual(yield* samplesOf(again), yield* samplesOf(first))
        assert.deepStrictEqual(yield* spentOn("train"), { runs: 1, samples: 4 })
        const ledger = yield* Ledger.Ledger
        assert.strictEqual((yield* ledger.reservations()).length, 1)
      }).pipe(Effect.provide(stack().layer)))

    it.effect("concurrent repeats of one idempotencyKey make one run and one charge", () =>
      Effect.gen(function*() {
        const engine = yield* Engine.Engine
        const request = { datasetId: "qa", split: "train", candidate, numSamples: 4, idempotencyKey: "k2" }
        const results = yield* Effect.all(Array.from({ length: 8 }, () => engine.evaluate(request)), {
          concurrency: "unbounded"
        })
        assert.strictEqual(new Set(results.map((result) => result.run.runId)).size, 1)
        assert.deepStrictEqual(yield* spentOn("train"), { runs: 1, samples: 4 })
        const store = yield* TaskStore.TaskStore
        assert.strictEqual((yield* store.listRuns()).length, 1)
      }).pipe(Effect.provide(stack().layer)))

    it.effect("the same idempotencyKey with a different request is IdempotencyConflict and charges nothing", () =>
      Effect.gen(function*() {
        const engine = yield* Engine.Engine
        yield* engine.evaluate({ datasetId: "qa", split: "train", candidate, numSamples: 4, idempotencyKey: "k3" })
        for (
          const changed of [
            { numSamples: 5 },
            { candidate: { id: "other" } },
            { split: "validation", numSamples: 5 }
          ]
        ) {
          const error = yield* failureTag({
            datasetId: "qa",
            split: "train",
            candidate,
            numSamples: 4,
            idempotencyKey: "k3",
            ...changed
          })
          assert.strictEqual(error._tag, "IdempotencyConflict")
          // it names nothing of the first request
          assert.notInclude(error.message, "train")
          assert.notInclude(error.message, candidate.id)
        }
        assert.deepStrictEqual(yield* spentOn("train"), { runs: 1, samples: 4 })
        assert.deepStrictEqual(yield* spentOn("validation"), { runs: 0, samples: 0 })
      }).pipe(Effect.provide(stack().layer)))
  })

  describe("step 7: run", () => {
    it.effect("creates the run, produces, assembles and completes it", () =>
      Effect.gen(function*() {
        const engine = yield* Engine.Engine
        const experiment = yield* engine.evaluate({ datasetId: "qa", split: "train", candidate, numSamples: 5 })
        assert.strictEqual(experiment.run.status, "completed")
        assert.strictEqual(experiment.run.admin, false)
        assert.strictEqual(experiment.run.reservationId, experiment.run.runId)
        assert.deepStrictEqual(experiment.metrics, {
          numSamples: 5,
          numErrors: 0,
          numSuccesses: 5,
          numScored: 5,
          avgScore: 1,
          avgFilledScore: 1,
          errorRate: 0,
          standardError: 0,
          interval: { lower: 1, upper: 1 }
        })
        const store = yield* TaskStore.TaskStore
        const stored = yield* store.getRun(experiment.run.runId)
        assert.deepStrictEqual(Option.getOrThrow(stored), experiment.run)
      }).pipe(Effect.provide(stack().layer)))

    it.effect("a run whose error rate reaches the threshold is failed", () =>
      Effect.gen(function*() {
        const engine = yield* Engine.Engine
        const experiment = yield* engine.evaluate({ datasetId: "qa", split: "train", candidate, numSamples: 10 })
        assert.strictEqual(experiment.metrics.errorRate, 0.1)
        assert.strictEqual(experiment.run.status, "failed")
        assert.strictEqual(experiment.metrics.avgScore, 1)
        assert.closeTo(experiment.metrics.avgFilledScore, 0.9, 1e-12)
      }).pipe(Effect.provide(stack({ behaviour: { fail: (id) => id === 3 } }).layer)))

    it.effect("a strategy that leaves no sample is RunFailed, and the charge stands", () =>
      Effect.gen(function*() {
        const error = yield* failureTag({ datasetId: "qa", split: "train", candidate, numSamples: 5 })
        assert.strictEqual(error._tag, "RunFailed")
        assert.deepStrictEqual(yield* spentOn("train"), { runs: 1, samples: 5 })
        const store = yield* TaskStore.TaskStore
        const [run] = yield* store.listRuns()
        assert.strictEqual(run!.status, "failed")
      }).pipe(Effect.provide(stack({ behaviour: { skip: () => true } }).layer)))

    it.effect("planned samples a strategy leaves out are recorded as errors", () =>
      Effect.gen(function*() {
        const engine = yield* Engine.Engine
        const experiment = yield* engine.evaluate({ datasetId: "qa", split: "train", candidate, numSamples: 4 })
        assert.strictEqual((yield* samplesOf(experiment)).length, 4)
        const missing = (yield* samplesOf(experiment)).find((sample) => sample.sampleId === 2)!
        assert.match(missing.error!, /produced no record/)
        assert.strictEqual(experiment.metrics.numErrors, 1)
      }).pipe(Effect.provide(stack({ behaviour: { skip: (id) => id === 2 } }).layer)))

    it.effect("a finished run is read and resumed from its record: no sample is read back", () => {
      const counting = countingTaskStore()
      return Effect.gen(function*() {
        const engine = yield* Engine.Engine
        const experiment = yield* engine.evaluate({ datasetId: "qa", split: "train", candidate })
        assert.strictEqual(experiment.metrics.numSamples, 20)
        counting.reads.samples = 0
        const resumed = yield* engine.resume(experiment.run.runId)
        const read = yield* engine.experiment(experiment.run.runId)
        assert.strictEqual(counting.reads.samples, 0, "a finished run's samples were read")
        assert.deepStrictEqual(resumed.metrics, experiment.metrics)
        assert.deepStrictEqual(read.metrics, experiment.metrics)
        assert.deepInclude(read.run.progress, { samples: 20, errors: 0, scored: 20 })
        // a replayed key answers from the record too
        const keyed = yield* engine.evaluate({ datasetId: "qa", split: "train", candidate, idempotencyKey: "k" })
        counting.reads.samples = 0
        const replay = yield* engine.evaluate({ datasetId: "qa", split: "train", candidate, idempotencyKey: "k" })
        assert.strictEqual(counting.reads.samples, 0)
        assert.deepStrictEqual(replay.metrics, keyed.metrics)
      }).pipe(Effect.provide(stack({ store: counting.layer }).layer))
    })

    it.effect("the engine publishes a run's start and finish, with the counts a resume starts from", () => {
      const gate = Effect.runSync(Deferred.make<void>())
      const { layer } = stack({ behaviour: { gate, failCalls: 1 } })
      return Effect.gen(function*() {
        const engine = yield* Engine.Engine
        const events = yield* RunEvents.RunEvents
        const subscription = yield* events.subscribe
        yield* Deferred.succeed(gate, undefined)
        yield* Effect.flip(engine.evaluate({ datasetId: "qa", split: "train", candidate, numSamples: 6 }))
        const [run] = yield* (yield* TaskStore.TaskStore).listRuns()
        yield* engine.resume(run!.runId)
        const seen = yield* Queue.takeAll(subscription)
        assert.deepStrictEqual(
          Chunk.toArray(seen).map((event) => [event._tag, "done" in event ? event.done : event.runId]),
          [["RunStarted", 0], ["RunStarted", 3], ["RunFinished", run!.runId]]
        )
        const finished = Chunk.toArray(seen)[2]
        assert.deepInclude(finished, { status: "completed" })
      }).pipe(Effect.scoped, Effect.provide(layer))
    })

    it.effect("interruption leaves the run running; resume finishes it without a new charge", () => {
      const gate = Effect.runSync(Deferred.make<void>())
      const { fake, layer } = stack({ behaviour: { gate } })
      return Effect.gen(function*() {
        const engine = yield* Engine.Engine
        const store = yield* TaskStore.TaskStore
        const fiber = yield* Effect.fork(engine.evaluate({ datasetId: "qa", split: "train", candidate, numSamples: 6 }))
        yield* Effect.yieldNow().pipe(Effect.repeat({ until: () => fake.calls.length > 0 }))
        yield* Fiber.interrupt(fiber)
        const [run] = yield* store.listRuns()
        assert.strictEqual(run!.status, "running")
        assert.deepStrictEqual(yield* spentOn("train"), { runs: 1, samples: 6 })
        yield* Deferred.succeed(gate, undefined)
        const resumed = yield* engine.resume(run!.runId)
        assert.strictEqual(resumed.run.status, "completed")
        assert.strictEqual((yield* samplesOf(resumed)).length, 6)
        assert.deepStrictEqual(yield* spentOn("train"), { runs: 1, samples: 6 })
        // resuming a finished run returns it without producing again
        const calls = fake.calls.length
        const again = yield* engine.resume(run!.runId)
        assert.deepStrictEqual(again, resumed)
        assert.strictEqual(fake.calls.length, calls)
      }).pipe(Effect.provide(layer))
    })

    it.effect("a repeated idempotencyKey of an interrupted run resumes it, charging nothing", () => {
      const gate = Effect.runSync(Deferred.make<void>())
      const { fake, layer } = stack({ behaviour: { gate } })
      return Effect.gen(function*() {
        const engine = yield* Engine.Engine
        const request = { datasetId: "qa", split: "train", candidate, numSamples: 6, idempotencyKey: "resume-me" }
        const fiber = yield* Effect.fork(engine.evaluate(request))
        yield* Effect.yieldNow().pipe(Effect.repeat({ until: () => fake.calls.length > 0 }))
        const exit = yield* Fiber.interrupt(fiber)
        assert.isTrue(Exit.isInterrupted(exit))
        yield* Deferred.succeed(gate, undefined)
        const experiment = yield* engine.evaluate(request)
        assert.strictEqual(experiment.run.status, "completed")
        assert.strictEqual((yield* samplesOf(experiment)).length, 6)
        assert.deepStrictEqual(yield* spentOn("train"), { runs: 1, samples: 6 })
      }).pipe(Effect.provide(layer))
    })

    it.effect("a StrategyError leaves the run running with what it produced; resume finishes it, uncharged", () => {
      const { fake, layer } = stack({ behaviour: { failCalls: 1 } })
      return Effect.gen(function*() {
        const engine = yield* Engine.Engine
        const store = yield* TaskStore.TaskStore
        const error = yield* expectFailure(
          engine.evaluate({ datasetId: "qa", split: "train", candidate, numSamples: 6 })
        )
        assert.strictEqual(error._tag, "StrategyError")
        const [run] = yield* store.listRuns()
        assert.strictEqual(run!.status, "running")
        assert.deepStrictEqual(
          (yield* store.listSamples(run!.runId, { limit: 100 })).map((sample) => sample.sampleId),
          [0, 2, 4]
        )
        const resumed = yield* engine.resume(run!.runId)
        assert.strictEqual(resumed.run.status, "completed")
        assert.strictEqual((yield* samplesOf(resumed)).length, 6)
        assert.deepStrictEqual(fake.produced, [0, 2, 4, 1, 3, 5])
        assert.deepStrictEqual(yield* spentOn("train"), { runs: 1, samples: 6 })
      }).pipe(Effect.provide(layer))
    })

    it.effect("resume of an unknown run is InvalidRequest", () =>
      Effect.gen(function*() {
        const engine = yield* Engine.Engine
        const error = yield* expectFailure(engine.resume("nope"))
        assert.strictEqual(error._tag, "InvalidRequest")
      }).pipe(Effect.provide(stack().layer)))
  })

  describe("admin (verifier) path", () => {
    it.effect("skips the tier gate, the subset floor and the ledger, and is recorded as admin", () =>
      Effect.gen(function*() {
        const engine = yield* Engine.Engine
        const hidden = yield* engine.evaluate({ datasetId: "qa", split: "test", candidate }, { admin: true })
        assert.strictEqual(hidden.run.admin, true)
        assert.strictEqual(hidden.run.reservationId, undefined)
        assert.strictEqual((yield* samplesOf(hidden)).length, 8)
        const small = yield* engine.evaluate({ datasetId: "qa", split: "validation", candidate, sampleIds: [1] }, {
          admin: true
        })
        assert.strictEqual((yield* samplesOf(small)).length, 1)
        yield* engine.evaluate({ datasetId: "qa", split: "validation", candidate }, { admin: true })
        yield* engine.evaluate({ datasetId: "qa", split: "validation", candidate }, { admin: true })
        const store = yield* TaskStore.TaskStore
        assert.strictEqual((yield* store.listRuns()).length, 4)
        const ledger = yield* Ledger.Ledger
        assert.strictEqual((yield* ledger.reservations()).length, 0)
        for (const snapshot of yield* ledger.status()) assert.deepStrictEqual(snapshot.spent, { runs: 0, samples: 0 })
      }).pipe(Effect.provide(stack({ budgets: [{ datasetId: "qa", split: "validation", runs: 1 }] }).layer)))

    it.effect("still validates the split and the samples", () =>
      Effect.gen(function*() {
        const unknown = yield* failureTag({ datasetId: "qa", split: "dev", candidate }, { admin: true })
        assert.strictEqual(unknown._tag, "UnknownSplit")
        const both = yield* failureTag({ datasetId: "qa", split: "test", candidate, sampleIds: [1], numSamples: 1 }, {
          admin: true
        })
        assert.strictEqual(both._tag, "InvalidRequest")
        const range = yield* failureTag({ datasetId: "qa", split: "test", candidate, sampleIds: [8] }, { admin: true })
        assert.strictEqual(range._tag, "InvalidRequest")
        yield* assertNothingCharged
      }).pipe(Effect.provide(stack().layer)))
  })
})

describe("Engine.evaluate — free evaluations (a free baseline)", () => {
  it.effect("charge nothing and are the optimizer's: recorded without a reservation, not as admin", () =>
    Effect.gen(function*() {
      const engine = yield* Engine.Engine
      const experiment = yield* engine.evaluate({ datasetId: "qa", split: "validation", candidate }, { free: true })
      assert.strictEqual(experiment.run.admin, false)
      assert.strictEqual(experiment.run.reservationId, undefined)
      // an optimizer's run of a non_viewable split: whole blocks, told at block level
      assert.isDefined(experiment.metrics.blocks)
      const ledger = yield* Ledger.Ledger
      assert.strictEqual((yield* ledger.reservations()).length, 0)
      assert.deepStrictEqual(yield* spentOn("validation"), { runs: 0, samples: 0 })
      // also when the budget is spent: it costs nothing
      for (let index = 0; index < 3; index++) {
        yield* engine.evaluate({ datasetId: "qa", split: "validation", candidate, numSamples: 5 })
      }
      const again = yield* engine.evaluate({ datasetId: "qa", split: "validation", candidate }, { free: true })
      assert.strictEqual(again.run.reservationId, undefined)
    }).pipe(Effect.provide(stack().layer)))

  it.effect("keep every other rule of the optimizer's path: tier gate, subset floor, budgeted splits only", () =>
    Effect.gen(function*() {
      const free = { free: true }
      assert.strictEqual((yield* failureTag({ datasetId: "qa", split: "test", candidate }, free))._tag, "AccessDenied")
      assert.strictEqual(
        (yield* failureTag({ datasetId: "qa", split: "validation", candidate, numSamples: 2 }, free))._tag,
        "SubsetTooSmall"
      )
      assert.strictEqual(
        (yield* failureTag({ datasetId: "qa", split: "validation", candidate, sampleIds: [1, 2, 3, 4, 5] }, free))._tag,
        "InvalidRequest"
      )
      // "train" is viewable but not budgeted here: free opens no split the optimizer could not evaluate
      assert.strictEqual(
        (yield* failureTag({ datasetId: "qa", split: "train", candidate }, free))._tag,
        "SplitNotBudgeted"
      )
      yield* assertNothingCharged
    }).pipe(Effect.provide(stack({ budgets: [{ datasetId: "qa", split: "validation", runs: 1 }] }).layer)))
})

describe("Engine.evaluate — a budget's reservedForFinalize", () => {
  const reserving = [
    {
      datasetId: "qa",
      split: "validation",
      runs: 3,
      samples: 30,
      maxSamplesPerRun: 5,
      reservedForFinalize: { runs: 1 }
    }
  ]
  it.effect("the optimizer is refused at the reserve; the verifier's evaluations spend it, whole split and all", () =>
    Effect.gen(function*() {
      const engine = yield* Engine.Engine
      yield* engine.evaluate({ datasetId: "qa", split: "validation", candidate, numSamples: 5 })
      yield* engine.evaluate({ datasetId: "qa", split: "validation", candidate, numSamples: 5 })
      const refused = yield* failureTag({ datasetId: "qa", split: "validation", candidate, numSamples: 5 })
      assert.deepInclude(refused, { _tag: "BudgetExhausted", reason: "runs", remaining: 0 })
      const status = (yield* engine.status()).find((entry) => entry.split === "validation")!
      assert.deepStrictEqual(status.remaining, { runs: 0, samples: 20 })
      assert.deepStrictEqual(status.reserved, { runs: 1, samples: 0 })
      // the verifier's re-score: the whole split (10), over the optimizer's per-run cap, charged to the reserve
      const rescore = yield* engine.evaluate({ datasetId: "qa", split: "validation", candidate }, { admin: true })
      assert.strictEqual(rescore.run.reservationId, rescore.run.runId)
      assert.deepStrictEqual(yield* spentOn("validation"), { runs: 3, samples: 20 })
      // the reserve is spent: the verifier is refused too, and the limit holds
      const over = yield* failureTag({ datasetId: "qa", split: "validation", candidate }, { admin: true })
      assert.deepInclude(over, { _tag: "BudgetExhausted", reason: "runs" })
      // a split without a reserve stays unmetered for the verifier
      const hidden = yield* engine.evaluate({ datasetId: "qa", split: "test", candidate }, { admin: true })
      assert.strictEqual(hidden.run.reservationId, undefined)
      assert.strictEqual((yield* Ledger.Ledger.pipe(Effect.flatMap((ledger) => ledger.reservations()))).length, 3)
    }).pipe(Effect.provide(stack({ budgets: reserving }).layer)))
})

describe("Engine.status and construction", () => {
  it.effect("status lists every budgeted split with its tier, in configured order", () =>
    Effect.gen(function*() {
      const engine = yield* Engine.Engine
      yield* engine.evaluate({ datasetId: "qa", split: "train", candidate, numSamples: 2 })
      const status = yield* engine.status()
      assert.deepStrictEqual(status.map((entry) => [entry.split, entry.tier, entry.evaluable]), [
        ["train", "viewable", true],
        ["validation", "non_viewable", true],
        ["tiny", "non_viewable", true],
        ["empty", "viewable", true]
      ])
      assert.deepStrictEqual(status[0]!.remaining, { runs: 9, samples: 98 })
    }).pipe(Effect.provide(stack().layer)))

  it.effect("rejects a bad subset floor or error-rate threshold with ConfigError", () =>
    Effect.gen(function*() {
      for (
        const options of [{ subsetFloor: 0 }, { subsetFloor: 2.5 }, { errorRateThreshold: 0 }, {
          errorRateThreshold: 2
        }]
      ) {
        const error = yield* expectFailure(Effect.provide(Engine.Engine, stack({ engine: options }).unsafeLayer))
        assert.strictEqual(error._tag, "ConfigError")
      }
    }))
})
