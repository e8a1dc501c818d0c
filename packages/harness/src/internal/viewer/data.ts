/**
 * What the viewer shows, read from a stack's store, ledger and verifier state as the operator: runs,
 * scores per candidate, budgets with their burn-down, the verifier's answer, failed runs, pages of a
 * run's samples and paired comparisons. Per-sample detail is read only for `viewable` splits.
 *
 * @internal
 */
import {
  Compare,
  DatasetSource,
  Engine,
  HoldoutError,
  Ledger,
  Metrics,
  type Model,
  SplitAccess,
  TaskStore
} from "@holdout/core"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Order from "effect/Order"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Verifier from "../../Verifier.js"

/** A run of the list: no sample ids (a run may have millions), its metrics (live while it runs). */
export interface RunRow {
  readonly runId: string
  readonly candidateId: string
  readonly candidateLabel: string | null
  readonly datasetId: string
  readonly split: string
  readonly tier: Model.AccessTier
  /** A verifier's (admin) run. */
  readonly admin: boolean
  /** Whether the run took a part of its split (`sampleIds` or `numSamples`), not the whole of it. */
  readonly subset: boolean
  readonly status: Model.RunStatus
  readonly createdAt: number
  readonly finishedAt: number | null
  /** Samples planned, and stored so far. */
  readonly planned: number
  readonly stored: number
  /** Samples charged to the split's budget for this run (0 for the verifier's runs). */
  readonly charged: number
  readonly metrics: Model.Metrics | null
  /** The spread of the mean (at block level for an optimizer's run of a non_viewable split). */
  readonly standardError: number | null
  readonly interval: Model.Interval | null
}

/** A failed run with its first errors, or `null` errors when its tier withholds per-sample detail. */
export interface FailedRun {
  readonly runId: string
  readonly candidateId: string
  readonly datasetId: string
  readonly split: string
  readonly tier: Model.AccessTier
  readonly numErrors: number
  readonly numSamples: number
  readonly firstErrors: ReadonlyArray<{ readonly sampleId: number; readonly message: string }> | null
}

/**
 * A candidate's score on a split: the newest run's mean with its interval, and how many runs there
 * were. Whole-split runs and subsets are rows of their own: a subset's mean is not the split's, so
 * the two are never averaged together. Failed runs count (they were charged).
 */
export interface ScoreRow {
  readonly candidateId: string
  readonly datasetId: string
  readonly split: string
  readonly tier: Model.AccessTier
  readonly admin: boolean
  /** Whether these runs took a part of the split, not the whole of it. */
  readonly subset: boolean
  /** The finished runs (completed and failed). */
  readonly runs: number
  readonly failedRuns: number
  readonly newestRunId: string
  readonly mean: number
  readonly standardError: number | null
  readonly interval: Model.Interval | null
  /** The mean over the candidate's runs of their means. */
  readonly meanOfRuns: number
}

/** One charge of a budget and what was left after it. */
export interface BurnPoint {
  readonly at: number
  readonly runId: string
  readonly samples: number
  readonly runsSpent: number
  readonly samplesSpent: number
  readonly runsLeft: number | null
  readonly samplesLeft: number | null
}

/** A budgeted split: limits, spent, left, and the charges over time. */
export interface BudgetRow {
  readonly datasetId: string
  readonly split: string
  readonly tier: Model.AccessTier
  readonly limits: Model.BudgetSnapshot["limits"]
  readonly spent: Model.BudgetSnapshot["spent"]
  readonly remaining: Model.BudgetSnapshot["remaining"]
  readonly overfit: Engine.SplitStatus["overfit"] | null
  readonly burn: ReadonlyArray<BurnPoint>
}

/** The verifier's state: its mode (when the viewer has the verifier), the submission and the answer. */
export interface VerifierState {
  readonly mode: "submit" | "auto_best" | null
  readonly submission: { readonly candidate: string; readonly at: number | null } | null
  readonly answer: Verifier.Answer | null
}

