/**
 * Paired comparison of two runs on the samples both have: the mean difference, a paired bootstrap
 * 95% interval (seeded), a paired sign-flip permutation p-value (exact for few samples), and
 * Student's paired t for reference. A sample's score is its filled score (an error counts 0), as
 * in `Metrics`. Optimizers may compare runs of `viewable` splits only; the verifier any.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Order from "effect/Order"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { AccessDenied, InvalidRequest, type StoreError } from "./HoldoutError.js"
import * as Statistics from "./internal/statistics.js"
import * as TDistribution from "./internal/tdist.js"
import * as Metrics from "./Metrics.js"
import { Interval, type RunRecord, type SampleRecord } from "./Model.js"
import { SplitAccess } from "./SplitAccess.js"
import * as TaskStore from "./TaskStore.js"

/**
 * The outcome of a paired comparison of run A against run B (differences are A − B).
 *
 * @since 0.1.0
 * @category models
 */
export const PairedComparison = Schema.Struct({
  shared: Schema.Int,
  meanA: Schema.Number,
  meanB: Schema.Number,
  difference: Schema.Number,
  /** Paired bootstrap percentile interval (95%) of the mean difference. */
  interval: Schema.NullOr(Interval),
  /** Two-sided sign-flip permutation p-value of "no difference". */
  pValue: Schema.NullOr(Schema.Number),
  /** One-sided permutation p-value of "A is no better than B". */
  pValueGreater: Schema.NullOr(Schema.Number),
  /** Whether the permutation p-values enumerate every sign pattern (few samples) rather than sample them. */
  exact: Schema.Boolean,
  t: Schema.NullOr(Schema.Number),
  tPValue: Schema.NullOr(Schema.Number),
  tInterval: Schema.NullOr(Interval),
  resamples: Schema.Int,
  permutations: Schema.Int,
  seed: Schema.Int
})

/**
 * @since 0.1.0
 * @category models
 */
export type PairedComparison = typeof PairedComparison.Type

/**
 * Options: bootstrap resamples (default 10,000), sampled sign patterns when they are not
 * enumerated (default 10,000), and the seed of both (default 0).
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly resamples?: number
  readonly permutations?: number
  readonly seed?: number
}

/** At most this many non-zero differences are tested exactly (2^n sign patterns). */
const exactLimit = 16

type Scored = Pick<SampleRecord, "sampleId" | "score" | "error" | "evalError">

const filled = (sample: Scored): number => Metrics.isError(sample) ? 0 : (sample.score ?? 0)

const mean = (values: ArrayLike<number>) => {
  let sum = 0
  for (let index = 0; index < values.length; index++) sum += values[index]!
  return values.length === 0 ? 0 : sum / values.length
}

const permutationTest = (differences: ArrayLike<number>, observed: number, permutations: number, seed: number) => {
  const nonZero: Array<number> = []
  for (let index = 0; index < differences.length; index++) {
    if (differences[index] !== 0) nonZero.push(differences[index]!)
  }
  const n = differences.length
  const total = nonZero.reduce((sum, value) => sum + value, 0)
  // compare sums with a tolerance, so that ties by rounding count as ties
  const tolerance = 1e-9 * Math.max(1, Math.abs(total))
  const observedSum = observed * n
  let atLeastAsExtreme = 0
  let atLeastAsLarge = 0
  if (nonZero.length <= exactLimit) {
    const patterns = 2 ** nonZero.length
    for (let pattern = 0; pattern < patterns; pattern++) {
      let sum = 0
      for (let index = 0; index < nonZero.length; index++) {
        sum += (pattern >> index) & 1
          ? -nonZero[index]!
          : nonZero[index]!
      }
      if (Math.abs(sum) >= Math.abs(observedSum) - tolerance) atLeastAsExtreme++
      if (sum >= observedSum - tolerance) atLeastAsLarge++
    }
    return { pValue: atLeastAsExtreme / patterns, pValueGreater: atLeastAsLarge / patterns, exact: true }
  }
  const random = Statistics.seeded(seed ^ 0x5bd1e995)
  for (let round = 0; round < permutations; round++) {
    let sum = 0
    for (const value of nonZero) sum += random() < 0.5 ? -value : value
    if (Math.abs(sum) >= Math.abs(observedSum) - tolerance) atLeastAsExtreme++
    if (sum >= observedSum - tolerance) atLeastAsLarge++
  }
  return {
    pValue: (1 + atLeastAsExtreme) / (1 + permutations),
    pValueGreater: (1 + atLeastAsLarge) / (1 + permutations),
    exact: false
  }
}

const bootstrap = (differences: ArrayLike<number>, resamples: number, seed: number): Interval => {
  const random = Statistics.seeded(seed)
  const n = differences.length
  const means = new Float64Array(resamples)
  for (let round = 0; round < resamples; round++) {
    let sum = 0
    for (let draw = 0; draw < n; draw++) sum += differences[Math.floor(random() * n)]!
    means[round] = sum / n
  }
  means.sort()
  const at = (quantile: number) => means[Math.min(resamples - 1, Math.max(0, Math.floor(quantile * resamples)))]!
  return { lower: at(0.025), upper: at(0.975) }
}

