/**
 * The sidecar's HTTP API, as an `HttpApi` definition: the server implements it, clients derive
 * from it, and it yields the OpenAPI document served at `GET /openapi.json`.
 *
 * Every error is JSON carrying its tag: 400 `InvalidRequest` / `UnknownSplit` / `SubsetTooSmall`
 * (and malformed bodies), 401 `Unauthorized`, 403 `AccessDenied` / `SplitNotBudgeted`, 413 for
 * oversized bodies, 429 `BudgetExhausted`, 500 for the rest.
 *
 * @since 0.1.0
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import { HoldoutError, Model, View } from "@holdout/core"
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
  remaining: Model.BudgetSnapshot.fields.remaining
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

/**
 * @since 0.1.0
 * @category models
 */
export const SubmitRequest = Schema.Struct({ candidate: Model.Candidate })

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
  failure: HoldoutError.Unauthorized.annotations(HttpApiSchema.annotations({ status: 401 })),
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
      .setPayload(Model.EvalRequest)
      .addSuccess(EvalResponse)
      .addError(HoldoutError.InvalidRequest, bad)
      .addError(HoldoutError.UnknownSplit, bad)
      .addError(HoldoutError.SubsetTooSmall, bad)
      .addError(HoldoutError.AccessDenied, forbidden)
      .addError(HoldoutError.SplitNotBudgeted, forbidden)
      .addError(HoldoutError.BudgetExhausted, { status: 429 })
      .addError(HoldoutError.StoreError, failed)
      .addError(HoldoutError.StrategyError, failed)
      .addError(HoldoutError.RunFailed, failed)
  )
  .add(HttpApiEndpoint.get("status", "/status").addSuccess(Status).addError(HoldoutError.StoreError, failed))
  .add(
    HttpApiEndpoint.post("submit", "/submit")
      .setPayload(SubmitRequest)
      .addSuccess(Schema.Struct({ submitted: Model.Candidate }))
      .addError(HoldoutError.InvalidRequest, bad)
      .addError(HoldoutError.StoreError, failed)
      .addError(HoldoutError.StrategyError, failed)
  )

/**
 * The verifier's routes, behind `Authorization`.
 *
 * @since 0.1.0
 * @category groups
 */
export const AdminGroup = HttpApiGroup.make("admin")
  .add(HttpApiEndpoint.post("finalize", "/finalize").addSuccess(Answer).addError(HoldoutError.StoreError, failed))
  .add(
    HttpApiEndpoint.get("experiments", "/experiments")
      .addSuccess(Schema.Struct({ experiments: Schema.Array(ExperimentEntry) }))
      .addError(HoldoutError.StoreError, failed)
  )
  .middleware(Authorization)

/**
 * The whole API.
 *
 * @since 0.1.0
 * @category api
 */
export class Api extends HttpApi.make("holdout").add(AgentGroup).add(AdminGroup) {}