/** Everything but the samples. */
export interface Overview {
  readonly generatedAt: number
  readonly runs: ReadonlyArray<RunRow>
  readonly scores: ReadonlyArray<ScoreRow>
  readonly budgets: ReadonlyArray<BudgetRow>
  readonly failed: ReadonlyArray<FailedRun>
  readonly verifier: VerifierState
  readonly splits: ReadonlyArray<
    { readonly datasetId: string; readonly split: string; readonly tier: Model.AccessTier }
  >
}

/** A sample as a row of the table: texts cut to a readable length. */
export interface SampleRow {
  readonly sampleId: number
  readonly score: number | null
  readonly error: string | null
  readonly evalError: string | null
  readonly feedback: string | null
  readonly output: string
  readonly input: string | null
  readonly attempts: number
  readonly ms: number
}

/** Which samples a page holds. */
export interface SampleFilter {
  /** `errors`: inference or scoring failed; `wrong`: an error or a score below 1; `right`: score 1. */
  readonly status: "all" | "errors" | "wrong" | "right"
  /** Text the output, input, error or feedback must contain (case-insensitive). */
  readonly text: string
}

/** A page of a viewable run's samples. `next` is the cursor of the next page (null on the last). */
export interface SamplesPage {
  readonly runId: string
  readonly datasetId: string
  readonly split: string
  readonly candidateId: string
  readonly samples: ReadonlyArray<SampleRow>
  readonly next: number | null
}

/** Two runs of a viewable split compared, with the samples they differ on. */
export interface CompareResult {
  readonly runA: string
  readonly runB: string
  readonly candidateA: string
  readonly candidateB: string
  readonly datasetId: string
  readonly split: string
  readonly comparison: Compare.PairedComparison
  readonly differing: ReadonlyArray<{
    readonly sampleId: number
    readonly scoreA: number
    readonly scoreB: number
    readonly errorA: string | null
    readonly errorB: string | null
  }>
  readonly differingTotal: number
}

/**
 * A run the viewer shows in aggregate only (its tier is not `viewable`), asked for per sample.
 *
 * @internal
 */
export class AggregateOnly extends Schema.TaggedError<AggregateOnly>()("AggregateOnly", {
  runId: Schema.String,
  split: Schema.String,
  tier: Schema.String
}) {
  override get message() {
    return `Run ${this.runId} is on the ${this.tier} split "${this.split}": the viewer shows it in aggregate only. ` +
      `Per-sample tables and comparisons are for viewable splits.`
  }
}

/**
 * A run id the store does not hold.
 *
 * @internal
 */
export class UnknownRun extends Schema.TaggedError<UnknownRun>()("UnknownRun", { runId: Schema.String }) {
  override get message() {
    return `No run "${this.runId}" is stored; the runs list shows every run's id.`
  }
}

/** How many characters of a sample's texts the table shows. */
const textLimit = 300

const cut = (text: string) => text.length > textLimit ? `${text.slice(0, textLimit)}…` : text

const shown = (value: unknown): string => {
  if (value === undefined) return ""
  if (typeof value === "string") return cut(value)
  try {
    return cut(JSON.stringify(value) ?? String(value))
  } catch {
    return cut(String(value))
  }
}

const firstLine = (text: string | undefined) => text === undefined ? null : cut(text.split("\n")[0] ?? "")

/** A stored sample as a table row. */
export const sampleRow = (sample: Model.SampleRecord): SampleRow => ({
  sampleId: sample.sampleId,
  score: sample.score ?? null,
  error: firstLine(sample.error),
  evalError: firstLine(sample.evalError),
  feedback: sample.feedback === undefined ? null : cut(sample.feedback),
  output: shown(sample.output),
  input: sample.input === undefined ? null : shown(sample.input),
  attempts: sample.attempts,
  ms: Math.max(0, sample.finishedAt - sample.startedAt)
})

/** Whether a row passes a filter; the same rule the page applies to embedded rows. */
export const matches = (row: SampleRow, filter: SampleFilter): boolean => {
  const failed = row.error !== null || row.evalError !== null
  if (filter.status === "errors" && !failed) return false
  if (filter.status === "wrong" && !(failed || (row.score ?? 0) < 1)) return false
  if (filter.status === "right" && (failed || row.score !== 1)) return false
  if (filter.text === "") return true
  const needle = filter.text.toLowerCase()
  return [row.output, row.input, row.error, row.evalError, row.feedback].some((text) =>
    text !== null && text.toLowerCase().includes(needle)
  )
}

