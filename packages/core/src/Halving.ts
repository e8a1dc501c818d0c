/**
 * Successive halving over any source of scores (the loop of `Select.race`): a seeded order of a
 * split's samples taken in growing rounds, running sums of the survivors' scores (per candidate and
 * per pair), paired intervals against the leader, and the rule that drops the candidates shown
 * worse and keeps at most one in `growth` of the rest.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Statistics from "./internal/statistics.js"
import * as TDistribution from "./internal/tdist.js"
import type { Interval } from "./Model.js"

/**
 * The schedule and elimination rule of a race, independent of where the scores come from.
 *
 * - `startSize`: samples per candidate in the first round (default: the split's size over
 *   `growth^⌈log_growth(candidates)⌉`, at least 10, so that one candidate is left about when the
 *   whole split is reached).
 * - `growth` η (default 2): the subset grows η-fold per round, and at most ⌈survivors / η⌉ go on.
 * - `confidence` (default 0.95): the joint level of a round's paired intervals against the leader
 *   (Bonferroni: each is at 1 − (1 − confidence) / (survivors − 1)).
 * - `delta` (default 0): a candidate is dropped when its interval shows it better than the leader
 *   by less than `delta`; above 0 the race settles for a candidate within `delta` of the best sooner.
 *
 * @since 0.1.0
 * @category models
 */
export interface Schedule {
  readonly startSize?: number
  readonly growth?: number
  readonly confidence?: number
  readonly delta?: number
}

/**
 * A seeded order of the ids 0..size-1 in constant memory (an affine map i ↦ (a·i + b) mod size with
 * a prime to size): `at(i)` is the i-th sample taken.
 *
 * @since 0.1.0
 * @category constructors
 */
export const order = (size: number, seed: number): { readonly at: (position: number) => number } => {
  const gcd = (x: number, y: number): number => y === 0 ? x : gcd(y, x % y)
  const random = Statistics.seeded(seed)
  let multiplier = size <= 2 ? 1 : 1 + Math.floor(random() * (size - 1))
  while (gcd(multiplier, size) !== 1) multiplier = multiplier + 1 === size ? 1 : multiplier + 1
  const offset = Math.floor(random() * size)
  // (multiplier · position) mod size without leaving exact integers (size below 2^32)
  const times = (position: number) =>
    (((multiplier * Math.floor(position / 65536)) % size) * 65536 + multiplier * (position % 65536)) % size
  return { at: (position) => (times(position) + offset) % size }
}

/**
 * The cumulative subset sizes of a schedule on a split of `size` samples with `candidates`
 * candidates: each round's size is `growth` times the last, the last is the whole split.
 *
 * @since 0.1.0
 * @category constructors
 */
export const sizes = (size: number, candidates: number, schedule: Schedule = {}): ReadonlyArray<number> => {
  const growth = schedule.growth ?? 2
  const halvings = Math.max(1, Math.ceil(Math.log(candidates) / Math.log(growth) - 1e-9))
  const start = Math.min(size, schedule.startSize ?? Math.max(10, Math.ceil(size / growth ** halvings)))
  const result: Array<number> = []
  for (let next = start; result.at(-1) !== size; next = Math.ceil(next * growth)) {
    result.push(Math.min(size, next))
  }
  return result
}

const quantiles = new Map<string, number>()

/** The two-sided quantile t with P(|T| ≥ t) = alpha for `df` degrees of freedom (bisection). */
const tQuantile = (alpha: number, df: number): number => {
  const key = `${alpha}:${df}`
  const cached = quantiles.get(key)
  if (cached !== undefined) return cached
  let low = 0
  let high = 1
  while (TDistribution.twoSidedP(high, df) > alpha) high *= 2
  for (let step = 0; step < 60; step++) {
    const middle = (low + high) / 2
    if (TDistribution.twoSidedP(middle, df) > alpha) low = middle
    else high = middle
  }
  if (quantiles.size > 4096) quantiles.clear()
  quantiles.set(key, high)
  return high
}

/**
 * Running sums of a race: per candidate the count, sum and sum of squares of its scores, and per pair
 * the sum of products, so that any paired interval among survivors (who were all scored on the same
 * samples) comes from sums alone. Memory is quadratic in the candidates and flat in the samples.
 *
 * @since 0.1.0
 * @category models
 */
export interface Tally {
  readonly candidates: number
  readonly count: Float64Array
  readonly sum: Float64Array
  readonly squares: Float64Array
  readonly products: Float64Array
}

/**
 * An empty tally of `candidates` candidates.
 *
 * @since 0.1.0
 * @category constructors
 */
export const tally = (candidates: number): Tally => ({
  candidates,
  count: new Float64Array(candidates),
  sum: new Float64Array(candidates),
  squares: new Float64Array(candidates),
  products: new Float64Array(candidates * candidates)
})

