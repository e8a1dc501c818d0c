import { assert, describe, it } from "@effect/vitest"
import { expectFailure } from "@holdout/testkit"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Engine from "../src/Engine.js"
import * as Blocks from "../src/internal/blocks.js"
import type { Experiment } from "../src/Model.js"
import * as SampleIds from "../src/SampleIds.js"
import * as SplitAccess from "../src/SplitAccess.js"
import * as TaskStore from "../src/TaskStore.js"
import * as View from "../src/View.js"
import { candidate, samplesOf, stack } from "./fixtures.js"

const perSampleFields = new Set([
  "samples",
  "sampleIds",
  "sampleId",
  "input",
  "output",
  "error",
  "errorTrace",
  "trace",
  "feedback",
  "evalError",
  "evalTrace",
  "score"
])

/** Every key of a JSON value, with the path it sits at. */
const walk = (value: unknown, path: string, visit: (key: string, path: string, value: unknown) => void): void => {
  if (Array.isArray(value)) {
    value.forEach((item, index) => walk(item, `${path}[${index}]`, visit))
  } else if (typeof value === "object" && value !== null) {
    for (const [key, item] of Object.entries(value)) {
      visit(key, `${path}.${key}`, item)
      walk(item, `${path}.${key}`, visit)
    }
  }
}

const evaluateOn = (split: string, numSamples: number) =>
  Effect.flatMap(Engine.Engine, (engine) => engine.evaluate({ datasetId: "qa", split, candidate, numSamples }))

describe("View", () => {
  it.effect("non_viewable: the projected JSON holds no sample id and no per-sample field", () =>
    Effect.gen(function*() {
      const experiment = yield* evaluateOn("validation", 5)
      const view = yield* View.experiment(experiment)
      assert.strictEqual(view._tag, "non_viewable")
      const json: unknown = JSON.parse(JSON.stringify(view))
      const sampleIds = new Set(experiment.run.sampleIds)
      const samples = yield* samplesOf(experiment)
      let keys = 0
      walk(json, "$", (key, path, value) => {
        keys++
        assert.isFalse(perSampleFields.has(key), `per-sample field at ${path}`)
        assert.notMatch(key, /^sample/i, `sample key at ${path}`)
        if (Array.isArray(value)) assert.fail(`no list belongs in a summary, found one at ${path}`)
        if (typeof value === "string") {
          for (const sample of samples) {
            if (typeof sample.output === "string") assert.notInclude(value, sample.output, `output leaked at ${path}`)
          }
        }
      })
      assert.isAbove(keys, 5)
      // the only numbers are aggregates and times: none of them lists which samples were used
      assert.deepStrictEqual(Object.keys((json as { summary: object }).summary).sort(), [
        "candidateId",
        "candidateLabel",
        "createdAt",
        "datasetId",
        "finishedAt",
        "metrics",
        "runId",
        "split",
        "status"
      ])
      assert.strictEqual(sampleIds.size, 5)
    }).pipe(Effect.provide(stack().layer)))

  it.effect("viewable: the summary and the run; every per-sample record in pages with a cursor", () =>
    Effect.gen(function*() {
      const engine = yield* Engine.Engine
      const experiment = yield* evaluateOn("train", 4)
      const view = yield* View.experiment(experiment)
      assert.strictEqual(view._tag, "viewable")
      if (view._tag !== "viewable") return
      assert.deepStrictEqual(SampleIds.toArray(view.run.sampleIds), [0, 1, 2, 3])
      assert.strictEqual(view.summary.metrics.numSamples, 4)
      const all = yield* samplesOf(experiment)
      const first = yield* View.samplePage(
        experiment.run,
        "viewable",
        yield* engine.samples(experiment.run.runId, { limit: 3 }),
        3
      )
      assert.deepStrictEqual(first, { runId: experiment.run.runId, samples: all.slice(0, 3), next: 2 })
      const rest = yield* engine.samples(experiment.run.runId, { after: first.next!, limit: 3 })
      assert.deepStrictEqual(yield* View.samplePage(experiment.run, "viewable", rest, 3), {
        runId: experiment.run.runId,
        samples: all.slice(3),
        next: null
      })
    }).pipe(Effect.provide(stack().layer)))

  it.effect("a page of per-sample records is AccessDenied on non_viewable and no_access splits", () =>
    Effect.gen(function*() {
      const engine = yield* Engine.Engine
      const experiment = yield* evaluateOn("validation", 5)
      const page = yield* engine.samples(experiment.run.runId, { limit: 10 })
      for (const tier of ["non_viewable", "no_access"] as const) {
        const denied = yield* expectFailure(View.samplePage(experiment.run, tier, page, 10))
        assert.strictEqual(denied._tag, "AccessDenied")
        // the message says why: per-sample data of a non_viewable split, or a split not to be seen at all
        assert.include(denied.message, `is ${tier}`)
      }
      assert.strictEqual((yield* expectFailure(engine.samples("no-such-run", { limit: 1 })))._tag, "InvalidRequest")
    }).pipe(Effect.provide(stack().layer)))

  it.effect("no_access (and unlisted): AccessDenied, by the one fail-closed resolver", () =>
    Effect.gen(function*() {
      const engine = yield* Engine.Engine
      const hidden = yield* engine.evaluate({ datasetId: "qa", split: "test", candidate }, { admin: true })
      const denied = yield* expectFailure(View.experiment(hidden))
      assert.deepStrictEqual(denied._tag, "AccessDenied")
      const unlisted: Experiment = { ...hidden, run: { ...hidden.run, split: "holdout" } }
      const alsoDenied = yield* expectFailure(View.project(unlisted, SplitAccess.resolve([], "holdout")))
      assert.strictEqual(alsoDenied._tag, "AccessDenied")
    }).pipe(Effect.provide(stack().layer)))

  it.effect("runSummaryFields: a run's identity and course, the fields a summary starts with, nothing of its scores", () =>
    Effect.gen(function*() {
      const experiment = yield* evaluateOn("validation", 5)
      const { run } = experiment
      const fields = View.runSummaryFields(run)
      assert.deepStrictEqual(fields, {
        runId: run.runId,
        candidateId: "abc123",
        candidateLabel: "baseline",
        datasetId: "qa",
        split: "validation",
        status: "completed",
        createdAt: run.createdAt,
        finishedAt: run.finishedAt!
      })
      const { metrics: _metrics, ...rest } = View.summarize(experiment)
      assert.deepStrictEqual(Object.keys(rest), Object.keys(fields))
      // without a label or an end, those fields are absent, not undefined
      const { finishedAt: _finishedAt, ...running } = run
      const bare = View.runSummaryFields({ ...running, status: "running", candidate: { id: "c" } })
      assert.isFalse("candidateLabel" in bare)
      assert.isFalse("finishedAt" in bare)
    }).pipe(Effect.provide(stack().layer)))

  it.effect("datasetInfo leaves out no_access and unlisted splits", () =>
    Effect.gen(function*() {
      const info = yield* View.datasetInfo({ datasetId: "qa", splits: { train: 20, validation: 10, test: 8, x: 1 } })
      assert.deepStrictEqual(info, { datasetId: "qa", splits: { train: 20, validation: 10 } })
    }).pipe(
      Effect.provide(SplitAccess.layer({ train: "viewable", validation: "non_viewable", test: "no_access" })),
      Effect.provide(Layer.empty)
    ))
})

