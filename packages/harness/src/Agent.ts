/**
 * What the optimizer may do, written once for every frontend that serves it: the sidecar's `agent`
 * routes and the MCP tools (`Mcp`) call these, so both apply the same rules, the same tier projections
 * and fail with the same errors. None of them is an admin power: evaluations are the optimizer's
 * (charged, tier-gated), and runs of the verifier or on `no_access` splits are as unknown as runs never
 * made (`RunNotFound`).
 *
 * - `evaluate`: an evaluation projected by its split's tier (`View`), its results written by tier when
 *   a results directory is given, and the split's budget left.
 * - `samples`: a page of a `viewable` run's per-sample records; `compare`: two `viewable` runs paired.
 * - `status`: the splits the optimizer may evaluate with their budgets; `submit`: the final candidate.
 * - `runs`: the optimizer's runs, each summarised as its tier allows; `show`: one of them, with a page of
 *   its per-sample records when its split is `viewable`. A run on a split whose means are told through
 *   a release mechanism shows no figure of its scores (the mechanism told one when it was evaluated).
 *
 * @since 0.1.0
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import { Compare, Engine, HoldoutError, Ledger, Model, SplitAccess, TaskStore, View } from "@holdout/core"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Results from "./Results.js"
import type { CompareResponse, EvalResponse, Status } from "./SidecarApi.js"
import { defaultSamplesLimit, RunNotFound } from "./SidecarApi.js"
import * as Verifier from "./Verifier.js"

/**
 * A run's summary as the optimizer may see it again: with its metrics (at block level on a
 * `non_viewable` split), or with nothing of its scores when a release mechanism tells its split's means
 * (`withheld` names it) or while no sample of it is recorded (`withheld` is null).
 *
 * @since 0.1.0
 * @category models
 */
export const RunSummary = Schema.Union(
  View.ExperimentSummary,
  Schema.Struct({
    ...View.ExperimentSummary.pick("runId", "candidateId", "datasetId", "split", "status", "createdAt").fields,
    candidateLabel: Schema.optional(Schema.String),
    finishedAt: Schema.optional(Schema.Number),
    withheld: Schema.NullOr(Schema.Literal("thresholdout", "ladder"))
  })
)

/**
 * @since 0.1.0
 * @category models
 */
export type RunSummary = typeof RunSummary.Type

/**
 * One of the optimizer's runs in a listing.
 *
 * @since 0.1.0
 * @category models
 */
export const RunEntry = Schema.Struct({
  tier: Schema.Literal("viewable", "non_viewable"),
  summary: RunSummary
})

/**
 * @since 0.1.0
 * @category models
 */
export type RunEntry = typeof RunEntry.Type

/**
 * The optimizer's runs, oldest first.
 *
 * @since 0.1.0
 * @category models
 */
export const Runs = Schema.Struct({ runs: Schema.Array(RunEntry) })

/**
 * One run as the optimizer may see it: on a `viewable` split also its record and a page of its
 * per-sample records (`samples.next` is the cursor of the following page); on a `non_viewable` split
 * the summary only.
 *
 * @since 0.1.0
 * @category models
 */
export const Shown = Schema.Struct({
  tier: Schema.Literal("viewable", "non_viewable"),
  summary: RunSummary,
  run: Schema.optional(Model.RunRecord),
  samples: Schema.optional(View.SamplePageView)
})

/**
 * @since 0.1.0
 * @category models
 */
export type Shown = typeof Shown.Type

/**
 * A page of samples: after sample id `after` (from the first when absent), at most `limit` of them.
 *
 * @since 0.1.0
 * @category models
 */
export interface Page {
  readonly after?: number | undefined
  readonly limit?: number | undefined
}

/**
 * The optimizer's operations.
 *
 * @since 0.1.0
 * @category models
 */
export interface Agent {
  readonly evaluate: (request: Model.EvalRequest) => Effect.Effect<typeof EvalResponse.Type, Engine.EvaluateError>
  readonly samples: (
    runId: string,
    page?: Page
  ) => Effect.Effect<View.SamplePageView, RunNotFound | HoldoutError.AccessDenied | HoldoutError.StoreError>
  readonly compare: (
    runA: string,
    runB: string
  ) => Effect.Effect<
    typeof CompareResponse.Type,
    RunNotFound | HoldoutError.AccessDenied | HoldoutError.InvalidRequest | HoldoutError.StoreError
  >
  readonly status: () => Effect.Effect<typeof Status.Type, HoldoutError.StoreError>
  readonly submit: (
    candidate: Model.Candidate
  ) => Effect.Effect<
    { readonly submitted: Model.Candidate },
    HoldoutError.InvalidRequest | HoldoutError.StoreError | HoldoutError.StrategyError
  >
  readonly runs: () => Effect.Effect<typeof Runs.Type, HoldoutError.StoreError>
  readonly show: (runId: string, page?: Page) => Effect.Effect<Shown, RunNotFound | HoldoutError.StoreError>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Where the optimizer's evaluations are written by tier (default: none are written). */
  readonly resultsDir?: string
}