const metricsOf = (run: Model.RunRecord): Model.Metrics | null =>
  run.metrics ?? (run.progress === undefined ? null : Metrics.fromProgress(run.progress))

const runRow = (run: Model.RunRecord, tier: Model.AccessTier, splitSize: number | undefined): RunRow => {
  const metrics = metricsOf(run)
  // an optimizer's run of a non_viewable split is whole blocks: its spread is the blocks'
  const spread = metrics === null ? null : metrics.blocks ?? metrics
  return {
    runId: run.runId,
    candidateId: run.candidate.id,
    candidateLabel: run.candidate.label ?? null,
    datasetId: run.datasetId,
    split: run.split,
    tier,
    admin: run.admin,
    // a split whose size is not known (its dataset cannot be read now): the run is taken as whole
    subset: splitSize !== undefined && run.sampleIds.length < splitSize,
    status: run.status,
    createdAt: run.createdAt,
    finishedAt: run.finishedAt ?? null,
    planned: run.sampleIds.length,
    stored: run.progress?.samples ?? metrics?.numSamples ?? 0,
    // the engine charges a run its planned samples, under a reservation named by the run
    charged: run.reservationId === undefined ? 0 : run.sampleIds.length,
    metrics,
    standardError: spread?.standardError ?? null,
    interval: spread?.interval ?? null
  }
}

const scoresOf = (runs: ReadonlyArray<RunRow>): Array<ScoreRow> => {
  const groups = new Map<string, { newest: RunRow; means: Array<number>; runs: number; failed: number }>()
  for (const run of runs) {
    if (run.status !== "completed" && run.status !== "failed") continue
    // subsets apart from whole-split runs: their means are never averaged together
    const key = JSON.stringify([run.candidateId, run.datasetId, run.split, run.admin, run.subset])
    const group = groups.get(key) ?? { newest: run, means: [], runs: 0, failed: 0 }
    // a failed run counts whether or not it has metrics: it was charged
    group.runs++
    if (run.status === "failed") group.failed++
    if (run.metrics !== null) {
      group.means.push(run.metrics.avgFilledScore)
      if (group.newest.metrics === null || run.createdAt >= group.newest.createdAt) group.newest = run
    }
    groups.set(key, group)
  }
  // a group none of whose runs has metrics has no score; its runs are in the runs and failed lists
  return [...groups.values()].filter(({ means }) => means.length > 0).map(({ failed, means, newest, runs }) => ({
    candidateId: newest.candidateId,
    datasetId: newest.datasetId,
    split: newest.split,
    tier: newest.tier,
    admin: newest.admin,
    subset: newest.subset,
    runs,
    failedRuns: failed,
    newestRunId: newest.runId,
    mean: newest.metrics!.avgFilledScore,
    standardError: newest.standardError,
    interval: newest.interval,
    meanOfRuns: means.reduce((sum, mean) => sum + mean, 0) / means.length
  }))
}

/** At most this many errors are shown of a failed run, found in at most this many samples. */
const shownErrors = 3
const errorScan = 2_000

const firstErrors = (store: TaskStore.TaskStore["Type"], runId: string) =>
  TaskStore.streamSamples(store, runId, 500).pipe(
    Stream.take(errorScan),
    Stream.filter(Metrics.isError),
    Stream.take(shownErrors),
    Stream.map((sample) => ({
      sampleId: sample.sampleId,
      message: firstLine(sample.error ?? sample.evalError) ?? ""
    })),
    Stream.runCollect,
    Effect.map((chunk) => Array.from(chunk))
  )

const SubmissionJson = Schema.parseJson(Schema.Struct({
  candidate: Schema.Struct({ id: Schema.String }),
  at: Schema.optional(Schema.Number)
}))
const AnswerJson = Schema.parseJson(Verifier.Answer)

const unreadable = (key: string) => () =>
  new HoldoutError.StoreError({
    op: "getMeta",
    message: `The verifier's state under "${key}" cannot be read; the store was changed by hand or damaged.`
  })

