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
import { Compare, HoldoutError, Model, View } from "@holdout/core"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { Answer } from "./Verifier.js"

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
  remaining: Model.BudgetSnapshot.fields.remaining,
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
 * The body of `POST /eval`: `Model.EvalRequest`, strict (an unknown field is an error).
 *
 * @since 0.1.0
 * @category models
 */
export const EvalPayload = Model.EvalRequest.annotations(strict)

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

const InvalidRequest = publicError(HoldoutError.InvalidRequest)
const UnknownSplit = publicError(HoldoutError.UnknownSplit)
const SubsetTooSmall = publicError(HoldoutError.SubsetTooSmall)
const AccessDenied = publicError(HoldoutError.AccessDenied)
const SplitNotBudgeted = publicError(HoldoutError.SplitNotBudgeted)
const IdempotencyConflict = publicError(HoldoutError.IdempotencyConflict)
const BudgetExhausted = publicError(HoldoutError.BudgetExhausted)
const StoreError = publicError(HoldoutError.StoreError, { hidden: ["cause"], message: () => storeErrorMessage })
const StrategyError = publicError(HoldoutError.StrategyError)
const RunFailed = publicError(HoldoutError.RunFailed)
const Unauthorized = publicError(HoldoutError.Unauthorized)

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
  publicError(RunNotFound)
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
  .add(HttpApiEndpoint.get("health", "/health").addSuccess(Schema.Struct({ ok: Schema.Boolean })))
  .add(
    HttpApiEndpoint.post("eval", "/eval")
      .setPayload(EvalPayload)
      .addSuccess(EvalResponse)
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
  )
  .add(
    HttpApiEndpoint.get("samples", "/runs/:runId/samples")
      .setPath(Schema.Struct({ runId: Schema.String }))
      .setUrlParams(SamplesQuery)
      .addSuccess(View.SamplePageView)
      .addError(publicError(RunNotFound), { status: 404 })
      .addError(AccessDenied, forbidden)
      .addError(StoreError, failed)
  )
  .add(
    HttpApiEndpoint.get("compare", "/compare")
      .setUrlParams(CompareQuery)
      .addSuccess(CompareResponse)
      .addError(InvalidRequest, bad)
      .addError(publicError(RunNotFound), { status: 404 })
      .addError(AccessDenied, forbidden)
      .addError(StoreError, failed)
  )
  .add(
    HttpApiEndpoint.get("runs", "/runs")
      .addSuccess(Runs)
      .addError(StoreError, failed)
  )
  .add(
    HttpApiEndpoint.get("show", "/runs/:runId")
      .setPath(Schema.Struct({ runId: Schema.String }))
      .setUrlParams(SamplesQuery)
      .addSuccess(Shown)
      .addError(publicError(RunNotFound), { status: 404 })
      .addError(StoreError, failed)
  )
  .add(HttpApiEndpoint.get("status", "/status").addSuccess(Status).addError(StoreError, failed))
  .add(
    HttpApiEndpoint.post("submit", "/submit")
      .setPayload(SubmitRequest)
      .addSuccess(Schema.Struct({ submitted: Model.Candidate }))
      .addError(InvalidRequest, bad)
      .addError(StoreError, failed)
      .addError(StrategyError, failed)
  )

/**
 * The verifier's routes, behind `Authorization`.
 *
 * @since 0.1.0
 * @category groups
 */
export const AdminGroup = HttpApiGroup.make("admin")
  .add(HttpApiEndpoint.post("finalize", "/finalize").addSuccess(Answer).addError(StoreError, failed))
  .add(
    HttpApiEndpoint.get("experiments", "/experiments")
      .addSuccess(Schema.Struct({ experiments: Schema.Array(ExperimentEntry) }))
      .addError(StoreError, failed)
  )
  .middleware(Authorization)

/**
 * The whole API.
 *
 * @since 0.1.0
 * @category api
 */
export class Api extends HttpApi.make("holdout").add(AgentGroup).add(AdminGroup) {}
