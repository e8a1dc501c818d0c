/**
 * Under `exact`, a run's 95% interval covers the population mean at the nominal rate.
 *
 * Every property run simulates `trials` runs of n samples drawn from a known population (seeded),
 * builds each run's metrics the way the engine does (`Metrics.addToProgress`, then
 * `Metrics.fromProgress`) and counts the intervals that cover the population's mean.
 *
 * Tolerances: with 2,000 trials the simulated coverage has a standard deviation of
 * sqrt(0.95 · 0.05 / 2000) ≈ 0.0049, so four of them (0.0195) leave a seeded run a chance below
 * 1e-4 of failing by simulation noise alone. To that is added how far the t interval's own coverage
 * is from 0.95 on these populations: for continuous scores at n ≥ 30 skewness costs at most half a
 * point (0.005; a 20,000-trial simulation of u² gives 0.945 at n = 30); for pass/fail scores the
 * interval is Wald's, whose coverage oscillates with n and p (Brown, Cai & DasGupta, Statistical
 * Science 2001) down to about 0.935 for p in [0.2, 0.8] and n in [100, 400] (0.015). Pooled over all
 * property runs the noise is small (40,000 trials: 0.0011), so the pooled coverage is held to
 * ±0.01.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Engine from "../src/Engine.js"
import * as Statistics from "../src/internal/statistics.js"
import * as Metrics from "../src/Metrics.js"
import * as Stack from "../src/Stack.js"
import * as Task from "../src/Task.js"

const trials = 2000
const noise = 4 * Math.sqrt(0.95 * 0.05 / trials)

/** The share of `trials` simulated runs whose interval covers `mean`; `draw` gives one sample. */
const coverage = (
  n: number,
  mean: number,
  draw: () => { readonly score?: number; readonly error?: string }
): number => {
  let covered = 0
  for (let trial = 0; trial < trials; trial++) {
    let progress = Metrics.emptyProgress
    for (let index = 0; index < n; index++) progress = Metrics.addToProgress(progress, draw())
    const interval = Metrics.fromProgress(progress).interval!
    if (interval.lower <= mean && mean <= interval.upper) covered++
  }
  return covered / trials
}

const pooled = { covered: 0, trials: 0 }

describe("Coverage of a run's 95% interval under exact", () => {
  it.prop(
    "continuous scores with errors (filled 0): score u^k with probability 1 − e, else an error",
    [
      FastCheck.integer({ min: 30, max: 300 }),
      FastCheck.double({ min: 0.5, max: 3, noNaN: true }),
      FastCheck.double({ min: 0, max: 0.2, noNaN: true }),
      FastCheck.integer()
    ],
    ([n, power, errorRate, seed]) => {
      const random = Statistics.seeded(seed)
      // E[u^k] = 1 / (k + 1), and an error counts 0
      const mean = (1 - errorRate) / (power + 1)
      const rate = coverage(n, mean, () => random() < errorRate ? { error: "boom" } : { score: random() ** power })
      pooled.covered += rate * trials
      pooled.trials += trials
      assert.closeTo(rate, 0.95, noise + 0.005, `n ${n}, k ${power}, e ${errorRate}`)
    },
    { fastCheck: { seed: 11, numRuns: 10 } }
  )

  it.prop(
    "pass/fail scores: Bernoulli(p)",
    [
      FastCheck.integer({ min: 100, max: 400 }),
      FastCheck.double({ min: 0.2, max: 0.8, noNaN: true }),
      FastCheck.integer()
    ],
    ([n, p, seed]) => {
      const random = Statistics.seeded(seed)
      const rate = coverage(n, p, () => ({ score: random() < p ? 1 : 0 }))
      pooled.covered += rate * trials
      pooled.trials += trials
      assert.closeTo(rate, 0.95, noise + 0.015, `n ${n}, p ${p}`)
    },
    { fastCheck: { seed: 12, numRuns: 10 } }
  )

  it("pooled over every simulated run, the coverage is 0.95 within a point", () => {
    assert.strictEqual(pooled.trials, 20 * trials)
    assert.closeTo(pooled.covered / pooled.trials, 0.95, 0.01)
  })

  it.effect("through the engine: runs of random subsets of a split cover the split's mean", () => {
    // a split of 20,000 rows with seeded scores u² (mean about 1/3); 300 runs of 40 random samples
    const random = Statistics.seeded(3)
    const rows = Array.from({ length: 20_000 }, (_, id) => ({ id, score: random() ** 2 }))
    const mean = rows.reduce((sum, row) => sum + row.score, 0) / rows.length
    const runs = 300
    const layer = Stack.layerMemory({
      budgets: [{ datasetId: "population", split: "train", runs }],
      policy: { train: "viewable" },
      datasets: { population: { train: rows } },
      task: Task.make<{ readonly id: number; readonly score: number }, null>({
        name: "population",
        infer: () => null,
        score: (row) => row.score
      })
    })
    return Effect.gen(function*() {
      const engine = yield* Engine.Engine
      let covered = 0
      for (let run = 0; run < runs; run++) {
        const picked = new Set<number>()
        while (picked.size < 40) picked.add(Math.floor(random() * rows.length))
        const experiment = yield* engine.evaluate({
          datasetId: "population",
          split: "train",
          candidate: { id: "c" },
          sampleIds: [...picked]
        })
        const interval = experiment.metrics.interval!
        if (interval.lower <= mean && mean <= interval.upper) covered++
      }
      // 300 runs: a standard deviation of 0.0126, four of them 0.05, and u² costs half a point at n = 40
      assert.closeTo(covered / runs, 0.95, 0.055)
    }).pipe(Effect.provide(layer), Effect.orDie)
  })
})
