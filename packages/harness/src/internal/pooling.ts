/**
 * `auto_best`'s pools: the optimizer's runs on the selection split grouped into candidates, each with
 * the mean of its runs. Runs group by candidate id, or, when `contentOf` is given (`poolTrees`), by
 * what the candidate evaluates (a git tree): re-commits of one tree are one candidate, whose runs
 * pool together, so the shortlist cannot be stuffed with copies of one tree and a lucky copy cannot
 * stand for it alone. A pool is re-scored as its earliest evaluated candidate.
 */
import type { Model } from "@holdout/core"
import * as Effect from "effect/Effect"

/**
 * One pooled candidate: the candidate re-scored for it (the earliest evaluated of the pool), the
 * scores of its runs, their mean, and when its newest run was made (ties go to the newer).
 */
export interface Pool {
  readonly candidate: Model.Candidate
  readonly scores: ReadonlyArray<number>
  readonly mean: number
  readonly newest: number
}

/**
 * The pools of `runs` (completed runs carry their metrics: no sample is read), leaving out the
 * pool whose content is `excluded` (the baseline's), best mean first, newer first on ties.
 */
export const pools = (
  runs: ReadonlyArray<Model.RunRecord>,
  options: {
    readonly contentOf?: ((candidate: Model.Candidate) => Effect.Effect<string>) | undefined
    readonly excluded?: string | undefined
  } = {}
): Effect.Effect<Array<Pool>> =>
  Effect.gen(function*() {
    const contents = new Map<string, string>()
    const groups = new Map<
      string,
      { candidate: Model.Candidate; scores: Array<number>; earliest: number; newest: number }
    >()
    for (const run of runs) {
      if (run.metrics === undefined) continue
      const id = run.candidate.id
      let content = contents.get(id)
      if (content === undefined) {
        content = options.contentOf === undefined ? id : yield* options.contentOf(run.candidate)
        contents.set(id, content)
      }
      if (options.excluded !== undefined && content === options.excluded) continue
      const group = groups.get(content) ??
        { candidate: run.candidate, scores: [], earliest: run.createdAt, newest: run.createdAt }
      group.scores.push(run.metrics.avgFilledScore)
      if (run.createdAt < group.earliest) {
        group.earliest = run.createdAt
        group.candidate = run.candidate
      }
      if (run.createdAt > group.newest) group.newest = run.createdAt
      groups.set(content, group)
    }
    return [...groups.values()]
      .map((group): Pool => ({
        candidate: group.candidate,
        scores: group.scores,
        mean: group.scores.reduce((sum, score) => sum + score, 0) / group.scores.length,
        newest: group.newest
      }))
      .sort((a, b) => b.mean - a.mean || b.newest - a.newest)
  })
