/**
 * Tier projections for frontends. The engine returns full experiments; whatever reaches an
 * optimizer goes through these: `viewable` → the run, and its per-sample records in pages, `non_viewable` →
 * an aggregate summary with no sample id and no per-sample data, `no_access` → `AccessDenied`.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type { DatasetInfo } from "./DatasetSource.js"
import { AccessDenied } from "./HoldoutError.js"
import { type AccessTier, type Experiment, Metrics, RunRecord, RunStatus, SampleRecord } from "./Model.js"
import { Released } from "./Release.js"
import { SplitAccess } from "./SplitAccess.js"

/**
 * What may be said of a run on any split an optimizer can evaluate: who, where, how it went, in
 * aggregate. It names no sample.
 *
 * @since 0.1.0
 * @category models
 */
const runFields = {
  runId: Schema.String,
  candidateId: Schema.String,
  candidateLabel: Schema.optional(Schema.String),
  datasetId: Schema.String,
  split: Schema.String,
  status: RunStatus,
  createdAt: Schema.Number,
  finishedAt: Schema.optional(Schema.Number)
}

export const ExperimentSummary = Schema.Struct({ ...runFields, metrics: Metrics })

/**
 * @since 0.1.0
 * @category models
 */
export type ExperimentSummary = typeof ExperimentSummary.Type

/**
 * The summary of a run told through a release mechanism (DESIGN §12): what the mechanism told of
 * its mean, and nothing else of its scores.
 *
 * @since 0.1.0
 * @category models
 */
export const ReleasedSummary = Schema.Struct({ ...runFields, release: Released })

/**
 * @since 0.1.0
 * @category models
 */
export type ReleasedSummary = typeof ReleasedSummary.Type

/**
 * The mean a summary tells: what the release mechanism told, or else the mean of the filled scores.
 *
 * @since 0.1.0
 * @category combinators
 */
export const toldMean = (summary: ExperimentSummary | ReleasedSummary): number =>
  "release" in summary ? summary.release.mean : summary.metrics.avgFilledScore

/**
 * A `viewable` split's experiment: the summary and the run. Its per-sample records are read in
 * pages (`SamplePageView`).
 *
 * @since 0.1.0
 * @category models
 */
export const FullView = Schema.TaggedStruct("viewable", {
  summary: ExperimentSummary,
  run: RunRecord
})

/**
 * A page of a `viewable` run's per-sample records, by ascending sample id; `next` is the cursor
 * of the following page (pass it as `after`), null on the last page.
 *
 * @since 0.1.0
 * @category models
 */
export const SamplePageView = Schema.Struct({
  runId: Schema.String,
  samples: Schema.Array(SampleRecord),
  next: Schema.NullOr(Schema.Int)
})

/**
 * @since 0.1.0
 * @category models
 */
export type SamplePageView = typeof SamplePageView.Type

/**
 * A `non_viewable` split's experiment: the summary only.
 *
 * @since 0.1.0
 * @category models
 */
export const SummaryView = Schema.TaggedStruct("non_viewable", {
  summary: Schema.Union(ExperimentSummary, ReleasedSummary)
})

/**
 * An experiment as an optimizer may see it.
 *
 * @since 0.1.0
 * @category models
 */
export const ExperimentView = Schema.Union(FullView, SummaryView)

/**
 * @since 0.1.0
 * @category models
 */
export type ExperimentView = typeof ExperimentView.Type

/**
 * What any summary says of a run, whatever its tier: who, where, how it went; nothing of its scores.
 *
 * @since 0.1.0
 * @category constructors
 */
export const runSummaryFields = (run: RunRecord): Omit<ExperimentSummary, "metrics"> => ({
  runId: run.runId,
  candidateId: run.candidate.id,
  ...(run.candidate.label === undefined ? {} : { candidateLabel: run.candidate.label }),
  datasetId: run.datasetId,
  split: run.split,
  status: run.status,
  createdAt: run.createdAt,
  ...(run.finishedAt === undefined ? {} : { finishedAt: run.finishedAt })
})

