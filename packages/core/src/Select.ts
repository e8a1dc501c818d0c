/**
 * Choosing among candidates without evaluating every one on every sample (DESIGN §12).
 *
 * `race` is successive halving: every surviving candidate is evaluated on the same growing subset of
 * a split (a seeded order of its samples, taken in rounds), and after each round the candidates whose
 * paired interval against the leader shows them worse are dropped, and of the rest at most one in
 * `growth` goes on. Each round is charged through `Engine.evaluate`, so budgets and tiers apply as to
 * any other evaluation, and the race stops with `RaceStopped` (carrying the best so far) rather than
 * spend beyond the budget.
 *
 * A race compares candidates sample by sample (paired differences), so an optimizer races on
 * `viewable` splits only; the verifier (`admin`) may race on any split. A `non_viewable` split tells an
 * optimizer the mean of whole secret blocks and no spread: there is no paired interval to be had from
 * it, and a race on it would be the adaptive selection on the holdout its release mechanisms guard
 * against. Race on a viewable split and let the verifier confirm on the holdout.
 *
 * Memory stays flat in the split's size: a run's samples are read page by page, and a round keeps
 * running sums only (per candidate and per pair of candidates).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { DatasetSource } from "./DatasetSource.js"
import { Engine, type EvaluateError } from "./Engine.js"
import {
  AccessDenied,
  BudgetExhausted,
  InvalidRequest,
  type SplitNotBudgeted,
  type StoreError,
  UnknownSplit
} from "./HoldoutError.js"
import * as Statistics from "./internal/statistics.js"
import * as TDistribution from "./internal/tdist.js"
import { Ledger } from "./Ledger.js"
import * as Metrics from "./Metrics.js"
import { Candidate, Interval, type SampleRecord } from "./Model.js"
import { SplitAccess } from "./SplitAccess.js"

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
 * Options of `race`: the candidates, the split, the schedule, `seed` of the order samples are
 * taken in (default 0), `admin` for the verifier (any tier, nothing charged), `concurrency` of a
 * round's evaluations (default 1) and `pageSize` of the sample reads (default 1000).
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends Schedule {
  readonly candidates: ReadonlyArray<Candidate>
  readonly datasetId: string
  readonly split: string
  readonly seed?: number
  readonly admin?: boolean
  readonly concurrency?: number
  readonly pageSize?: number
}

/**
 * A candidate's standing: how many samples it was scored on, its mean (errors count 0) and the 95%
 * t interval of that mean.
 *
 * @since 0.1.0
 * @category models
 */
export const Standing = Schema.Struct({
  candidate: Candidate,
  samples: Schema.Int,
  mean: Schema.Number,
  interval: Schema.NullOr(Interval)
})

/**
 * @since 0.1.0
 * @category models
 */
export type Standing = typeof Standing.Type

/**
 * One round of a race: the samples each survivor had been scored on after it, who ran, and who was
 * dropped.
 *
 * @since 0.1.0
 * @category models
 */
export const Round = Schema.Struct({
  size: Schema.Int,
  candidates: Schema.Array(Schema.String),
  dropped: Schema.Array(Schema.String)
})

/**
 * @since 0.1.0
 * @category models
 */
export type Round = typeof Round.Type

/**
 * The outcome of a race: the winner's standing, the paired interval of its lead over the runner-up
 * of the last round (joint level `confidence`; null when it ran alone), what was spent, the rounds.
 *
 * @since 0.1.0
 * @category models
 */
export const Result = Schema.Struct({
  winner: Standing,
  lead: Schema.NullOr(Interval),
  samplesSpent: Schema.Int,
  runsSpent: Schema.Int,
  rounds: Schema.Array(Round)
})

/**
 * @since 0.1.0
 * @category models
 */
export type Result = typeof Result.Type