/**
 * Adds one sample's scores: `scores[i]` is the score of candidate `survivors[i]`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const add = (tally: Tally, survivors: ReadonlyArray<number>, scores: ArrayLike<number>): void => {
  const k = tally.candidates
  for (let i = 0; i < survivors.length; i++) {
    const candidate = survivors[i]!
    const score = scores[i]!
    tally.count[candidate]! += 1
    tally.sum[candidate]! += score
    tally.squares[candidate]! += score * score
    for (let j = i + 1; j < survivors.length; j++) {
      const other = survivors[j]!
      tally.products[Math.min(candidate, other) * k + Math.max(candidate, other)]! += score * scores[j]!
    }
  }
}

/**
 * The mean of a candidate in a tally, its 95% t interval and sample count.
 *
 * @since 0.1.0
 * @category combinators
 */
export const standing = (tally: Tally, candidate: number) => {
  const n = tally.count[candidate]!
  const spread = Statistics.meanInterval(n, tally.sum[candidate]!, tally.squares[candidate]!)
  return { samples: n, mean: n === 0 ? 0 : tally.sum[candidate]! / n, interval: spread?.interval ?? null }
}

/**
 * The paired t interval of mean(a − b) over the samples both were scored on, at two-sided level
 * `1 − alpha`; null below two samples.
 *
 * @since 0.1.0
 * @category combinators
 */
export const pairedInterval = (tally: Tally, a: number, b: number, alpha: number): Interval | null => {
  const n = tally.count[a]!
  if (n < 2) return null
  const k = tally.candidates
  const difference = (tally.sum[a]! - tally.sum[b]!) / n
  const squares = tally.squares[a]! + tally.squares[b]! - 2 * tally.products[Math.min(a, b) * k + Math.max(a, b)]!
  const variance = Math.max(0, (squares - n * difference * difference) / (n - 1))
  const half = tQuantile(alpha, n - 1) * Math.sqrt(variance / n)
  return { lower: difference - half, upper: difference + half }
}

/**
 * One elimination step: the leader (highest mean, the first on a tie), the survivors that go on, and
 * the leader's paired interval over the best of the others.
 *
 * @since 0.1.0
 * @category combinators
 */
export const eliminate = (
  tally: Tally,
  survivors: ReadonlyArray<number>,
  schedule: Schedule = {}
): { readonly leader: number; readonly next: ReadonlyArray<number>; readonly lead: Interval | null } => {
  const growth = schedule.growth ?? 2
  const confidence = schedule.confidence ?? 0.95
  const delta = schedule.delta ?? 0
  const mean = (candidate: number) => tally.sum[candidate]! / Math.max(1, tally.count[candidate]!)
  const ranked = [...survivors].sort((a, b) => mean(b) - mean(a) || a - b)
  const leader = ranked[0]!
  if (ranked.length === 1) return { leader, next: ranked, lead: null }
  const alpha = (1 - confidence) / (ranked.length - 1)
  const kept = ranked.filter((candidate) => {
    if (candidate === leader) return true
    const interval = pairedInterval(tally, candidate, leader, alpha)
    return interval === null || interval.upper >= delta
  })
  const lead = pairedInterval(tally, leader, ranked[1]!, alpha)
  return { leader, next: kept.slice(0, Math.max(1, Math.ceil(ranked.length / growth))), lead }
}

/**
 * Where a successive-halving race stands: its sums, the rounds finished (candidates by index), and
 * the leader and its lead after the last of them (`leader` undefined before the first).
 *
 * @since 0.1.0
 * @category models
 */
export interface Progress {
  readonly tally: Tally
  readonly rounds: ReadonlyArray<{
    readonly size: number
    readonly candidates: ReadonlyArray<number>
    readonly dropped: ReadonlyArray<number>
  }>
  readonly leader: number | undefined
  readonly lead: Interval | null
}

/**
 * The successive-halving loop of `race`, over any source of scores: `evaluate` scores the survivors
 * (indices of the `candidates` candidates) on the samples of a round and hands each sample's scores
 * to `add` (in the order of `survivors`). It ends when one candidate is left or the whole split of
 * `size` samples is scored; samples are taken in the seeded `order`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const halving = <E, R>(
  size: number,
  candidates: number,
  options: Schedule & { readonly seed?: number },
  evaluate: (
    survivors: ReadonlyArray<number>,
    sampleIds: ReadonlyArray<number>,
    add: (scores: ArrayLike<number>) => void,
    progress: Progress
  ) => Effect.Effect<void, E, R>
): Effect.Effect<Progress, E, R> =>
  Effect.gen(function*() {
    const sampleOrder = order(size, options.seed ?? 0)
    const rounds: Array<Progress["rounds"][number]> = []
    let progress: Progress = { tally: tally(candidates), rounds, leader: undefined, lead: null }
    let survivors: ReadonlyArray<number> = Array.from({ length: candidates }, (_, index) => index)
    let taken = 0
    for (const target of sizes(size, candidates, options)) {
      const ids: Array<number> = []
      for (let position = taken; position < target; position++) ids.push(sampleOrder.at(position))
      ids.sort((a, b) => a - b)
      const running = survivors
      yield* evaluate(running, ids, (scores) => add(progress.tally, running, scores), progress)
      taken = target
      const step = eliminate(progress.tally, running, options)
      rounds.push({ size: target, candidates: running, dropped: running.filter((index) => !step.next.includes(index)) })
      progress = { ...progress, leader: step.leader, lead: step.lead }
      survivors = step.next
      if (survivors.length === 1) break
    }
    return progress
  })