describe("SplitAccess", () => {
  it("resolves exact, case-sensitive names and fails closed", () => {
    const entries = [{ split: "train", tier: "viewable" as const }, {
      split: "validation",
      tier: "non_viewable" as const
    }]
    assert.strictEqual(SplitAccess.resolve(entries, "train"), "viewable")
    assert.strictEqual(SplitAccess.resolve(entries, "Train"), "no_access")
    assert.strictEqual(SplitAccess.resolve(entries, "train "), "no_access")
    assert.strictEqual(SplitAccess.resolve([], "train"), "no_access")
  })

  it.effect("rejects an unknown tier and conflicting duplicates with ConfigError", () =>
    Effect.gen(function*() {
      const badTier = yield* expectFailure(SplitAccess.normalize({ train: "visible" } as never))
      assert.include(badTier.message, "visible")
      const conflict = yield* expectFailure(
        SplitAccess.normalize([{ split: "a", tier: "viewable" }, { split: "a", tier: "no_access" }])
      )
      assert.strictEqual(conflict._tag, "ConfigError")
    }))
})

describe("View of a non_viewable run's spread", () => {
  it.effect("is at block level: from the sums of whole blocks, never the per-sample spread", () =>
    Effect.gen(function*() {
      const engine = yield* Engine.Engine
      const store = yield* TaskStore.TaskStore
      // the fake strategy fails every third sample; the whole split is two blocks of five
      const experiment = yield* engine.evaluate({ datasetId: "qa", split: "validation", candidate })
      const blocks = experiment.metrics.blocks!
      assert.strictEqual(blocks.count, 2)
      // the cluster standard error, worked out here from the store's secret blocks
      const secret = Option.getOrThrow(yield* store.getMeta(Engine.blockSecretKey))
      const partition = yield* Blocks.partition(secret, "qa", "validation", 10, 5)
      const scores = new Map((yield* samplesOf(experiment)).map((sample) => [sample.sampleId, sample.score ?? 0]))
      const sums = partition.map((block) => block.reduce((sum, id) => sum + (scores.get(id) ?? 0), 0))
      const mean = sums.reduce((a, b) => a + b, 0) / 10
      const expected = Math.sqrt(2 * sums.reduce((total, sum) => total + (sum - 5 * mean) ** 2, 0)) / 10
      assert.closeTo(blocks.standardError!, expected, 1e-12)
      assert.closeTo(blocks.interval!.upper - mean, 12.706204736 * expected, 1e-9)
      const view = yield* View.experiment(experiment)
      assert.strictEqual(view._tag, "non_viewable")
      if (view._tag === "non_viewable" && "metrics" in view.summary) {
        assert.strictEqual(view.summary.metrics.standardError, blocks.standardError)
        assert.deepStrictEqual(view.summary.metrics.interval, blocks.interval)
        assert.isFalse("blocks" in view.summary.metrics)
      } else assert.fail("a non_viewable view with metrics was expected")
      // read again from the store, and replayed by its key, the run tells the same block-level spread
      assert.deepStrictEqual((yield* engine.experiment(experiment.run.runId)).metrics, experiment.metrics)
      const keyed = { datasetId: "qa", split: "validation", candidate, idempotencyKey: "spread" }
      const first = yield* engine.evaluate(keyed)
      assert.deepStrictEqual((yield* engine.evaluate(keyed)).metrics, first.metrics)
      assert.isDefined(first.metrics.blocks)
    }).pipe(Effect.provide(stack({ behaviour: { fail: (id) => id % 3 === 2 } }).layer)))
})