/** The verifier's state, read from the store (never computed: the viewer is read-only). */
export const verifierState: Effect.Effect<VerifierState, HoldoutError.StoreError, TaskStore.TaskStore> = Effect.gen(
  function*() {
    const store = yield* TaskStore.TaskStore
    const verifier = yield* Effect.serviceOption(Verifier.Verifier)
    const submission = yield* store.getMeta(Verifier.stateKeys.submission)
    const answer = yield* store.getMeta(Verifier.stateKeys.answer)
    const decodedSubmission = Option.isNone(submission) ? null : yield* Schema.decode(SubmissionJson)(
      submission.value
    ).pipe(Effect.mapError(unreadable(Verifier.stateKeys.submission)))
    return {
      mode: Option.isSome(verifier) ? verifier.value.mode : null,
      submission: decodedSubmission === null
        ? null
        : { candidate: decodedSubmission.candidate.id, at: decodedSubmission.at ?? null },
      answer: Option.isNone(answer)
        ? null
        : yield* Schema.decode(AnswerJson)(answer.value).pipe(Effect.mapError(unreadable(Verifier.stateKeys.answer)))
    }
  }
)

/**
 * The size of a dataset's split, its dataset's splits read once; `undefined` when the dataset can no
 * longer be read (its runs are then taken as whole-split runs) or lacks the split.
 */
export const splitSizes = (source: DatasetSource.DatasetSource["Type"]) => {
  const sizes = new Map<string, Readonly<Record<string, number>>>()
  return (datasetId: string, split: string) =>
    Effect.gen(function*() {
      let splits = sizes.get(datasetId)
      if (splits === undefined) {
        splits = Option.getOrElse(
          Option.map(yield* Effect.option(source.info(datasetId)), (info) => info.splits),
          () => ({})
        )
        sizes.set(datasetId, splits)
      }
      return splits[split]
    })
}

/** The overview: every run, the scores, the budgets with their burn-down, failed runs, the verifier. */
export const overview: Effect.Effect<
  Overview,
  HoldoutError.StoreError,
  Engine.Engine | Ledger.Ledger | TaskStore.TaskStore | SplitAccess.SplitAccess | DatasetSource.DatasetSource
> = Effect.gen(function*() {
  const store = yield* TaskStore.TaskStore
  const source = yield* DatasetSource.DatasetSource
  const access = yield* SplitAccess.SplitAccess
  const ledger = yield* Ledger.Ledger
  const engine = yield* Engine.Engine
  const tiers = new Map<string, Model.AccessTier>()
  const tierOf = (split: string) =>
    Effect.map(
      tiers.has(split) ? Effect.succeed(tiers.get(split)!) : access.tier(split),
      (tier) => {
        tiers.set(split, tier)
        return tier
      }
    )
  const splitSize = splitSizes(source)
  const runs: Array<RunRow> = []
  for (const run of yield* store.listRuns()) {
    runs.push(runRow(run, yield* tierOf(run.split), yield* splitSize(run.datasetId, run.split)))
  }
  const failed: Array<FailedRun> = []
  for (const run of runs) {
    if (run.status !== "failed") continue
    failed.push({
      runId: run.runId,
      candidateId: run.candidateId,
      datasetId: run.datasetId,
      split: run.split,
      tier: run.tier,
      numErrors: run.metrics?.numErrors ?? 0,
      numSamples: run.metrics?.numSamples ?? 0,
      // an error message is per-sample detail: shown for viewable splits only
      firstErrors: run.tier === "viewable" ? yield* firstErrors(store, run.runId) : null
    })
  }
  const budgets: Array<BudgetRow> = []
  for (const split of yield* engine.status()) {
    const charges = [...yield* ledger.reservations({ datasetId: split.datasetId, split: split.split })]
      .sort((left, right) => left.at - right.at)
    let runsSpent = 0
    let samplesSpent = 0
    const burn = charges.map((charge): BurnPoint => {
      runsSpent += 1
      samplesSpent += charge.samples
      return {
        at: charge.at,
        runId: charge.runId,
        samples: charge.samples,
        runsSpent,
        samplesSpent,
        runsLeft: split.limits.runs === null ? null : Math.max(0, split.limits.runs - runsSpent),
        samplesLeft: split.limits.samples === null ? null : Math.max(0, split.limits.samples - samplesSpent)
      }
    })
    budgets.push({
      datasetId: split.datasetId,
      split: split.split,
      tier: split.tier,
      limits: split.limits,
      spent: split.spent,
      remaining: split.remaining,
      overfit: split.overfit ?? null,
      burn
    })
  }
  const splits = new Map<string, { datasetId: string; split: string; tier: Model.AccessTier }>()
  for (const entry of [...budgets, ...runs]) {
    splits.set(JSON.stringify([entry.datasetId, entry.split]), {
      datasetId: entry.datasetId,
      split: entry.split,
      tier: entry.tier
    })
  }
  return {
    generatedAt: yield* Clock.currentTimeMillis,
    runs,
    scores: scoresOf(runs),
    budgets,
    failed,
    verifier: yield* verifierState,
    splits: [...splits.values()]
  }
})

