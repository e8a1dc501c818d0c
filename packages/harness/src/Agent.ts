/**
 * What the optimizer may do, written once for every frontend that serves it: the sidecar's `agent`
 * routes and the MCP tools (`Mcp`) call these, so both apply the same rules, the same tier projections
 * and fail with the same errors. None of them is an admin power: evaluations are the optimizer's
 * (charged, tier-gated), and runs of the verifier or on `no_access` splits are as unknown as runs never
 * made (`RunNotFound`).
 *
 * - `evaluate`: an evaluation projected by its split's tier (`View`), its results written by tier when
 *   a results directory is given, and the split's budget left; the baseline's first evaluation of a
 *   split is free when the verifier says so (`FreeBaseline`).
 * - `samples`: a page of a `viewable` run's per-sample records; `compare`: two `viewable` runs paired.
 * - `status`: the splits the optimizer may evaluate with their budgets (what is left for it; the part a
 *   split reserves for the verifier as `reserved`) and whether the free baseline is still to be had;
 *   `submit`: the final candidate.
 * - `runs`: the optimizer's runs, each summarised as its tier allows; `show`: one of them, with a page of
 *   its per-sample records when its split is `viewable`. A run on a split whose means are told through
 *   a release mechanism shows no figure of its scores (the mechanism told one when it was evaluated).
 *
 * @since 0.1.0
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpApiError from "@effect/platform/HttpApiError"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import type * as Path from "@effect/platform/Path"
import type { Model } from "@holdout/core"
import { Compare, Engine, EvalStrategy, HoldoutError, Ledger, SplitAccess, TaskStore, View } from "@holdout/core"
import * as Effect from "effect/Effect"
import * as Equivalence from "effect/Equivalence"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as FreeBaseline from "./FreeBaseline.js"
import * as Results from "./Results.js"
import type {
  CompareResponse,
  EvalResponse,
  PayloadTooLarge,
  RunEntry,
  Runs,
  RunSummary,
  Shown,
  Status
} from "./SidecarApi.js"
import { Api, defaultSamplesLimit, RunNotFound } from "./SidecarApi.js"
import * as Verifier from "./Verifier.js"

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
 * The optimizer's operations. `E` is how a frontend can fail besides the operations' own errors (a
 * client of a sidecar: `SidecarUnavailable`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Agent<E = never> {
  readonly evaluate: (request: Model.EvalRequest) => Effect.Effect<typeof EvalResponse.Type, Engine.EvaluateError | E>
  readonly samples: (
    runId: string,
    page?: Page
  ) => Effect.Effect<View.SamplePageView, RunNotFound | HoldoutError.AccessDenied | HoldoutError.StoreError | E>
  readonly compare: (
    runA: string,
    runB: string
  ) => Effect.Effect<
    typeof CompareResponse.Type,
    RunNotFound | HoldoutError.AccessDenied | HoldoutError.InvalidRequest | HoldoutError.StoreError | E
  >
  readonly status: () => Effect.Effect<typeof Status.Type, HoldoutError.StoreError | E>
  readonly submit: (
    candidate: Model.Candidate
  ) => Effect.Effect<
    { readonly submitted: Model.Candidate },
    HoldoutError.InvalidRequest | HoldoutError.StoreError | HoldoutError.StrategyError | E
  >
  readonly runs: () => Effect.Effect<typeof Runs.Type, HoldoutError.StoreError | E>
  readonly show: (
    runId: string,
    page?: Page
  ) => Effect.Effect<typeof Shown.Type, RunNotFound | HoldoutError.StoreError | E>
}

/**
 * A client of a sidecar could not reach it, or had an answer the API does not declare.
 *
 * @since 0.1.0
 * @category errors
 */
export class SidecarUnavailable extends Schema.TaggedError<SidecarUnavailable>()("SidecarUnavailable", {
  url: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `The sidecar at ${this.url} could not be reached or answered unexpectedly (${this.reason}). ` +
      "Start it with `holdout serve -c holdout.yaml`, or give its address with --url or $HOLDOUT_URL."
  }
}

