import { assert, describe, it } from "@effect/vitest"
import { expectFailure } from "@holdout/testkit"
import * as Effect from "effect/Effect"
import * as Engine from "../src/Engine.js"
import * as Ledger from "../src/Ledger.js"
import type { EvalRequest, SplitBudget } from "../src/Model.js"
import * as Release from "../src/Release.js"
import * as View from "../src/View.js"
import { stack } from "./fixtures.js"

describe("Release: the answer rules", () => {
  it.effect("noise is drawn from the secret and the draw's name: the same parts, the same number", () =>
    Effect.gen(function*() {
      const first = yield* Release.uniform("secret", "digest", "eta")
      assert.strictEqual(yield* Release.uniform("secret", "digest", "eta"), first)
      assert.notStrictEqual(yield* Release.uniform("secret", "digest", "xi"), first)
      assert.notStrictEqual(yield* Release.uniform("other", "digest", "eta"), first)
      assert.isTrue(first > 0 && first < 1)
    }))

  it.effect("Laplace draws are centred on 0 with mean absolute value the scale", () =>
    Effect.gen(function*() {
      const draws: Array<number> = []
      for (let index = 0; index < 4000; index++) {
        draws.push(Release.laplace(yield* Release.uniform("seed", index), 0.5))
      }
      const mean = draws.reduce((sum, x) => sum + x, 0) / draws.length
      const meanAbs = draws.reduce((sum, x) => sum + Math.abs(x), 0) / draws.length
      assert.closeTo(mean, 0, 0.05)
      assert.closeTo(meanAbs, 0.5, 0.05)
    }))

  it("thresholdout tells the reference mean unless the holdout strays past T + γ + η, then holdout + ξ", () => {
    const mechanism = {
      _tag: "thresholdout" as const,
      reference: "train",
      threshold: 0.04,
      sigma: 0.01,
      overfitBudget: 3
    }
    const noise = { gamma: 0.01, eta: -0.02, xi: 0.003 }
    // the threshold is 0.04 + 0.01 - 0.02 = 0.03
    assert.deepStrictEqual(Release.thresholdoutAnswer(mechanism, 0.62, 0.6, noise), { over: false, mean: 0.6 })
    assert.deepStrictEqual(Release.thresholdoutAnswer(mechanism, 0.575, 0.6, noise), { over: false, mean: 0.6 })
    assert.deepStrictEqual(Release.thresholdoutAnswer(mechanism, 0.64, 0.6, noise), { over: true, mean: 0.643 })
    assert.deepStrictEqual(Release.thresholdoutAnswer(mechanism, 0.5, 0.6, noise), { over: true, mean: 0.503 })
  })

  it("the ladder repeats the best unless beaten by eta, and rounds what it tells to eta", () => {
    const ladder = { _tag: "ladder" as const, eta: 0.05 }
    assert.isTrue(Release.ladderAnswer(ladder, 0.612, undefined).improved)
    assert.closeTo(Release.ladderAnswer(ladder, 0.612, undefined).mean, 0.6, 1e-12)
    assert.deepStrictEqual(Release.ladderAnswer(ladder, 0.64, 0.6), { improved: false, mean: 0.6 })
    assert.deepStrictEqual(Release.ladderAnswer(ladder, 0.5, 0.6), { improved: false, mean: 0.6 })
    assert.strictEqual(Release.ladderAnswer(ladder, 0.66, 0.6).improved, true)
    assert.closeTo(Release.ladderAnswer(ladder, 0.66, 0.6).mean, 0.65, 1e-12)
  })
})

const budgets: ReadonlyArray<SplitBudget> = [
  { datasetId: "qa", split: "train", runs: 20 },
  { datasetId: "qa", split: "validation", runs: 20 }
]
const overfitKey = Release.overfitKey("qa", "validation")
// candidates named "good…" pass every validation sample; "bad…" fail them all; train passes always
const fail = (_sampleId: number, plan: { readonly split: string; readonly candidate: { readonly id: string } }) =>
  plan.split === "validation" && plan.candidate.id.startsWith("bad")
const thresholdout = (overfitBudget: number) => {
  const { layer } = stack({
    budgets,
    behaviour: { fail },
    engine: {
      releases: { validation: { _tag: "thresholdout", reference: "train", threshold: 0.1, sigma: 1e-9, overfitBudget } }
    }
  })
  return Effect.provide(layer)
}
const on = (split: string, candidate: string, extra: Partial<EvalRequest> = {}): EvalRequest => ({
  datasetId: "qa",
  split,
  candidate: { id: candidate },
  ...extra
})