/**
 * The summary of an experiment.
 *
 * @since 0.1.0
 * @category constructors
 */
export const summarize = (experiment: Experiment): ExperimentSummary => {
  const { run } = experiment
  return {
    ...runSummaryFields(run),
    metrics: {
      numSamples: experiment.metrics.numSamples,
      numErrors: experiment.metrics.numErrors,
      numSuccesses: experiment.metrics.numSuccesses,
      numScored: experiment.metrics.numScored,
      avgScore: experiment.metrics.avgScore,
      avgFilledScore: experiment.metrics.avgFilledScore,
      errorRate: experiment.metrics.errorRate,
      standardError: experiment.metrics.standardError,
      interval: experiment.metrics.interval
    }
  }
}

/**
 * A `non_viewable` summary: its spread at block level (from sums over whole blocks, never the
 * spread of per-sample scores), and under a release mechanism nothing of the scores but what the
 * mechanism told.
 */
const nonViewable = (experiment: Experiment): ExperimentSummary | ReleasedSummary => {
  const { metrics, ...summary } = summarize(experiment)
  if (experiment.release !== undefined) return { ...summary, release: experiment.release }
  const blocks = experiment.metrics.blocks
  return {
    ...summary,
    metrics: { ...metrics, standardError: blocks?.standardError ?? null, interval: blocks?.interval ?? null }
  }
}

/**
 * The projection of an experiment for a tier.
 *
 * @since 0.1.0
 * @category combinators
 */
export const project = (experiment: Experiment, tier: AccessTier): Effect.Effect<ExperimentView, AccessDenied> => {
  switch (tier) {
    case "viewable":
      return Effect.succeed({
        _tag: "viewable",
        summary: summarize(experiment),
        run: experiment.run
      })
    case "non_viewable":
      return Effect.succeed({ _tag: "non_viewable", summary: nonViewable(experiment) })
    case "no_access":
      return Effect.fail(new AccessDenied({ datasetId: experiment.run.datasetId, split: experiment.run.split }))
  }
}

/**
 * A page of a run's samples as a caller of `tier` may see it: only a `viewable` split shows
 * per-sample records; any other tier is `AccessDenied`. `samples` is the page read with `limit`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const samplePage = (
  run: RunRecord,
  tier: AccessTier,
  samples: ReadonlyArray<SampleRecord>,
  limit: number
): Effect.Effect<SamplePageView, AccessDenied> =>
  tier === "viewable"
    ? Effect.succeed({
      runId: run.runId,
      samples,
      next: samples.length < limit ? null : samples[samples.length - 1]!.sampleId
    })
    : Effect.fail(
      new AccessDenied({
        datasetId: run.datasetId,
        split: run.split,
        ...(tier === "non_viewable" ? { tier } : {})
      })
    )

/**
 * The projection of an experiment for the tier its split has under the stack's policy.
 *
 * @since 0.1.0
 * @category combinators
 */
export const experiment = (
  experiment: Experiment
): Effect.Effect<ExperimentView, AccessDenied, SplitAccess> =>
  Effect.flatMap(
    SplitAccess,
    (access) => Effect.flatMap(access.tier(experiment.run.split), (tier) => project(experiment, tier))
  )

/**
 * A dataset's description as an optimizer may see it: `no_access` splits are left out, so not even
 * their size is shown.
 *
 * @since 0.1.0
 * @category combinators
 */
export const datasetInfo = (info: DatasetInfo): Effect.Effect<DatasetInfo, never, SplitAccess> =>
  Effect.map(SplitAccess, (access) => {
    const splits: Record<string, number> = {}
    for (const [split, size] of Object.entries(info.splits)) {
      if (access.entries.some((entry) => entry.split === split && entry.tier !== "no_access")) splits[split] = size
    }
    return { datasetId: info.datasetId, splits }
  })