/** The first line of a message, at most 200 characters. */
const firstLine = (text: string) => {
  const line = text.split("\n")[0]!.trim()
  return line.length > 200 ? `${line.slice(0, 199)}…` : line
}

/** What a client of the sidecar fails with when it did not get a declared answer. */
type Unreached = HttpClientError.HttpClientError | ParseResult.ParseError | HttpApiError.HttpApiDecodeError

const isUnreached = (error: unknown): error is Unreached =>
  HttpClientError.isHttpClientError(error) || ParseResult.isParseError(error) ||
  error instanceof HttpApiError.HttpApiDecodeError

/** What lies under a transport error: the system error code (`ECONNREFUSED`…), else the innermost message. */
const codeOf = (cause: unknown): string => {
  let innermost = ""
  for (let depth = 0; depth < 5 && typeof cause === "object" && cause !== null; depth++) {
    if ("code" in cause && typeof cause.code === "string") return `, ${cause.code}`
    if ("message" in cause && typeof cause.message === "string") innermost = cause.message
    cause = "cause" in cause ? cause.cause : undefined
  }
  return innermost === "" ? "" : `, ${innermost}`
}

/**
 * The optimizer's operations through a running sidecar at `url` (its `agent` routes): the same
 * answers and errors as in process, `PayloadTooLarge` for a request over the sidecar's body limit, and
 * `SidecarUnavailable` when it cannot be reached.
 *
 * @since 0.1.0
 * @category constructors
 */
export const remote = (
  url: string
): Effect.Effect<Agent<SidecarUnavailable | PayloadTooLarge>, never, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const client = yield* HttpApiClient.make(Api, { baseUrl: url })
    const reach = <A, E>(
      effect: Effect.Effect<A, E | Unreached>
    ): Effect.Effect<A, Exclude<E, Unreached> | SidecarUnavailable> =>
      Effect.catchIf(
        effect,
        isUnreached,
        (error) =>
          Effect.fail(
            new SidecarUnavailable({ url, reason: firstLine(`${error._tag}: ${error.message}${codeOf(error.cause)}`) })
          )
      ) as Effect.Effect<A, Exclude<E, Unreached> | SidecarUnavailable>
    const pageParams = (page: Page) => ({
      ...(page.after === undefined ? {} : { after: page.after }),
      ...(page.limit === undefined ? {} : { limit: page.limit })
    })
    return {
      evaluate: (request) =>
        reach(client.agent.eval({ payload: request })).pipe(
          // without `async` the sidecar answers the evaluation itself
          Effect.filterOrFail(
            (reply): reply is typeof EvalResponse.Type => !("jobId" in reply),
            () => new SidecarUnavailable({ url, reason: "it answered a job instead of the evaluation" })
          )
        ),
      samples: (runId, page = {}) => reach(client.agent.samples({ path: { runId }, urlParams: pageParams(page) })),
      compare: (runA, runB) => reach(client.agent.compare({ urlParams: { runA, runB } })),
      status: () => reach(client.agent.status()),
      submit: (candidate) => reach(client.agent.submit({ payload: { candidate } })),
      runs: () => reach(client.agent.runs()),
      show: (runId, page = {}) => reach(client.agent.show({ path: { runId }, urlParams: pageParams(page) }))
    } satisfies Agent<SidecarUnavailable | PayloadTooLarge>
  })

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

/**
 * Logs a store failure with its cause; the caller is told `_tag`, `op` and a message naming no file.
 *
 * @since 0.1.0
 * @category combinators
 */
export const logStoreErrors = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.tapError(
    effect,
    (error) =>
      typeof error === "object" && error !== null && "_tag" in error && error._tag === "StoreError"
        ? Effect.logError("Sidecar: a store operation failed", error)
        : Effect.void
  )

/** Whether two answers of `FreeBaseline.available` are the same. */
const sameBaseline = Option.getEquivalence(Equivalence.boolean)

