import { assert, describe, it } from "@effect/vitest"
import { expectFailure, makeRun, makeSample } from "@holdout/testkit"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Compare from "../src/Compare.js"
import * as SplitAccess from "../src/SplitAccess.js"
import * as TaskStore from "../src/TaskStore.js"

// Student (1908): extra hours of sleep under two drugs, ten patients (R's `sleep` data set)
const drug1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
const drug2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
const samples = (scores: ReadonlyArray<number>) => scores.map((score, sampleId) => ({ sampleId, score }))

describe("Compare.paired", () => {
  it("Student's sleep data: paired t = 4.06, p = 0.0028; the exact sign-flip test and the bootstrap agree", () => {
    const result = Compare.paired(samples(drug2), samples(drug1))
    assert.strictEqual(result.shared, 10)
    assert.closeTo(result.difference, 1.58, 1e-12)
    assert.closeTo(result.t!, 4.0621, 1e-4)
    assert.closeTo(result.tPValue!, 0.002833, 1e-5)
    assert.closeTo(result.tInterval!.lower, 0.7001, 1e-4)
    assert.closeTo(result.tInterval!.upper, 2.4599, 1e-4)
    // one difference is 0; of the 2^9 sign patterns of the others only "all +" and "all -" reach |15.8|
    assert.isTrue(result.exact)
    assert.strictEqual(result.pValue, 2 / 512)
    assert.strictEqual(result.pValueGreater, 1 / 512)
    // The percentile bootstrap interval covers the t interval's centre. It is narrower at n = 10 (it uses
    // the normal quantile and the plug-in deviation: about 0.82 of the t half-width, 0.16 hours here) and
    // leans right with the 4.6-hour patient; 0.35 hours bounds both plus the resampling error (~0.02).
    assert.isTrue(result.interval!.lower < 1.58 && 1.58 < result.interval!.upper)
    assert.closeTo(result.interval!.lower, result.tInterval!.lower, 0.35)
    assert.closeTo(result.interval!.upper, result.tInterval!.upper, 0.35)
  })

  it("is seeded: the same seed gives the same interval and p-values, another seed other draws", () => {
    const a = samples(Array.from({ length: 40 }, (_, index) => ((index * 37) % 11) / 10))
    const b = samples(Array.from({ length: 40 }, (_, index) => ((index * 17) % 13) / 12))
    const first = Compare.paired(a, b, { seed: 7 })
    assert.deepStrictEqual(Compare.paired(a, b, { seed: 7 }), first)
    assert.isFalse(first.exact)
    assert.notDeepEqual(Compare.paired(a, b, { seed: 8 }).interval, first.interval)
  })

  it("sampled sign flips agree with the t test on many samples", () => {
    // a shift of 0.1 in noise of unit spread, 200 pairs
    let state = 12345
    const noise = () => {
      state = (state * 1103515245 + 12345) % 2147483648
      return state / 2147483648 - 0.5
    }
    const a = samples(Array.from({ length: 200 }, () => 0.5 + noise() + 0.05))
    const b = samples(Array.from({ length: 200 }, () => 0.5 + noise()))
    const result = Compare.paired(a, b, { permutations: 20_000 })
    assert.closeTo(result.pValue!, result.tPValue!, 0.02)
  })

  it("pairs samples by id, counts errors as 0, and ignores samples only one side has", () => {
    const a = [{ sampleId: 3, score: 1 }, { sampleId: 1, score: 0.5, error: "boom" }, { sampleId: 9, score: 1 }]
    const b = [{ sampleId: 1, score: 0.25 }, { sampleId: 3, score: 0 }, { sampleId: 4, score: 1 }]
    const result = Compare.paired(a, b)
    assert.strictEqual(result.shared, 2)
    assert.closeTo(result.meanA, 0.5, 1e-12)
    assert.closeTo(result.meanB, 0.125, 1e-12)
    assert.closeTo(result.difference, 0.375, 1e-12)
    assert.deepInclude(Compare.paired([], b), { shared: 0, interval: null, pValue: null })
  })
})

describe("Compare.runs", () => {
  const store = TaskStore.layerMemory
  const access = SplitAccess.layer({ train: "viewable", validation: "non_viewable" })
  const stored = Effect.gen(function*() {
    const tasks = yield* TaskStore.TaskStore
    const runs = [
      makeRun("a", { sampleIds: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] }),
      makeRun("b", { sampleIds: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] }),
      makeRun("v", { split: "validation" })
    ]
    for (const run of runs) yield* tasks.createRun(run)
    for (let id = 0; id < 10; id++) {
      yield* tasks.putSample(makeSample("a", id, { score: drug2[id]! }))
      yield* tasks.putSample(makeSample("b", id, { score: drug1[id]! }))
    }
    return runs
  })

  it.effect("compares two stored runs page by page, as the arrays would be", () =>
    Effect.gen(function*() {
      const [a, b] = yield* stored
      const result = yield* Compare.runs(a!, b!)
      assert.deepStrictEqual(result, Compare.paired(samples(drug2), samples(drug1)))
    }).pipe(Effect.provide(Layer.merge(store, access))))

  it.effect("an optimizer compares viewable splits only; runs of two splits are InvalidRequest", () =>
    Effect.gen(function*() {
      const [a, , v] = yield* stored
      assert.strictEqual((yield* expectFailure(Compare.runs(a!, v!)))._tag, "AccessDenied")
      const admin = yield* expectFailure(Compare.runs(a!, v!, { admin: true }))
      assert.strictEqual(admin._tag, "InvalidRequest")
    }).pipe(Effect.provide(Layer.merge(store, access))))
})