/**
 * What is wrong with an input, in one line: a clause per offending field, unknown fields by name, other
 * problems with the schema's message.
 *
 * @since 0.1.0
 * @category constructors
 */
export const describeIssues = (issues: ReadonlyArray<ParseResult.ArrayFormatterIssue>): string => {
  const seen = new Set<string>()
  const parts: Array<string> = []
  for (const issue of issues) {
    const field = issue.path.map(String).join(".")
    if (seen.has(field)) continue
    seen.add(field)
    parts.push(
      issue._tag === "Unexpected"
        ? `unknown field "${field}" (${issue.message.replace(/^is unexpected, e/, "e")})`
        : field === ""
        ? issue.message
        : `"${field}": ${issue.message}`
    )
  }
  return parts.join("; ")
}

/** A store failure is logged with its cause; the caller is told `_tag`, `op` and a message naming no file. */
const logStoreErrors = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.tapError(
    effect,
    (error) =>
      typeof error === "object" && error !== null && "_tag" in error && error._tag === "StoreError"
        ? Effect.logError("Sidecar: a store operation failed", error)
        : Effect.void
  )

/** A run's fields without anything of its scores. */
const runFields = (run: Model.RunRecord, withheld: "thresholdout" | "ladder" | null): RunSummary => ({
  runId: run.runId,
  candidateId: run.candidate.id,
  ...(run.candidate.label === undefined ? {} : { candidateLabel: run.candidate.label }),
  datasetId: run.datasetId,
  split: run.split,
  status: run.status,
  createdAt: run.createdAt,
  ...(run.finishedAt === undefined ? {} : { finishedAt: run.finishedAt }),
  withheld
})