/**
 * The budget ran out before the race was decided: nothing beyond the budget was charged. `best` is
 * the leader after the last finished round (null before the first), `budget` what the ledger
 * refused or would have refused.
 *
 * @since 0.1.0
 * @category errors
 */
export class RaceStopped extends Schema.TaggedError<RaceStopped>()("RaceStopped", {
  budget: BudgetExhausted,
  best: Schema.NullOr(Standing),
  samplesSpent: Schema.Int,
  runsSpent: Schema.Int,
  rounds: Schema.Array(Round)
}) {
  override get message(): string {
    const best = this.best === null
      ? "No round finished, so there is no leader."
      : `The leader after ${this.rounds.length} round(s) is "${this.best.candidate.id}" (mean ` +
        `${this.best.mean.toFixed(4)} on ${this.best.samples} samples).`
    return `The race on split "${this.budget.split}" stopped: its budget cannot pay for the next round ` +
      `(${this.budget.reason}). ${best} ${this.samplesSpent} samples were charged; nothing beyond the budget.`
  }
}

/**
 * Everything `race` can fail with.
 *
 * @since 0.1.0
 * @category errors
 */
export type RaceError = Exclude<EvaluateError, BudgetExhausted> | RaceStopped | SplitNotBudgeted | StoreError

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

const validate = (options: Options) => {
  const problems: Array<string> = []
  const ids = options.candidates.map((candidate) => candidate.id)
  if (ids.length < 2) problems.push("a race needs at least two candidates")
  if (new Set(ids).size !== ids.length) problems.push("candidate ids must be distinct")
  if (options.growth !== undefined && !(options.growth > 1)) problems.push("growth must be above 1")
  if (options.startSize !== undefined && !(Number.isInteger(options.startSize) && options.startSize >= 2)) {
    problems.push("startSize must be an integer of at least 2")
  }
  if (options.confidence !== undefined && !(options.confidence > 0 && options.confidence < 1)) {
    problems.push("confidence must be in (0, 1)")
  }
  if (options.delta !== undefined && !(options.delta >= 0)) problems.push("delta must be 0 or more")
  if (options.pageSize !== undefined && !(Number.isInteger(options.pageSize) && options.pageSize >= 1)) {
    problems.push("pageSize must be a positive integer")
  }
  return problems.length === 0
    ? Effect.void
    : Effect.fail(new InvalidRequest({ message: `Cannot race: ${problems.join("; ")}.` }))
}

const filled = (sample: SampleRecord): number => Metrics.isError(sample) ? 0 : (sample.score ?? 0)

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

/**
 * Races candidates on a split by successive halving and returns the winner (see the module's
 * documentation). Each round is one charged evaluation a survivor (more when the split caps the
 * samples of a run); a round the budget cannot pay for is not started, and the race fails with
 * `RaceStopped`. An optimizer races on `viewable` splits only (anything else is `AccessDenied`).
 *
 * @since 0.1.0
 * @category combinators
 */