/** A stored run whose split is viewable; anything else is `UnknownRun` or `AggregateOnly`. */
export const viewableRun = (
  runId: string
): Effect.Effect<
  Model.RunRecord,
  UnknownRun | AggregateOnly | HoldoutError.StoreError,
  TaskStore.TaskStore | SplitAccess.SplitAccess
> =>
  Effect.gen(function*() {
    const store = yield* TaskStore.TaskStore
    const run = yield* store.getRun(runId)
    if (Option.isNone(run)) return yield* new UnknownRun({ runId })
    const tier = yield* (yield* SplitAccess.SplitAccess).tier(run.value.split)
    if (tier !== "viewable") return yield* new AggregateOnly({ runId, split: run.value.split, tier })
    return run.value
  })

/** At most this many samples are looked at for one page of a filtered table. */
const scanLimit = 20_000

/**
 * A page of a viewable run's samples that pass the filter, read from the store page by page: at
 * most `limit` rows, after sample id `after`. `next` continues where the scan stopped.
 */
export const samples = (
  runId: string,
  options: { readonly after?: number; readonly limit: number; readonly filter: SampleFilter }
): Effect.Effect<
  SamplesPage,
  UnknownRun | AggregateOnly | HoldoutError.StoreError,
  TaskStore.TaskStore | SplitAccess.SplitAccess
> =>
  Effect.gen(function*() {
    const run = yield* viewableRun(runId)
    const store = yield* TaskStore.TaskStore
    const rows: Array<SampleRow> = []
    let after = options.after
    let scanned = 0
    let exhausted = false
    const pageSize = Math.max(options.limit, 200)
    while (rows.length < options.limit && scanned < scanLimit) {
      const page = yield* store.listSamples(runId, TaskStore.pageAfter(after, pageSize))
      let consumed = 0
      for (const sample of page) {
        consumed++
        scanned++
        after = sample.sampleId
        const row = sampleRow(sample)
        if (matches(row, options.filter)) rows.push(row)
        if (rows.length === options.limit) break
      }
      // a short page read to its end is the last
      if (page.length < pageSize && consumed === page.length) {
        exhausted = true
        break
      }
    }
    return {
      runId,
      datasetId: run.datasetId,
      split: run.split,
      candidateId: run.candidate.id,
      samples: rows,
      next: exhausted || after === undefined ? null : after
    }
  })

/** At most this many samples the runs differ on are listed. */
const differingLimit = 200

/** Two runs of one viewable split compared by sample, with the samples they differ on. */
export const compare = (
  runA: string,
  runB: string
): Effect.Effect<
  CompareResult,
  UnknownRun | AggregateOnly | HoldoutError.AccessDenied | HoldoutError.InvalidRequest | HoldoutError.StoreError,
  TaskStore.TaskStore | SplitAccess.SplitAccess