/**
 * The optimizer's operations over the stack's services.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<
  Agent,
  never,
  | Engine.Engine
  | Verifier.Verifier
  | SplitAccess.SplitAccess
  | Ledger.Ledger
  | TaskStore.TaskStore
  | FileSystem.FileSystem
  | Path.Path
> =>
  Effect.gen(function*() {
    const engine = yield* Engine.Engine
    const verifier = yield* Verifier.Verifier
    const access = yield* SplitAccess.SplitAccess
    const ledger = yield* Ledger.Ledger
    const store = yield* TaskStore.TaskStore
    const context = yield* Effect.context<
      SplitAccess.SplitAccess | TaskStore.TaskStore | FileSystem.FileSystem | Path.Path
    >()
    const submitEnabled = verifier.mode === "submit"
    const compareLock = yield* Effect.makeSemaphore(1)

    /** A run the optimizer may know of, with its tier; any other is `RunNotFound`, whatever the reason. */
    const visible = (runId: string) =>
      Effect.gen(function*() {
        const run = yield* store.getRun(runId)
        // the verifier's runs, and runs on no_access splits, are as unknown as runs never made
        if (Option.isNone(run) || run.value.admin) return yield* new RunNotFound({ runId })
        const tier = yield* access.tier(run.value.split)
        if (tier === "no_access") return yield* new RunNotFound({ runId })
        return { run: run.value, tier }
      })

    /** The split of each release mechanism that is not `exact`, from the engine's status. */
    const mechanisms = Effect.map(
      engine.status(),
      (splits) =>
        new Map(splits.flatMap((entry) => entry.release === undefined ? [] : [[entry.split, entry.release] as const]))
    )

    /** A stored run's summary for its tier: never more than `evaluate` answered when it was made. */
    const summaryOf = (
      run: Model.RunRecord,
      tier: "viewable" | "non_viewable",
      withheld: "thresholdout" | "ladder" | undefined
    ) =>
      Effect.gen(function*() {
        if (tier === "non_viewable" && withheld !== undefined) return runFields(run, withheld)
        // the figures of an unfinished non_viewable run would be sums over part of a block
        const finished = run.status === "completed" || run.status === "failed"
        if (tier === "non_viewable" && !finished) return runFields(run, null)
        // a finished run carries its metrics; a run without any recorded sample has none to show
        const experiment = yield* engine.experiment(run.runId).pipe(
          Effect.catchTags({
            InvalidRequest: () => Effect.succeed(undefined),
            RunFailed: () => Effect.succeed(undefined)
          })
        )
        if (experiment === undefined) return runFields(run, null)
        // the tier is not no_access, so the projection cannot fail
        return (yield* View.project(experiment, tier).pipe(Effect.orDie)).summary as RunSummary
      })

    /** A page of a run's samples for its tier: nothing per sample is read unless the tier shows it. */
    const pageOf = (run: Model.RunRecord, tier: "viewable" | "non_viewable", page: Page) =>
      Effect.gen(function*() {
        const limit = page.limit ?? defaultSamplesLimit
        const records = tier === "viewable"
          ? yield* store.listSamples(run.runId, { limit, ...(page.after === undefined ? {} : { after: page.after }) })
          : []
        return yield* View.samplePage(run, tier, records, limit)
      })

    return {
      evaluate: (request) =>
        Effect.gen(function*() {
          const experiment = yield* engine.evaluate(request)
          const view = yield* View.experiment(experiment).pipe(Effect.provide(context))
          const resultPath = options.resultsDir === undefined
            ? Option.none()
            : yield* Results.write(options.resultsDir, experiment).pipe(Effect.provide(context))
          // the evaluated split's budget only (it was charged, so it is budgeted)
          const budget = yield* Effect.option(ledger.get({ datasetId: request.datasetId, split: request.split }))
          return {
            experiment: view,
            resultPath: Option.getOrNull(resultPath),
            remaining: Option.getOrNull(Option.map(budget, (snapshot) => snapshot.remaining))
          }
        }).pipe(logStoreErrors),
      samples: (runId, page = {}) =>
        Effect.flatMap(visible(runId), ({ run, tier }) => pageOf(run, tier, page)).pipe(logStoreErrors),
      compare: (runA, runB) =>
        Effect.gen(function*() {
          const a = (yield* visible(runA)).run
          const b = (yield* visible(runB)).run
          // the bootstrap holds the event loop for a while on large runs: one comparison at a time
          const comparison = yield* compareLock.withPermits(1)(Compare.runs(a, b).pipe(Effect.provide(context)))
          return { runA: a.runId, runB: b.runId, datasetId: a.datasetId, split: a.split, comparison }
        }).pipe(logStoreErrors),
      status: () =>
        Effect.map(logStoreErrors(engine.status()), (splits) => ({
          submitEnabled,
          splits: splits.flatMap((entry) =>
            entry.tier === "no_access" ? [] : [{
              datasetId: entry.datasetId,
              split: entry.split,
              tier: entry.tier,
              limits: entry.limits,
              spent: entry.spent,
              remaining: entry.remaining,
              ...(entry.overfit === undefined ? {} : { overfit: entry.overfit })
            }]
          )
        })),
      submit: (candidate) =>
        Effect.gen(function*() {
          if (!submitEnabled) {
            return yield* new HoldoutError.InvalidRequest({
              message: "Submissions are disabled: the verifier picks the best candidate itself (auto_best)."
            })
          }
          return { submitted: yield* verifier.submit(candidate) }
        }).pipe(logStoreErrors),
      runs: () =>
        Effect.gen(function*() {
          const released = yield* mechanisms
          const runs: Array<RunEntry> = []
          for (const run of yield* store.listRuns()) {
            if (run.admin) continue
            const tier = yield* access.tier(run.split)
            if (tier === "no_access") continue
            runs.push({ tier, summary: yield* summaryOf(run, tier, released.get(run.split)) })
          }
          return { runs: runs.sort((a, b) => a.summary.createdAt - b.summary.createdAt) }
        }).pipe(logStoreErrors),
      show: (runId, page = {}) =>
        Effect.gen(function*() {
          const { run, tier } = yield* visible(runId)
          const summary = yield* summaryOf(run, tier, (yield* mechanisms).get(run.split))
          if (tier !== "viewable") return { tier, summary }
          // a viewable page cannot be refused
          const samples = yield* pageOf(run, tier, page).pipe(Effect.catchTag("AccessDenied", Effect.die))
          return { tier, summary, run, samples }
        }).pipe(logStoreErrors)
    } satisfies Agent
  })
