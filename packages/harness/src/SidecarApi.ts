/**
 * The sidecar's HTTP API, as an `HttpApi` definition: the server implements it, clients derive
 * from it, and it yields the OpenAPI document served at `GET /openapi.json`.
 *
 * `GET /runs/{runId}/samples?after=&limit=` gives a `viewable` run's per-sample records in pages with a
 * cursor (`next`); a `non_viewable` run is 403 `AccessDenied`, and a run the optimizer may not know of
 * (unknown, the verifier's, or on a `no_access` split) is the same 404 `RunNotFound` whatever the
 * reason, so that not even its existence is confirmed.
 *
 * `GET /runs` lists the optimizer's runs, each summarised as its tier allows, and `GET /runs/{runId}?after=&limit=`
 * shows one, with a page of its per-sample records on a `viewable` split (`Agent.runs` / `Agent.show`).
 *
 * `GET /compare?runA=&runB=` compares two of the optimizer's runs of one `viewable` split, paired by
 * sample (`Compare.runs`): the mean difference, its bootstrap interval and the permutation p-values.
 * Runs it may not know of are 404 `RunNotFound` as above; a `non_viewable` run is 403 `AccessDenied`.
 *
 * `POST /eval` with `async: true` answers 202 `JobAccepted` once the evaluation is charged, and
 * `GET /eval/{jobId}` its `JobState` (`Jobs`); an unknown job is 404 `JobNotFound`.
 *
 * Every error is a JSON body carrying `_tag`, `message` and the error's public fields (never a store
 * error's cause, nor its message, which may name files): 400 `InvalidRequest` / `UnknownSplit` /
 * `SubsetTooSmall` (and malformed or unknown-field bodies, as `InvalidRequest`), 401 `Unauthorized`,
 * 403 `AccessDenied` / `SplitNotBudgeted`, 404 `RunNotFound` and unknown routes, 409 `IdempotencyConflict`, 413
 * for oversized bodies, 429 `BudgetExhausted`, 500 for the rest.
 *
 * Bodies are strict: the payload schemas carry `onExcessProperty: "error"`, so a field the API does
 * not know (at any depth) is refused rather than dropped.
 *
 * @since 0.1.0
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import * as OpenApi from "@effect/platform/OpenApi"
import { Compare, HoldoutError, Model, View } from "@holdout/core"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { Answer } from "./Verifier.js"
import { version } from "./version.js"

/**
 * One split as the optimizer may know it (`no_access` splits are never listed).
 *
 * @since 0.1.0
 * @category models
 */
export const SplitInfo = Schema.Struct({
  datasetId: Schema.String,
  split: Schema.String,
  tier: Schema.Literal("viewable", "non_viewable"),
  limits: Model.BudgetSnapshot.fields.limits,
  spent: Model.BudgetSnapshot.fields.spent,
  /** What the optimizer may still spend. */
  remaining: Model.BudgetSnapshot.fields.remaining,
  /** What is left of the part of the budget reserved for the verifier's finalize (`reservedForFinalize`). */
  reserved: Model.BudgetSnapshot.fields.reserved,
  /** With a free baseline: whether the baseline's first, uncharged evaluation of the split is still to be had. */
  freeBaseline: Schema.optional(Schema.Boolean),
  /**
   * A thresholdout split's overfitting budget: over-threshold answers allowed (`limit`), given
   * (`spent`) and left (`remaining`); past it, evaluations are `BudgetExhausted` (reason `overfit`).
   */
  overfit: Schema.optional(Schema.Struct({
    limit: Schema.NullOr(Schema.Number),
    spent: Schema.Number,
    remaining: Schema.NullOr(Schema.Number)
  }))
})

/**
 * @since 0.1.0
 * @category models
 */
export const Status = Schema.Struct({
  submitEnabled: Schema.Boolean,
  splits: Schema.Array(SplitInfo)
})

/**
 * What `/eval` answers: the experiment projected by its split's tier, where the results directory
 * holds it, and the split's budget left.
 *
 * @since 0.1.0
 * @category models
 */
export const EvalResponse = Schema.Struct({
  experiment: View.ExperimentView,
  resultPath: Schema.NullOr(Schema.String),
  remaining: Schema.NullOr(Model.BudgetSnapshot.fields.remaining)
})