/** A candidate of the optimizer's: the verifier's model metadata (a transfer target's) is not for it to set. */
const notReserved = (candidate: Model.Candidate): Effect.Effect<void, HoldoutError.InvalidRequest> =>
  candidate.metadata !== undefined && EvalStrategy.modelOverrideKey in candidate.metadata
    ? Effect.fail(
      new HoldoutError.InvalidRequest({
        message: `candidate.metadata "${EvalStrategy.modelOverrideKey}" is set by the verifier only (a transfer ` +
          `target's model): remove it; nothing was charged.`
      })
    )
    : Effect.void

/** A run's fields without anything of its scores. */
const runFields = (run: Model.RunRecord, withheld: "thresholdout" | "ladder" | null): typeof RunSummary.Type => ({
  ...View.runSummaryFields(run),
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
    const free = yield* FreeBaseline.make(verifier.freeBaseline)
    const compareLock = yield* Effect.makeSemaphore(1)
    /** The last status answered and what it was made of: the same answer while they are the same. */
    let lastStatus: {
      readonly entries: ReadonlyArray<Engine.SplitStatus>
      readonly freeBaselines: ReadonlyArray<Option.Option<boolean>>
      readonly freeChanges: number
      readonly status: typeof Status.Type
    } = { entries: [], freeBaselines: [], freeChanges: -1, status: { submitEnabled, splits: [] } }

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
        return (yield* View.project(experiment, tier).pipe(Effect.orDie)).summary as typeof RunSummary.Type
      })

    /** A page of a run's samples for its tier: nothing per sample is read unless the tier shows it. */
    const pageOf = (run: Model.RunRecord, tier: "viewable" | "non_viewable", page: Page) =>
      Effect.gen(function*() {
        const limit = page.limit ?? defaultSamplesLimit
        const records = tier === "viewable"
          ? yield* store.listSamples(run.runId, TaskStore.pageAfter(page.after, limit))
          : []
        return yield* View.samplePage(run, tier, records, limit)
      })

    return {
      evaluate: (request) =>
        Effect.gen(function*() {
          yield* notReserved(request.candidate)
          const experiment = yield* free.evaluate(request)
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
        Effect.gen(function*() {
          const entries = (yield* engine.status()).filter((entry) => entry.tier !== "no_access")
          const sameEntries = entries.length === lastStatus.entries.length &&
            entries.every((entry, index) => entry === lastStatus.entries[index])
          // the free baselines are read again with the budgets (the same entries: budgets read within
          // statusMaxAge, nothing charged here since), and at once after a claim of this process
          const freeChanges = free.changes()
          if (sameEntries && freeChanges === lastStatus.freeChanges) return lastStatus.status
          const freeBaselines = yield* Effect.forEach(entries, free.available)
          if (
            sameEntries &&
            freeBaselines.every((available, index) => sameBaseline(available, lastStatus.freeBaselines[index]!))
          ) {
            lastStatus = { ...lastStatus, freeChanges }
            return lastStatus.status
          }
          const splits = entries.map((entry, index): typeof Status.Type.splits[number] => {
            const freeBaseline = freeBaselines[index]!
            return {
              datasetId: entry.datasetId,
              split: entry.split,
              tier: entry.tier === "viewable" ? "viewable" : "non_viewable",
              limits: entry.limits,
              spent: entry.spent,
              remaining: entry.remaining,
              ...(entry.reserved === undefined ? {} : { reserved: entry.reserved }),
              ...(entry.overfit === undefined ? {} : { overfit: entry.overfit }),
              ...(Option.isNone(freeBaseline) ? {} : { freeBaseline: freeBaseline.value })
            }
          })
          lastStatus = { entries, freeBaselines, freeChanges, status: { submitEnabled, splits } }
          return lastStatus.status
        }).pipe(logStoreErrors),
      submit: (candidate) =>
        Effect.gen(function*() {
          if (!submitEnabled) {
            return yield* new HoldoutError.InvalidRequest({
              message: "Submissions are disabled: the verifier picks the best candidate itself (auto_best)."
            })
          }
          yield* notReserved(candidate)
          return { submitted: yield* verifier.submit(candidate) }
        }).pipe(logStoreErrors),
      runs: () =>
        Effect.gen(function*() {
          const released = yield* mechanisms
          const runs: Array<typeof RunEntry.Type> = []
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
