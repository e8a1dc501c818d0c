/**
 * The stats group of `npm run bench` (opt-in: `npm run bench -- stats`): what the statistics of
 * Holdout buy, measured by seeded, deterministic simulations.
 *
 *   stats/adaptive/*   Dwork et al. (Science 349:636, 2015): labels with no signal, an analyst who
 *                      selects k variables by agreement of train and holdout correlations and
 *                      reports the holdout accuracy of a linear classifier on them; the holdout
 *                      answered exactly, or through thresholdout (`Release.thresholdoutAnswer`).
 *                      At the paper's scale (n = d = 10,000) through the mechanism module, and end
 *                      to end through `Engine.evaluate` at n = d = 500.
 *   stats/race/*       `Select.halving` (the loop of `Select.race`) against exhaustive evaluation.
 *   stats/verifier/*   how often `auto_best` ships a candidate no better than the baseline.
 */
import type { Model } from "@holdout/core"
import { Compare, Engine, Halving, Release, Stack, Task, TaskStore, View } from "@holdout/core"
import * as Effect from "effect/Effect"
import * as Statistics from "../packages/core/src/internal/statistics.js"

interface Result {
  readonly name: string
  readonly value: number
  readonly unit: string
}

const round4 = (value: number) => Math.round(value * 10_000) / 10_000

// ---------------------------------------------------------------------------------------------
// Seeded randomness: a counter-based hash (any entry of a matrix without storing it) and a
// sequential generator (sfc32) for noise.