/** Decoding refuses a field the schema does not declare, at any depth, instead of dropping it. */
const strict = { parseOptions: { onExcessProperty: "error" } } as const

/**
 * The body of `POST /eval`: `Model.EvalRequest`, strict (an unknown field is an error), and `async`:
 * when true, the sidecar answers 202 with a job id as soon as the evaluation is charged (`Jobs`).
 *
 * @since 0.1.0
 * @category models
 */
export const EvalPayload = Schema.Struct({
  ...Model.EvalRequest.fields,
  async: Schema.optional(Schema.Boolean)
}).annotations(strict)

/**
 * The body of `POST /submit`, strict (an unknown field is an error).
 *
 * @since 0.1.0
 * @category models
 */
export const SubmitRequest = Schema.Struct({ candidate: Model.Candidate }).annotations(strict)

/**
 * The query of `GET /runs/{runId}/samples`: the page after sample id `after` (from the first sample
 * when absent), at most `limit` samples (default 100, at most 1,000).
 *
 * @since 0.1.0
 * @category models
 */
export const SamplesQuery = Schema.Struct({
  after: Schema.optional(Schema.NumberFromString.pipe(Schema.int(), Schema.greaterThanOrEqualTo(0))),
  limit: Schema.optional(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 1000)))
})

/**
 * The query of `GET /compare`: two runs of one `viewable` split; differences are A − B.
 *
 * @since 0.1.0
 * @category models
 */
export const CompareQuery = Schema.Struct({
  runA: Schema.NonEmptyString,
  runB: Schema.NonEmptyString
})

/**
 * What `GET /compare` answers: the two runs and their paired comparison.
 *
 * @since 0.1.0
 * @category models
 */
export const CompareResponse = Schema.Struct({
  runA: Schema.String,
  runB: Schema.String,
  datasetId: Schema.String,
  split: Schema.String,
  comparison: Compare.PairedComparison
})

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
 * The page size of `GET /runs/{runId}/samples` when the caller gives none.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultSamplesLimit = 100

/**
 * One evaluation in the verifier's listing (unredacted).
 *
 * @since 0.1.0
 * @category models
 */
export const ExperimentEntry = Schema.Struct({
  runId: Schema.String,
  candidateId: Schema.String,
  datasetId: Schema.String,
  split: Schema.String,
  admin: Schema.Boolean,
  status: Model.RunStatus,
  createdAt: Schema.Number,
  metrics: Schema.NullOr(Model.Metrics)
})

/**
 * An error schema whose encoded form is what a caller may see: `_tag`, `message` and the error's
 * public fields. Most errors compute their message from their fields (a getter), which the class
 * schema does not encode; with this, the body of every error has `_tag` and `message`. `hidden`
 * fields (a `StoreError`'s `cause`) never reach the body, and `message` may replace the error's own
 * (whose text can name internal paths). Decoding drops the extra `message` again (unless it is one of
 * the error's fields). The errors' fields encode to themselves, so checking them on both sides of
 * the transformation is harmless.
 */
const publicError = <A extends { readonly message: string }, I, R, Fields extends Schema.Struct.Fields>(
  error: Schema.Schema<A, I, R> & { readonly fields: Fields },
  options: { readonly hidden?: ReadonlyArray<string>; readonly message?: (error: A) => string } = {}
) => {
  const hidden = new Set(options.hidden ?? [])
  const messageIsField = "message" in error.fields
  const shown: Schema.Struct.Fields = Object.fromEntries(
    Object.entries(error.fields).filter(([key]) => !hidden.has(key))
  )
  const visible = (encoded: object, message: string | undefined): object =>
    Object.fromEntries([
      ...Object.entries(encoded).filter(([key]) => !hidden.has(key) && key !== "message"),
      ...(message === undefined ? [] : [["message", message]])
    ])
  return Schema.transformOrFail(Schema.Struct({ ...shown, message: Schema.String }), error, {
    strict: false,
    decode: (_, __, ___, encoded) =>
      ParseResult.succeed(visible(encoded, messageIsField ? encoded.message : undefined)),
    encode: (encoded, _, __, value) =>
      ParseResult.succeed(visible(encoded as object, options.message?.(value) ?? value.message))
  })
}