> =>
  Effect.gen(function*() {
    const a = yield* viewableRun(runA)
    const b = yield* viewableRun(runB)
    // not admin: the comparison checks the tiers itself, the viewer's rule and the optimizer's are one
    const comparison = yield* Compare.runs(a, b)
    const store = yield* TaskStore.TaskStore
    const keyed = (runId: string) =>
      Stream.map(TaskStore.streamSamples(store, runId), (sample) => [sample.sampleId, sample] as const)
    const filled = (sample: Model.SampleRecord) => Metrics.isError(sample) ? 0 : (sample.score ?? 0)
    const differing: Array<CompareResult["differing"][number]> = []
    let differingTotal = 0
    yield* Stream.runForEach(
      Stream.zipAllSortedByKeyWith(keyed(runA), {
        other: keyed(runB),
        onSelf: () => undefined,
        onOther: () => undefined,
        onBoth: (left: Model.SampleRecord, right: Model.SampleRecord) => [left, right] as const,
        order: Order.number
      }),
      ([sampleId, pair]) =>
        Effect.sync(() => {
          if (pair === undefined) return
          const [left, right] = pair
          const scoreA = filled(left)
          const scoreB = filled(right)
          if (scoreA === scoreB && Metrics.isError(left) === Metrics.isError(right)) return
          differingTotal++
          if (differing.length < differingLimit) {
            differing.push({
              sampleId,
              scoreA,
              scoreB,
              errorA: firstLine(left.error ?? left.evalError),
              errorB: firstLine(right.error ?? right.evalError)
            })
          }
        })
    )
    return {
      runA,
      runB,
      candidateA: a.candidate.id,
      candidateB: b.candidate.id,
      datasetId: a.datasetId,
      split: a.split,
      comparison,
      differing,
      differingTotal
    }
  })

/** How many samples of each viewable run a report embeds, and of how many runs (the newest). */
export const embeddedSamples = 200
export const embeddedRuns = 100

/** The data a self-contained page embeds: the overview, first pages of samples, and comparisons. */
export interface Embedded {
  readonly overview: Overview
  readonly samples: Readonly<Record<string, SamplesPage>>
  readonly comparisons: ReadonlyArray<CompareResult>
}

/** At most this many candidates per viewable split are compared pairwise in a report. */
const comparedCandidates = 6

/**
 * The data of a report: the overview, the first samples of every viewable run, and the comparison
 * of the newest runs of every pair of candidates on each viewable split.
 */
export const embedded: Effect.Effect<
  Embedded,
  HoldoutError.StoreError,
  Engine.Engine | Ledger.Ledger | TaskStore.TaskStore | SplitAccess.SplitAccess | DatasetSource.DatasetSource
> = Effect.gen(function*() {
  const data = yield* overview
  const pages: Record<string, SamplesPage> = {}
  const all: SampleFilter = { status: "all", text: "" }
  // the newest viewable runs only: a report stays a file a browser opens at once
  const newestViewable = data.runs.filter((run) => run.tier === "viewable").slice(-embeddedRuns)
  for (const run of newestViewable) {
    const page = yield* samples(run.runId, { limit: embeddedSamples, filter: all }).pipe(
      Effect.map(Option.some),
      Effect.catchTags({
        UnknownRun: () => Effect.succeed(Option.none()),
        AggregateOnly: () => Effect.succeed(Option.none())
      })
    )
    if (Option.isSome(page)) pages[run.runId] = page.value
  }
  const comparisons: Array<CompareResult> = []
  for (const split of data.splits) {
    if (split.tier !== "viewable") continue
    const newest = data.scores.filter((score) =>
      score.datasetId === split.datasetId && score.split === split.split && !score.admin
    ).slice(0, comparedCandidates)
    for (let first = 0; first < newest.length; first++) {
      for (let second = first + 1; second < newest.length; second++) {
        // a pair that cannot be compared (no shared samples, a run gone) is left out; a store failure is not
        const result = yield* compare(newest[first]!.newestRunId, newest[second]!.newestRunId).pipe(
          Effect.map(Option.some),
          Effect.catchTags({
            UnknownRun: () => Effect.succeed(Option.none()),
            AggregateOnly: () => Effect.succeed(Option.none()),
            AccessDenied: () => Effect.succeed(Option.none()),
            InvalidRequest: () => Effect.succeed(Option.none())
          })
        )
        if (Option.isSome(result)) comparisons.push(result.value)
      }
    }
  }
  return { overview: data, samples: pages, comparisons }
})
