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
import * as Halving from "./Halving.js"
import {
  AccessDenied,
  BudgetExhausted,
  InvalidRequest,
  type SplitNotBudgeted,
  type StoreError,
  UnknownSplit
} from "./HoldoutError.js"
import { Ledger } from "./Ledger.js"
import * as Metrics from "./Metrics.js"
import { Candidate, Interval, type SampleRecord } from "./Model.js"
import { SplitAccess } from "./SplitAccess.js"
import * as TaskStore from "./TaskStore.js"

/**
 * Options of `race`: the candidates, the split, the schedule, `seed` of the order samples are
 * taken in (default 0), `admin` for the verifier (any tier, nothing charged), `concurrency` of a
 * round's evaluations (default 1) and `pageSize` of the sample reads (default 1000).
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends Halving.Schedule {
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

const filled = (sample: SampleRecord): number => Metrics.isError(sample) ? 0 : (sample.score ?? 0)

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
    if (!admin && tier !== "viewable") {
      return yield* new AccessDenied({ datasetId, split, ...(tier === "non_viewable" ? { tier } : {}) })
    }
    const info = yield* (yield* DatasetSource).info(datasetId)
    const size = info.splits[split]
    if (size === undefined) return yield* new UnknownSplit({ datasetId, split })
    if (size < 2) return yield* new InvalidRequest({ message: `Split "${split}" has fewer than two samples.` })
    const engine = yield* Engine
    const ledger = yield* Ledger
    const cap = admin ? null : (yield* ledger.get({ datasetId, split })).limits.maxSamplesPerRun
    let samplesSpent = 0
    let runsSpent = 0

    const roundsOf = (progress: Halving.Progress): Array<Round> =>
      progress.rounds.map((round) => ({
        size: round.size,
        candidates: round.candidates.map((index) => candidates[index]!.id),
        dropped: round.dropped.map((index) => candidates[index]!.id)
      }))
    const standingOf = (progress: Halving.Progress, index: number): Standing => ({
      candidate: candidates[index]!,
      ...Halving.standing(progress.tally, index)
    })
    const stopped = (budget: BudgetExhausted, progress: Halving.Progress) =>
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
      progress: Halving.Progress
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
            const page = TaskStore.pageAfter(after, pageSize)
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

    const progress = yield* Halving.halving(size, candidates.length, options, evaluateRound)
    return {
      winner: standingOf(progress, progress.leader!),
      lead: progress.lead,
      samplesSpent,
      runsSpent,
      rounds: roundsOf(progress)
    }
  }).pipe(Effect.withSpan("Select.race"))