/**
 * No run of that id is known to the caller: it was never made, or it is one the optimizer may not
 * know of (the verifier's, or one on a `no_access` split); the answer is the same for each.
 *
 * @since 0.1.0
 * @category errors
 */
export class RunNotFound extends Schema.TaggedError<RunNotFound>()("RunNotFound", { runId: Schema.String }) {
  override get message(): string {
    return `No run "${this.runId}" of yours is stored. Use the runId an /eval response gave you.`
  }
}

/**
 * The message a caller gets for a `StoreError`: the store's own message may name files and its cause
 * is internal, so both stay in the sidecar's log.
 *
 * @since 0.1.0
 * @category constants
 */
export const storeErrorMessage =
  "The sidecar's store failed; the cause is in its log. Retry later or tell the operator."

/**
 * A request body over the sidecar's size limit, refused before it is read (413).
 *
 * @since 0.1.0
 * @category errors
 */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", {
  message: Schema.String
}) {}

/** The description of a response in the OpenAPI document (the first error of a status gives its status's). */
const described = <S extends Schema.Schema.Any>(schema: S, description: string) =>
  schema.annotations({ description }) as unknown as S

const InvalidRequest = described(
  publicError(HoldoutError.InvalidRequest),
  "The request is malformed, contradictory or out of range, or names an unknown split or too small a subset " +
    "(InvalidRequest, UnknownSplit, SubsetTooSmall); nothing was charged."
)
const UnknownSplit = publicError(HoldoutError.UnknownSplit)
const SubsetTooSmall = publicError(HoldoutError.SubsetTooSmall)
const AccessDenied = described(
  publicError(HoldoutError.AccessDenied),
  "The split's tier does not allow this, or it has no budget (AccessDenied, SplitNotBudgeted)."
)
const SplitNotBudgeted = publicError(HoldoutError.SplitNotBudgeted)
const IdempotencyConflict = described(
  publicError(HoldoutError.IdempotencyConflict),
  "The idempotency key was used before for a different request (IdempotencyConflict)."
)
const BudgetExhausted = described(
  publicError(HoldoutError.BudgetExhausted),
  "The split's budget cannot pay for this evaluation (BudgetExhausted: runs, samples, per-run cap or overfit)."
)
const StoreError = described(
  publicError(HoldoutError.StoreError, { hidden: ["cause"], message: () => storeErrorMessage }),
  "The sidecar failed: its store, the strategy, or a run that left no sample (StoreError, StrategyError, " +
    "RunFailed); the cause is in the sidecar's log."
)
const StrategyError = publicError(HoldoutError.StrategyError)
const RunFailed = publicError(HoldoutError.RunFailed)
const Unauthorized = described(
  publicError(HoldoutError.Unauthorized),
  "No valid admin token (Authorization: Bearer <token>)."
)
const TooLarge = described(PayloadTooLarge, "The request body is over the sidecar's size limit (PayloadTooLarge).")
const NotFound = described(publicError(RunNotFound), "No run of that id is known to the caller (RunNotFound).")

/**
 * Every error of the optimizer's routes as its body encodes it (`_tag`, `message` and the error's public
 * fields): what the MCP tools answer with, too.
 *
 * @since 0.1.0
 * @category errors
 */
export const AgentError = Schema.Union(
  InvalidRequest,
  UnknownSplit,
  SubsetTooSmall,
  AccessDenied,
  SplitNotBudgeted,
  IdempotencyConflict,
  BudgetExhausted,
  StoreError,
  StrategyError,
  RunFailed,
  NotFound,
  TooLarge
)

/**
 * No evaluation job of that id is known to the caller: it was never started, or its run is one the
 * optimizer may not know of; the answer is the same for each.
 *
 * @since 0.1.0
 * @category errors
 */
export class JobNotFound extends Schema.TaggedError<JobNotFound>()("JobNotFound", { jobId: Schema.String }) {
  override get message(): string {
    return `No evaluation job "${this.jobId}" of yours is known. Use the jobId that POST /eval with async: true gave you.`
  }
}

