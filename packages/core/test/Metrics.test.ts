import { assert, describe, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as Statistics from "../src/internal/statistics.js"
import * as Metrics from "../src/Metrics.js"

const sample = (score: number | undefined, error?: string) => ({
  ...(score === undefined ? {} : { score }),
  ...(error === undefined ? {} : { error })
})

describe("Metrics", () => {
  it("counts errors as 0 in the filled mean and gives its standard error and 95% t interval", () => {
    // scores 1, 0.5, 0 (an error), 0.5 and a success without a score (0): filled mean 0.4
    const metrics = Metrics.compute([sample(1), sample(0.5), sample(0.7, "boom"), sample(0.5), sample(undefined)])
    assert.deepInclude(metrics, { numSamples: 5, numErrors: 1, numSuccesses: 4, numScored: 3, errorRate: 0.2 })
    assert.closeTo(metrics.avgFilledScore, 0.4, 1e-12)
    assert.closeTo(metrics.avgScore!, 0.5, 1e-12)
    // sample variance of [1, 0.5, 0, 0.5, 0] is 0.175; the standard error is sqrt(0.175 / 5)
    assert.closeTo(metrics.standardError!, Math.sqrt(0.175 / 5), 1e-12)
    const half = 2.776445105 * Math.sqrt(0.175 / 5)
    assert.closeTo(metrics.interval!.lower, 0.4 - half, 1e-9)
    assert.closeTo(metrics.interval!.upper, 0.4 + half, 1e-9)
  })

  it("has no spread below two samples", () => {
    assert.deepInclude(Metrics.compute([sample(1)]), { standardError: null, interval: null })
    assert.deepInclude(Metrics.compute([]), { numSamples: 0, avgScore: null, errorRate: 1, interval: null })
  })

  it("the t quantiles match the tables, and approach the normal's", () => {
    assert.closeTo(Statistics.tQuantile975(1), 12.7062, 1e-4)
    assert.closeTo(Statistics.tQuantile975(10), 2.2281, 1e-4)
    assert.closeTo(Statistics.tQuantile975(40), 2.0211, 1e-3)
    assert.closeTo(Statistics.tQuantile975(120), 1.9799, 1e-3)
    assert.closeTo(Statistics.tQuantile975(1e6), 1.96, 1e-3)
  })

  it.prop(
    "the metrics from a run's progress are those of its samples, whatever was replaced on the way",
    [FastCheck.array(
      FastCheck.tuple(
        FastCheck.integer({ min: 0, max: 9 }),
        FastCheck.option(FastCheck.double({ min: 0, max: 1, noNaN: true })),
        FastCheck.boolean()
      ),
      { maxLength: 60 }
    )],
    ([writes]) => {
      const current = new Map<number, ReturnType<typeof sample>>()
      let progress = Metrics.emptyProgress
      for (const [id, score, failed] of writes) {
        const next = sample(score ?? undefined, failed ? "x" : undefined)
        const previous = current.get(id)
        if (previous !== undefined) progress = Metrics.addToProgress(progress, previous, -1)
        progress = Metrics.addToProgress(progress, next)
        current.set(id, next)
      }
      const fromProgress = Metrics.fromProgress(progress)
      const direct = Metrics.compute(current.values())
      assert.deepStrictEqual(
        { ...fromProgress, avgScore: 0, avgFilledScore: 0, standardError: 0, interval: null },
        { ...direct, avgScore: 0, avgFilledScore: 0, standardError: 0, interval: null }
      )
      assert.closeTo(fromProgress.avgFilledScore, direct.avgFilledScore, 1e-9)
      if (direct.standardError !== null) assert.closeTo(fromProgress.standardError!, direct.standardError, 1e-6)
    }
  )
})