/**
 * The paired comparison of scores given as differences (A − B, one per shared sample) with the
 * means of A and B over those samples.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromDifferences = (
  differences: ArrayLike<number>,
  means: { readonly a: number; readonly b: number },
  options: Options = {}
): PairedComparison => {
  const resamples = options.resamples ?? 10_000
  const permutations = options.permutations ?? 10_000
  const seed = options.seed ?? 0
  const n = differences.length
  const difference = mean(differences)
  const base = { shared: n, meanA: means.a, meanB: means.b, difference, resamples, permutations, seed }
  if (n === 0) {
    return {
      ...base,
      interval: null,
      pValue: null,
      pValueGreater: null,
      exact: true,
      t: null,
      tPValue: null,
      tInterval: null
    }
  }
  let squares = 0
  for (let index = 0; index < n; index++) squares += (differences[index]! - difference) ** 2
  const standardError = n < 2 ? Number.NaN : Math.sqrt(squares / (n - 1) / n)
  const t = n < 2
    ? null
    : standardError === 0
    ? (difference === 0 ? 0 : Math.sign(difference) * Infinity)
    : difference / standardError
  const half = n < 2 ? Number.NaN : Statistics.tQuantile975(n - 1) * standardError
  return {
    ...base,
    interval: bootstrap(differences, resamples, seed),
    ...permutationTest(differences, difference, permutations, seed),
    t: t !== null && Number.isFinite(t) ? t : null,
    tPValue: t === null ? null : TDistribution.twoSidedP(t, n - 1),
    tInterval: n < 2 ? null : { lower: difference - half, upper: difference + half }
  }
}

/**
 * The paired comparison of two sets of samples over the sample ids both have.
 *
 * @since 0.1.0
 * @category constructors
 */
export const paired = (a: Iterable<Scored>, b: Iterable<Scored>, options: Options = {}): PairedComparison => {
  const scoresOfA = new Map<number, number>()
  for (const sample of a) scoresOfA.set(sample.sampleId, filled(sample))
  const pairs: Array<readonly [number, number, number]> = []
  for (const sample of b) {
    const scoreA = scoresOfA.get(sample.sampleId)
    if (scoreA !== undefined) pairs.push([sample.sampleId, scoreA, filled(sample)])
  }
  pairs.sort((left, right) => left[0] - right[0])
  return fromDifferences(
    pairs.map(([, scoreA, scoreB]) => scoreA - scoreB),
    { a: mean(pairs.map(([, scoreA]) => scoreA)), b: mean(pairs.map(([, , scoreB]) => scoreB)) },
    options
  )
}

/**
 * The paired comparison of two stored runs of one split, reading both page by page. An optimizer
 * (`admin` not set) may compare runs of `viewable` splits only: anything else is `AccessDenied`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const runs = (
  a: RunRecord,
  b: RunRecord,
  options: Options & { readonly admin?: boolean } = {}
): Effect.Effect<PairedComparison, AccessDenied | InvalidRequest | StoreError, TaskStore.TaskStore | SplitAccess> =>
  Effect.gen(function*() {
    if (options.admin !== true) {
      const access = yield* SplitAccess
      for (const run of [a, b]) {
        const tier = yield* access.tier(run.split)
        if (tier !== "viewable") {
          return yield* new AccessDenied({
            datasetId: run.datasetId,
            split: run.split,
            ...(tier === "non_viewable" ? { tier } : {})
          })
        }
      }
    }
    if (a.datasetId !== b.datasetId || a.split !== b.split) {
      return yield* new InvalidRequest({
        message: `Runs ${a.runId} and ${b.runId} are of different splits (${a.datasetId}/${a.split} and ` +
          `${b.datasetId}/${b.split}); a paired comparison needs two runs of one split.`
      })
    }
    const store = yield* TaskStore.TaskStore
    const keyed = (runId: string) =>
      Stream.map(TaskStore.streamSamples(store, runId), (sample) => [sample.sampleId, filled(sample)] as const)
    // both streams are by ascending sample id: a merge holds one page of each, and a number a pair
    const shared = Stream.zipAllSortedByKeyWith(keyed(a.runId), {
      other: keyed(b.runId),
      onSelf: () => undefined,
      onOther: () => undefined,
      onBoth: (scoreA: number, scoreB: number) => [scoreA, scoreB] as const,
      order: Order.number
    })
    const differences: Array<number> = []
    let sumA = 0
    let sumB = 0
    yield* Stream.runForEach(shared, ([, pair]) =>
      Effect.sync(() => {
        if (pair === undefined) return
        differences.push(pair[0] - pair[1])
        sumA += pair[0]
        sumB += pair[1]
      }))
    const n = differences.length
    return fromDifferences(differences, { a: n === 0 ? 0 : sumA / n, b: n === 0 ? 0 : sumB / n }, options)
  })