/**
 * An evaluation job that failed unexpectedly (a defect): the cause is in the sidecar's log.
 *
 * @since 0.1.0
 * @category errors
 */
export class InternalError extends Schema.TaggedError<InternalError>()("InternalError", {
  message: Schema.String
}) {}

/**
 * Where an evaluation job is: `running`, `completed` (its result is ready) or `failed` (its error is).
 *
 * @since 0.1.0
 * @category models
 */
export const JobStatus = Schema.Literal("running", "completed", "failed")

/**
 * What `POST /eval` with `async: true` answers (202): the job's id (the run id of its idempotency
 * key) and its status when answered.
 *
 * @since 0.1.0
 * @category models
 */
export const JobAccepted = Schema.Struct({ jobId: Schema.String, status: JobStatus })

/**
 * What `GET /eval/{jobId}` answers: the job's status and, once it is over, its `result` (exactly what
 * the synchronous `POST /eval` answers) or its `error` (the error body the synchronous call answers).
 *
 * @since 0.1.0
 * @category models
 */
export const JobState = Schema.Struct({
  jobId: Schema.String,
  status: JobStatus,
  result: Schema.optional(EvalResponse),
  error: Schema.optional(Schema.Union(AgentError, InternalError))
})

const JobUnknown = described(
  publicError(JobNotFound),
  "No evaluation job of that id is known to the caller (JobNotFound)."
)

const bad = { status: 400 } as const
const forbidden = { status: 403 } as const
const failed = { status: 500 } as const

/**
 * The verifier's credentials: `Authorization: Bearer <token>`.
 *
 * @since 0.1.0
 * @category middleware
 */
export class Authorization extends HttpApiMiddleware.Tag<Authorization>()("Authorization", {
  failure: Unauthorized.annotations(HttpApiSchema.annotations({ status: 401 })),
  security: { bearer: HttpApiSecurity.bearer }
}) {}

/**
 * The optimizer's routes.
 *
 * @since 0.1.0
 * @category groups
 */