describe("Release: thresholdout through the engine", () => {
  it.effect("refuses, uncharged, a candidate with no mean on the reference split", () =>
    Effect.gen(function*() {
      const engine = yield* Engine.Engine
      const error = yield* expectFailure(engine.evaluate(on("validation", "good")))
      assert.strictEqual(error._tag, "InvalidRequest")
      assert.include(error.message, `"train"`)
      const ledger = yield* Ledger.Ledger
      assert.deepStrictEqual((yield* ledger.get({ datasetId: "qa", split: "validation" })).spent, {
        runs: 0,
        samples: 0
      })
    }).pipe(thresholdout(2)))

  it.effect("tells the reference mean when the holdout agrees; tells the holdout and charges B once when not", () =>
    Effect.gen(function*() {
      const engine = yield* Engine.Engine
      const ledger = yield* Ledger.Ledger
      yield* engine.evaluate(on("train", "good"))
      yield* engine.evaluate(on("train", "bad"))
      const agreed = yield* engine.evaluate(on("validation", "good"))
      assert.deepStrictEqual(agreed.release, { mechanism: "thresholdout", mean: 1 })
      assert.strictEqual((yield* ledger.get(overfitKey)).spent.runs, 0)
      const strayed = yield* engine.evaluate(on("validation", "bad"))
      assert.strictEqual(strayed.release!.mechanism, "thresholdout")
      assert.closeTo(strayed.release!.mean, 0, 1e-6)
      assert.strictEqual((yield* ledger.get(overfitKey)).spent.runs, 1)
      // an identical request, charged as a new run, is told the same and spends no more of B
      const again = yield* engine.evaluate(on("validation", "bad"))
      assert.notStrictEqual(again.run.runId, strayed.run.runId)
      assert.deepStrictEqual(again.release, strayed.release)
      assert.strictEqual((yield* ledger.get(overfitKey)).spent.runs, 1)
      // only the released mean reaches the optimizer
      const view = yield* View.experiment(strayed)
      assert.strictEqual(view._tag, "non_viewable")
      if (view._tag === "non_viewable") {
        assert.isFalse("metrics" in view.summary)
        assert.deepStrictEqual("release" in view.summary ? view.summary.release : undefined, strayed.release)
        assert.strictEqual(View.toldMean(view.summary), strayed.release!.mean)
      }
      // the status shows the overfitting budget with its split, and no split of its own
      const status = yield* engine.status()
      assert.deepStrictEqual(status.find((entry) => entry.split === "validation")?.overfit, {
        limit: 2,
        spent: 1,
        remaining: 1
      })
      assert.isFalse(status.some((entry) => entry.split.includes("#")))
      // and names the mechanism of the split that has one, and of no other
      assert.strictEqual(status.find((entry) => entry.split === "validation")?.release, "thresholdout")
      assert.isFalse(status.some((entry) => entry.split !== "validation" && "release" in entry))
    }).pipe(thresholdout(2)))

  it.effect("a spent overfitting budget is BudgetExhausted (overfit) before anything is charged", () =>
    Effect.gen(function*() {
      const engine = yield* Engine.Engine
      const ledger = yield* Ledger.Ledger
      yield* engine.evaluate(on("train", "bad"))
      yield* engine.evaluate(on("train", "bad-too"))
      yield* engine.evaluate(on("validation", "bad"))
      const before = (yield* ledger.get({ datasetId: "qa", split: "validation" })).spent
      const error = yield* expectFailure(engine.evaluate(on("validation", "bad-too")))
      assert.deepInclude(error, { _tag: "BudgetExhausted", reason: "overfit" })
      assert.deepStrictEqual((yield* ledger.get({ datasetId: "qa", split: "validation" })).spent, before)
    }).pipe(thresholdout(1)))

  it.effect("a mechanism on a split that is not non_viewable, or a reference the optimizer cannot use, is a ConfigError", () =>
    Effect.gen(function*() {
      const onViewable = stack({ engine: { releases: { train: { _tag: "ladder", eta: 0.1 } } } }).unsafeLayer
      const error = yield* expectFailure(Effect.provide(Engine.Engine, onViewable))
      assert.strictEqual(error._tag, "ConfigError")
      const hidden = stack({
        engine: {
          releases: {
            validation: { _tag: "thresholdout", reference: "test", threshold: 0.1, sigma: 0.1, overfitBudget: 1 }
          }
        }
      }).unsafeLayer
      assert.include((yield* expectFailure(Effect.provide(Engine.Engine, hidden))).message, "no_access")
    }))
})

describe("Release: the ladder through the engine", () => {
  it.effect("tells a new best only when it beats the last by eta; a repeat of a request is told the same", () => {
    // candidate "kN" fails N of the 10 validation samples
    const failures = (
      _sampleId: number,
      plan: { readonly split: string; readonly candidate: { readonly id: string } }
    ) => plan.split === "validation" && _sampleId < Number(plan.candidate.id.slice(1))
    const { layer } = stack({
      budgets,
      behaviour: { fail: failures },
      engine: { releases: { validation: { _tag: "ladder", eta: 0.15 } } }
    })
    return Effect.gen(function*() {
      const engine = yield* Engine.Engine
      const told = (candidate: string) =>
        Effect.map(engine.evaluate(on("validation", candidate)), (experiment) => experiment.release!.mean)
      assert.closeTo(yield* told("k5"), 0.45, 1e-12) // 0.5, rounded to a multiple of 0.15
      assert.closeTo(yield* told("k6"), 0.45, 1e-12) // 0.4: the best so far again
      assert.closeTo(yield* told("k4"), 0.6, 1e-12) // 0.6 beats 0.45 by eta
      assert.closeTo(yield* told("k3"), 0.6, 1e-12) // 0.7 does not beat 0.6 by eta
      assert.closeTo(yield* told("k5"), 0.45, 1e-12) // the same request as the first: the same answer
      assert.closeTo(yield* told("k1"), 0.9, 1e-12) // 0.9 does
    }).pipe(Effect.provide(layer))
  })
})