/** The murmur3 finalizer: a bijection of 32-bit words with full avalanche. */
const fmix = (input: number): number => {
  let h = input | 0
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

/** A uniform number in (0, 1) for (stream, key): the same arguments, the same number. */
const hashUniform = (stream: number, key: number): number =>
  (fmix(fmix(key ^ stream) + Math.imul(stream, 0x9e3779b9)) + 0.5) / 4294967296

/** sfc32 seeded by a number: uniform numbers in [0, 1) (core's own generator). */
const generator = Statistics.seeded

// ---------------------------------------------------------------------------------------------
// The adaptive analyst of Dwork et al.

/**
 * A data set of `n` rows, `d` standard normal variables and a label ±1 independent of them, any
 * entry computed from (stream, row, column) without storing the matrix.
 */
const dataset = (stream: number, n: number, d: number) => {
  const half = d / 2
  // variables 2m and 2m + 1 of a row are the pair of one Box–Muller draw
  const pair = (row: number, m: number, out: Float64Array) => {
    const key = 2 * (row * half + m)
    const radius = Math.sqrt(-2 * Math.log(hashUniform(stream, key)))
    const angle = 2 * Math.PI * hashUniform(stream, key + 1)
    out[0] = radius * Math.cos(angle)
    out[1] = radius * Math.sin(angle)
  }
  const label = (row: number) => (fmix(row ^ Math.imul(stream, 0x27d4eb2f)) & 1) === 1 ? 1 : -1
  const scratch = new Float64Array(2)
  const value = (row: number, column: number) => {
    pair(row, column >> 1, scratch)
    return scratch[column & 1]!
  }
  /** (1/n) Σ x_ij y_i for every variable j. */
  const correlations = () => {
    const sums = new Float64Array(d)
    const out = new Float64Array(2)
    for (let row = 0; row < n; row++) {
      const y = label(row)
      for (let m = 0; m < half; m++) {
        pair(row, m, out)
        sums[2 * m]! += out[0]! * y
        sums[2 * m + 1]! += out[1]! * y
      }
    }
    for (let column = 0; column < d; column++) sums[column]! /= n
    return sums
  }
  /** The accuracy of sign(Σ_j sign_j x_j) on the labels. */
  const accuracy = (variables: ReadonlyArray<number>, signs: ReadonlyArray<number>) => {
    let correct = 0
    for (let row = 0; row < n; row++) {
      let sum = 0
      for (let index = 0; index < variables.length; index++) sum += signs[index]! * value(row, variables[index]!)
      if ((sum >= 0 ? 1 : -1) === label(row)) correct++
    }
    return correct / n
  }
  return { n, d, value, label, correlations, accuracy }
}

/**
 * The analyst: of the variables whose training and (told) holdout correlations both exceed 1/√n in
 * absolute value with the same sign, the k with the largest training correlation; the classifier
 * sums them with the signs of their training correlations.
 */
const analyst = (train: Float64Array, told: ArrayLike<number>, n: number, k: number) => {
  const floor = 1 / Math.sqrt(n)
  const agreeing: Array<number> = []
  for (let column = 0; column < train.length; column++) {
    const a = train[column]!
    const b = told[column]!
    if (Math.abs(a) > floor && Math.abs(b) > floor && Math.sign(a) === Math.sign(b)) agreeing.push(column)
  }
  agreeing.sort((x, y) => Math.abs(train[y]!) - Math.abs(train[x]!) || x - y)
  const variables = agreeing.slice(0, k)
  return { variables, signs: variables.map((column) => Math.sign(train[column]!)), agreeing: agreeing.length }
}

/** Thresholdout as a stateful answerer, its noise from a seeded source (γ redrawn after each over-threshold answer). */
const thresholdout = (mechanism: typeof Release.Thresholdout.Type, seed: number) => {
  const random = generator(seed)
  let gamma = Release.laplace(random(), 2 * mechanism.sigma)
  let over = 0
  const answer = (holdout: number, reference: number) => {
    if (over >= mechanism.overfitBudget) return Number.NaN
    const noise = {
      gamma,
      eta: Release.laplace(random(), 4 * mechanism.sigma),
      xi: Release.laplace(random(), mechanism.sigma)
    }
    const told = Release.thresholdoutAnswer(mechanism, holdout, reference, noise)
    if (told.over) {
      over++
      gamma = Release.laplace(random(), 2 * mechanism.sigma)
    }
    return told.mean
  }
  return { answer, over: () => over }
}

/** The experiment at the paper's scale through the mechanism module. */
const adaptivePaper = (n: number, d: number, k: number, seed: number) =>
  Effect.sync((): ReadonlyArray<Result> => {
    const train = dataset(fmix(seed * 3 + 1), n, d)
    const holdout = dataset(fmix(seed * 3 + 2), n, d)
    const fresh = dataset(fmix(seed * 3 + 3), n, d)
    const trainCorrelations = train.correlations()
    const holdoutCorrelations = holdout.correlations()
    const size = `n=d=${n}, k=${k}, seed ${seed}`
    // answered exactly
    const plain = analyst(trainCorrelations, holdoutCorrelations, n, k)
    const plainReported = holdout.accuracy(plain.variables, plain.signs)
    const plainFresh = fresh.accuracy(plain.variables, plain.signs)
    // every holdout query through thresholdout (T = 0.04, σ = 0.01, B large enough never to stop it)
    const mechanism = {
      _tag: "thresholdout" as const,
      reference: "train",
      threshold: 0.04,
      sigma: 0.01,
      overfitBudget: d + 1
    }
    const mech = thresholdout(mechanism, seed)
    const told = new Float64Array(d)
    for (let column = 0; column < d; column++) {
      told[column] = mech.answer(holdoutCorrelations[column]!, trainCorrelations[column]!)
    }
    const guarded = analyst(trainCorrelations, told, n, k)
    const guardedTrain = train.accuracy(guarded.variables, guarded.signs)
    const guardedReported = mech.answer(holdout.accuracy(guarded.variables, guarded.signs), guardedTrain)
    const guardedFresh = fresh.accuracy(guarded.variables, guarded.signs)
    return [
      { name: "stats/adaptive/plain/reportedAcc", value: round4(plainReported), unit: `holdout accuracy (${size})` },
      { name: "stats/adaptive/fresh/acc", value: round4(plainFresh), unit: `the same classifier, fresh n=${n}` },
      {
        name: "stats/adaptive/thresholdout/reportedAcc",
        value: round4(guardedReported),
        unit: `told accuracy (${size}, T=0.04, σ=0.01)`
      },
      { name: "stats/adaptive/thresholdout/freshAcc", value: round4(guardedFresh), unit: `fresh n=${n}` },
      {
        name: "stats/adaptive/thresholdout/overThreshold",
        value: mech.over(),
        unit: `answers over threshold (B spent) of ${d + 1} queries`
      }
    ]
  })

/** A row of the engine-level experiment: the variables and the label. */
interface AdaptiveRow {
  readonly id: number
  readonly x: ReadonlyArray<number>
  readonly y: number
}

/**
 * A query of the analyst as a candidate: `corr` scores x_j · y per sample (its mean is the
 * correlation), `clf` scores whether the classifier on `variables` with `signs` is right.
 */
const queryTask = Task.make<AdaptiveRow, null, "x" | "y">({
  name: "adaptive-query",
  // the variables stay out of the stored inputs
  labelFields: ["x", "y"],
  infer: () => null,
  score: (row, _output, run) => {
    const query = run.candidate.metadata as
      | { readonly kind: "corr"; readonly column: number }
      | { readonly kind: "clf"; readonly variables: ReadonlyArray<number>; readonly signs: ReadonlyArray<number> }
    if (query.kind === "corr") return row.x[query.column]! * row.y
    let sum = 0
    for (let index = 0; index < query.variables.length; index++) {
      sum += query.signs[index]! * row.x[query.variables[index]!]!
    }
    return (sum >= 0 ? 1 : -1) === row.y ? 1 : 0
  }
})

/**
 * The same analyst end to end through `Engine.evaluate`: every correlation and the accuracy are
 * runs; `train` is viewable, `holdout` non_viewable (exact, or thresholdout with reference train),
 * the fresh split is scored by the verifier (admin). T is the paper's scaled to n: the spread of a
 * correlation is 1/√n, so T = 0.04·√(10,000/n) keeps it the same number of standard deviations
 * (0.179 at n = 500); σ stays 0.01.
 */
const adaptiveEngine = (n: number, d: number, k: number, seed: number) =>
  Effect.gen(function*() {
    const rowsOf = (stream: number): Array<AdaptiveRow> => {
      const data = dataset(stream, n, d)
      return Array.from({ length: n }, (_, id) => ({
        id,
        x: Array.from({ length: d }, (_, column) => data.value(id, column)),
        y: data.label(id)
      }))
    }
    const datasets = {
      adaptive: {
        train: rowsOf(fmix(seed * 3 + 1)),
        holdout: rowsOf(fmix(seed * 3 + 2)),
        fresh: rowsOf(fmix(seed * 3 + 3))
      }
    }
    const scale = Math.sqrt(10_000 / n)
    const threshold = 0.04 * scale
    const sigma = 0.01
    const run = (guarded: boolean) =>
      Effect.gen(function*() {
        const engine = yield* Engine.Engine
        // the noise secret is fixed, so that the bench is deterministic
        yield* (yield* TaskStore.TaskStore).putMetaIfAbsent("holdout:release-secret", `bench-stats-${seed}`)
        const told = (split: string, candidate: Model.Candidate) =>
          Effect.flatMap(
            engine.evaluate({ datasetId: "adaptive", split, candidate }),
            (experiment) => Effect.map(View.experiment(experiment), (view) => View.toldMean(view.summary))
          )
        const trainCorrelations = new Float64Array(d)
        const holdoutTold = new Float64Array(d)
        for (let column = 0; column < d; column++) {
          const candidate = { id: `corr-${column}`, metadata: { kind: "corr", column } }
          trainCorrelations[column] = yield* told("train", candidate)
          holdoutTold[column] = yield* told("holdout", candidate)
        }
        const chosen = analyst(trainCorrelations, holdoutTold, n, k)
        const classifier = {
          id: "classifier",
          metadata: { kind: "clf", variables: chosen.variables, signs: chosen.signs }
        }
        yield* told("train", classifier)
        const reported = yield* told("holdout", classifier)
        const fresh = yield* engine.evaluate({ datasetId: "adaptive", split: "fresh", candidate: classifier }, {
          admin: true
        })
        const overfit = (yield* engine.status()).find((entry) => entry.split === "holdout")?.overfit?.spent ?? 0
        return { reported, fresh: fresh.metrics.avgFilledScore, overfit }
      }).pipe(
        Effect.provide(Stack.layerMemory({
          budgets: [
            { datasetId: "adaptive", split: "train", runs: d + 2 },
            { datasetId: "adaptive", split: "holdout", runs: d + 2 }
          ],
          policy: { train: "viewable", holdout: "non_viewable", fresh: "no_access" },
          datasets,
          task: queryTask,
          ...(guarded
            ? {
              engine: {
                releases: {
                  holdout: { _tag: "thresholdout", reference: "train", threshold, sigma, overfitBudget: d + 2 }
                }
              }
            }
            : {})
        }))
      )
    const plain = yield* run(false)
    const guarded = yield* run(true)
    const size = `engine, n=d=${n}, k=${k}, seed ${seed}`
    return [
      {
        name: "stats/adaptive/engine/plain/reportedAcc",
        value: round4(plain.reported),
        unit: `holdout accuracy (${size})`
      },
      { name: "stats/adaptive/engine/fresh/acc", value: round4(plain.fresh), unit: `fresh n=${n}` },
      {
        name: "stats/adaptive/engine/thresholdout/reportedAcc",
        value: round4(guarded.reported),
        unit: `told accuracy (${size}, T=${round4(threshold)}, σ=${round4(sigma)})`
      },
      { name: "stats/adaptive/engine/thresholdout/freshAcc", value: round4(guarded.fresh), unit: `fresh n=${n}` },
      {
        name: "stats/adaptive/engine/thresholdout/overThreshold",
        value: guarded.overfit,
        unit: `answers over threshold (B spent) of ${d + 1} queries`
      }
    ] satisfies ReadonlyArray<Result>
  }).pipe(Effect.orDie)

// ---------------------------------------------------------------------------------------------
// Correlated pass/fail scores: sample s has a difficulty u_s shared by every candidate; candidate c
// passes it when, with probability ρ, u_s < p_c, and otherwise when a draw of its own is below p_c.
// Any candidate's score on any sample is computed from (stream, candidate, sample) alone.

const correlatedScores =
  (stream: number, means: ArrayLike<number>, rho: number, size: number) =>
  (candidate: number, sample: number): number => {
    const key = candidate * size + sample
    const shared = hashUniform(stream + 1, key) < rho
    const value = shared ? hashUniform(stream, sample) : hashUniform(stream + 2, key)
    return value < means[candidate]! ? 1 : 0
  }

/**
 * Successive halving against exhaustive evaluation: `trials` seeded trials of `candidates`
 * candidates with true pass rates uniform in [0.5, 0.8] on a split of `size` samples (scores
 * correlated with ρ = 0.8). A pick is within delta when its whole-split mean is within 0.01 of the
 * best whole-split mean; the sample fraction is what the races spent over what exhaustive
 * evaluation spends.
 */
const raceBench = (trials: number, candidates: number, size: number, seed: number) =>
  Effect.gen(function*() {
    let within = 0
    let spent = 0
    const means = new Float64Array(candidates)
    const full = new Float64Array(candidates)
    for (let trial = 0; trial < trials; trial++) {
      const stream = fmix(seed * 1_000_003 + trial) & 0x3fffffff
      const random = generator(stream)
      for (let candidate = 0; candidate < candidates; candidate++) means[candidate] = 0.5 + 0.3 * random()
      const score = correlatedScores(stream, means, 0.8, size)
      for (let candidate = 0; candidate < candidates; candidate++) {
        let sum = 0
        for (let sample = 0; sample < size; sample++) sum += score(candidate, sample)
        full[candidate] = sum / size
      }
      const scores = new Float64Array(candidates)
      const progress = yield* Halving.halving(size, candidates, { seed: trial }, (survivors, sampleIds, add) =>
        Effect.sync(() => {
          spent += survivors.length * sampleIds.length
          for (const sample of sampleIds) {
            for (let index = 0; index < survivors.length; index++) {
              scores[index] = score(survivors[index]!, sample)
            }
            add(scores)
          }
        }))
      let best = 0
      for (let candidate = 0; candidate < candidates; candidate++) {
        best = Math.max(best, full[candidate]!)
      }
      if (full[progress.leader!]! >= best - 0.01) {
        within++
      }
    }
    const size_ = `${candidates} candidates, n=${size}, ρ=0.8, ${trials} trials, seed ${seed}`
    return [
      { name: "stats/race/withinDelta", value: round4(within / trials), unit: `share of picks within 0.01 (${size_})` },
      {
        name: "stats/race/sampleFraction",
        value: round4(spent / (trials * candidates * size)),
        unit: "samples raced / samples of exhaustive evaluation"
      }
    ] satisfies ReadonlyArray<Result>
  })

/**
 * `auto_best` under the null: a baseline and `candidates` candidates with the same pass rate
 * (scores correlated with ρ = 0.8). The verifier's rule: the top `topK` by mean on the selection
 * split are re-scored on a fresh split, the best re-score is the winner. Strict ships it when its
 * re-score beats the baseline's by any margin; significance when a one-sided paired sign-flip test
 * (`Compare.fromDifferences`, pValueGreater) rejects "no better than the baseline" at α.
 */
const verifierBench = (trials: number, candidates: number, size: number, topK: number, alpha: number, seed: number) =>
  Effect.sync((): ReadonlyArray<Result> => {
    let strict = 0
    let significant = 0
    let corrected = 0
    const all = candidates + 1 // candidate 0 is the baseline
    const means = new Float64Array(all)
    const differences = new Float64Array(size)
    for (let trial = 0; trial < trials; trial++) {
      const stream = fmix(seed * 1_000_003 + trial) & 0x3fffffff
      const rate = 0.4 + 0.4 * generator(stream)()
      means.fill(rate)
      const selection = correlatedScores(stream, means, 0.8, size)
      const fresh = correlatedScores(stream ^ 0x2000_0000, means, 0.8, size)
      const meanOn = (scores: typeof selection, candidate: number) => {
        let sum = 0
        for (let sample = 0; sample < size; sample++) sum += scores(candidate, sample)
        return sum / size
      }
      const shortlist = Array.from({ length: candidates }, (_, index) => index + 1)
        .map((candidate) => ({ candidate, pooled: meanOn(selection, candidate) }))
        .sort((a, b) => b.pooled - a.pooled || a.candidate - b.candidate)
        .slice(0, topK)
      let winner = shortlist[0]!.candidate
      let winnerScore = -1
      for (const entry of shortlist) {
        const rescored = meanOn(fresh, entry.candidate)
        if (rescored > winnerScore) {
          winner = entry.candidate
          winnerScore = rescored
        }
      }
      const baseline = meanOn(fresh, 0)
      if (winnerScore > baseline) strict++
      for (let sample = 0; sample < size; sample++) differences[sample] = fresh(winner, sample) - fresh(0, sample)
      const comparison = Compare.fromDifferences(differences, { a: winnerScore, b: baseline }, {
        resamples: 1,
        permutations: 2000,
        seed: trial
      })
      if (comparison.pValueGreater !== null && comparison.pValueGreater < alpha) significant++
      if (comparison.pValueGreater !== null && comparison.pValueGreater < alpha / topK) corrected++
    }
    const size_ = `${candidates} null candidates, top ${topK}, n=${size} per split, ${trials} trials, seed ${seed}`
    return [
      { name: "stats/verifier/nullShipRate/strict", value: round4(strict / trials), unit: `share shipped (${size_})` },
      {
        name: "stats/verifier/nullShipRate/significance",
        value: round4(significant / trials),
        unit: `share shipped (one-sided paired test, α=${alpha})`
      },
      {
        name: "stats/verifier/nullShipRate/significanceOverK",
        value: round4(corrected / trials),
        unit: `share shipped (α/${topK}: the test corrected for the re-scored shortlist)`
      }
    ]
  })

export const benches: ReadonlyArray<readonly [string, Effect.Effect<Result | ReadonlyArray<Result>>]> = [
  ["stats/adaptive/10k", adaptivePaper(10_000, 10_000, 500, 1)],
  ["stats/adaptive/engine/500", adaptiveEngine(500, 500, 500, 1)],
  ["stats/race", raceBench(200, 20, 5000, 1)],
  ["stats/verifier", verifierBench(500, 10, 500, 3, 0.05, 1)]
]