export const AgentGroup = HttpApiGroup.make("agent")
  .add(
    HttpApiEndpoint.get("health", "/health")
      .addSuccess(described(Schema.Struct({ ok: Schema.Boolean }), "The sidecar is up."))
      .annotate(OpenApi.Description, "Whether the sidecar is up.")
  )
  .add(
    HttpApiEndpoint.post("eval", "/eval")
      .setPayload(EvalPayload)
      .addSuccess(described(EvalResponse, "The experiment as the split's tier shows it, and the budget left."))
      .addError(InvalidRequest, bad)
      .addError(UnknownSplit, bad)
      .addError(SubsetTooSmall, bad)
      .addError(AccessDenied, forbidden)
      .addError(SplitNotBudgeted, forbidden)
      .addError(IdempotencyConflict, { status: 409 })
      .addError(BudgetExhausted, { status: 429 })
      .addError(StoreError, failed)
      .addError(StrategyError, failed)
      .addError(RunFailed, failed)
      .addError(TooLarge, { status: 413 })
      .addSuccess(described(JobAccepted, "With async: true, the job that runs the evaluation, once it is charged."), {
        status: 202
      })
      .annotate(
        OpenApi.Description,
        "Evaluate a candidate on a split, charged to its budget: a viewable split answers the run, a non_viewable " +
          "one its summary only (block-level intervals, or what a release mechanism told). With async: true the " +
          "answer is 202 { jobId, status } as soon as the evaluation is charged (refusals are answered at once, as " +
          "without it); poll GET /eval/{jobId} for its result."
      )
  )
  .add(
    HttpApiEndpoint.get("job", "/eval/:jobId")
      .setPath(Schema.Struct({ jobId: Schema.String }))
      .addSuccess(described(JobState, "The job's status, and its result or error once it is over."))
      .addError(JobUnknown, { status: 404 })
      .addError(StoreError, failed)
      .annotate(
        OpenApi.Description,
        "An evaluation job started with POST /eval and async: true: running, completed (result: exactly the answer " +
          "the synchronous call gives) or failed (error: the synchronous call's error body)."
      )
  )
  .add(
    HttpApiEndpoint.get("samples", "/runs/:runId/samples")
      .setPath(Schema.Struct({ runId: Schema.String }))
      .setUrlParams(SamplesQuery)
      .addSuccess(described(View.SamplePageView, "A page of the run's samples and the cursor of the next page."))
      .addError(NotFound, { status: 404 })
      .addError(AccessDenied, forbidden)
      .addError(StoreError, failed)
      .annotate(
        OpenApi.Description,
        "A viewable run's per-sample records in pages by ascending sample id (after, limit); a non_viewable run is 403."
      )
  )
  .add(
    HttpApiEndpoint.get("compare", "/compare")
      .setUrlParams(CompareQuery)
      .addSuccess(described(CompareResponse, "The two runs and their paired comparison."))
      .addError(InvalidRequest, bad)
      .addError(NotFound, { status: 404 })
      .addError(AccessDenied, forbidden)
      .addError(StoreError, failed)
      .annotate(
        OpenApi.Description,
        "Two of the optimizer's runs of one viewable split, paired by sample: difference, bootstrap interval, p-values."
      )
  )
  .add(
    HttpApiEndpoint.get("runs", "/runs")
      .addSuccess(described(Runs, "The optimizer's runs, oldest first, each with its tier and summary."))
      .addError(StoreError, failed)
      .annotate(
        OpenApi.Description,
        "The optimizer's runs (never the verifier's, nor one on a no_access split), each summarised as its tier " +
          "allows: no figure of its scores under a release mechanism, nor before a sample is recorded."
      )
  )
  .add(
    HttpApiEndpoint.get("show", "/runs/:runId")
      .setPath(Schema.Struct({ runId: Schema.String }))
      .setUrlParams(SamplesQuery)
      .addSuccess(described(Shown, "The run as its tier shows it, with a page of its samples on a viewable split."))
      .addError(NotFound, { status: 404 })
      .addError(StoreError, failed)
      .annotate(
        OpenApi.Description,
        "One of the optimizer's runs: on a viewable split its record and a page of its per-sample records (after, " +
          "limit); on a non_viewable split its summary only."
      )
  )
  .add(
    HttpApiEndpoint.get("status", "/status")
      .addSuccess(described(Status, "The splits and their budgets, and whether submissions are open."))
      .addError(StoreError, failed)
      .annotate(
        OpenApi.Description,
        "The splits the optimizer may evaluate (never a no_access one) with their budgets left."
      )
  )
  .add(
    HttpApiEndpoint.post("submit", "/submit")
      .setPayload(SubmitRequest)
      .addSuccess(described(Schema.Struct({ submitted: Model.Candidate }), "The submission, which is final."))
      .addError(InvalidRequest, bad)
      .addError(StoreError, failed)
      .addError(StrategyError, failed)
      .addError(TooLarge, { status: 413 })
      .annotate(OpenApi.Description, "Submit the final candidate; it must have been evaluated, and it is final.")
  )

/**
 * The verifier's routes, behind `Authorization`.
 *
 * @since 0.1.0
 * @category groups
 */
export const AdminGroup = HttpApiGroup.make("admin")
  .add(
    HttpApiEndpoint.post("finalize", "/finalize")
      .addSuccess(described(Answer, "The verifier's answer: the candidate, its rewards and why."))
      .addError(StoreError, failed)
      .annotate(
        OpenApi.Description,
        "Choose and score the final candidate (the verifier); every call gives one answer."
      )
  )
  .add(
    HttpApiEndpoint.get("experiments", "/experiments")
      .addSuccess(described(Schema.Struct({ experiments: Schema.Array(ExperimentEntry) }), "Every run, unredacted."))
      .addError(StoreError, failed)
      .annotate(OpenApi.Description, "Every stored run with its metrics, unredacted (the verifier).")
  )
  .middleware(Authorization)

/**
 * The whole API.
 *
 * @since 0.1.0
 * @category api
 */
export class Api extends HttpApi.make("holdout").add(AgentGroup).add(AdminGroup).annotateContext(
  OpenApi.annotations({
    title: "Holdout sidecar",
    version,
    description: "Metered, visibility-controlled evaluation for an optimizer: every evaluation is charged to its " +
      "split's budget, and answers are projected by the split's access tier. Errors are JSON with _tag and message."
  })
) {}