export const race = (
  options: Options
): Effect.Effect<Result, RaceError, Engine | SplitAccess | DatasetSource | Ledger> =>
  Effect.gen(function*() {
    yield* validate(options)
    const { candidates, datasetId, split } = options
    const admin = options.admin === true
    const pageSize = options.pageSize ?? 1000
    const access = yield* SplitAccess
    const tier = yield* access.tier(split)
    if (!admin && tier !== "viewable") return yield* new AccessDenied({ datasetId, split })
    const info = yield* (yield* DatasetSource).info(datasetId)
    const size = info.splits[split]
    if (size === undefined) return yield* new UnknownSplit({ datasetId, split })
    if (size < 2) return yield* new InvalidRequest({ message: `Split "${split}" has fewer than two samples.` })
    const engine = yield* Engine
    const ledger = yield* Ledger
    const cap = admin ? null : (yield* ledger.get({ datasetId, split })).limits.maxSamplesPerRun
    let samplesSpent = 0
    let runsSpent = 0

    const roundsOf = (progress: Progress): Array<Round> =>
      progress.rounds.map((round) => ({
        size: round.size,
        candidates: round.candidates.map((index) => candidates[index]!.id),
        dropped: round.dropped.map((index) => candidates[index]!.id)
      }))
    const standingOf = (progress: Progress, index: number): Standing => ({
      candidate: candidates[index]!,
      ...standing(progress.tally, index)
    })
    const stopped = (budget: BudgetExhausted, progress: Progress) =>
      new RaceStopped({
        budget,
        best: progress.leader === undefined ? null : standingOf(progress, progress.leader),
        samplesSpent,
        runsSpent,
        rounds: roundsOf(progress)
      })

    const evaluateRound = (
      survivors: ReadonlyArray<number>,
      ids: ReadonlyArray<number>,
      add: (scores: ArrayLike<number>) => void,
      progress: Progress
    ) =>
      Effect.gen(function*() {
        const chunks: Array<ReadonlyArray<number>> = []
        for (let start = 0; start < ids.length; start += cap ?? ids.length) {
          chunks.push(ids.slice(start, start + (cap ?? ids.length)))
        }
        // a round the budget cannot pay for whole is not started
        if (!admin) {
          const remaining = (yield* ledger.get({ datasetId, split })).remaining
          const runs = survivors.length * chunks.length
          const samples = survivors.length * ids.length
          if (remaining.runs !== null && remaining.runs < runs) {
            const budget = new BudgetExhausted({
              datasetId,
              split,
              reason: "runs",
              requested: runs,
              remaining: remaining.runs
            })
            return yield* stopped(budget, progress)
          }
          if (remaining.samples !== null && remaining.samples < samples) {
            const budget = new BudgetExhausted({
              datasetId,
              split,
              reason: "samples",
              requested: samples,
              remaining: remaining.samples
            })
            return yield* stopped(budget, progress)
          }
        }
        const runIds = yield* Effect.forEach(
          survivors,
          (candidate) =>
            Effect.forEach(chunks, (sampleIds) =>
              engine.evaluate({ datasetId, split, candidate: candidates[candidate]!, sampleIds }, { admin }).pipe(
                Effect.tap((experiment) =>
                  Effect.sync(() => {
                    samplesSpent += experiment.run.sampleIds.length
                    runsSpent += 1
                  })
                ),
                Effect.map((experiment) => experiment.run.runId)
              )),
          { concurrency: options.concurrency ?? 1 }
        ).pipe(Effect.catchTag("BudgetExhausted", (error) =>
          Effect.fail(stopped(error, progress))))
        // the survivors' runs of a chunk hold the same ids: read them side by side, a page of each at a time
        const scores = new Float64Array(survivors.length)
        for (let chunk = 0; chunk < chunks.length; chunk++) {
          let after: number | undefined
          while (true) {
            const page = after === undefined ? { limit: pageSize } : { after, limit: pageSize }
            const pages = yield* Effect.forEach(runIds, (runs) => engine.samples(runs[chunk]!, page))
            const length = pages[0]!.length
            for (let row = 0; row < length; row++) {
              const sampleId = pages[0]![row]!.sampleId
              for (let index = 0; index < pages.length; index++) {
                const sample = pages[index]![row]
                if (sample === undefined || sample.sampleId !== sampleId) {
                  return yield* Effect.dieMessage("Select.race: the runs of one round differ in their samples")
                }
                scores[index] = filled(sample)
              }
              add(scores)
            }
            if (length < pageSize) break
            after = pages[0]![length - 1]!.sampleId
          }
        }
      })

    const progress = yield* halving(size, candidates.length, options, evaluateRound)
    return {
      winner: standingOf(progress, progress.leader!),
      lead: progress.lead,
      samplesSpent,
      runsSpent,
      rounds: roundsOf(progress)
    }
  }).pipe(Effect.withSpan("Select.race"))
