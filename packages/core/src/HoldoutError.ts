/**
 * The typed errors of Holdout. Each is a `Schema.TaggedError`, serialisable, travels in the error
 * channel and carries a message that says what was wrong and what to do.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * The split's tier is `no_access` (or the split is not listed in the policy): only a verifier may
 * evaluate it.
 *
 * @since 0.1.0
 * @category errors
 */
export class AccessDenied extends Schema.TaggedError<AccessDenied>()("AccessDenied", {
  datasetId: Schema.String,
  split: Schema.String,
  /** Set when the split is `non_viewable` and what was asked needs per-sample data. */
  tier: Schema.optional(Schema.Literal("non_viewable"))
}) {
  override get message(): string {
    return this.tier === "non_viewable"
      ? `Split "${this.split}" of dataset "${this.datasetId}" is non_viewable: an optimizer sees only summaries of ` +
        `whole secret blocks of it, never per-sample data, so its samples cannot be read, compared or raced. Do ` +
        `that on a viewable split, or ask the verifier.`
      : `Split "${this.split}" of dataset "${this.datasetId}" is no_access: it cannot be evaluated or viewed ` +
        `by an optimizer. Evaluate a split whose tier is viewable or non_viewable, or ask the verifier.`
  }
}

/**
 * The ledger refused a reservation: no runs left, not enough samples left, or more samples than
 * one run may take; or (reason `overfit`) a thresholdout split's overfitting budget is spent, so it
 * answers no more. Nothing was charged.
 *
 * @since 0.1.0
 * @category errors
 */
export class BudgetExhausted extends Schema.TaggedError<BudgetExhausted>()("BudgetExhausted", {
  datasetId: Schema.String,
  split: Schema.String,
  reason: Schema.Literal("runs", "samples", "per_run_cap", "overfit"),
  requested: Schema.Int,
  remaining: Schema.NullOr(Schema.Int)
}) {
  override get message(): string {
    const where = `the "${this.split}" split of dataset "${this.datasetId}"`
    switch (this.reason) {
      case "runs":
        return `No runs left for ${where}. Nothing was charged; the budget does not refill.`
      case "samples":
        return `Requested ${this.requested} samples of ${where}, but only ${this.remaining} remain in its sample ` +
          `budget. Request at most ${this.remaining} samples (numSamples or sampleIds). Nothing was charged.`
      case "per_run_cap":
        return `Requested ${this.requested} samples of ${where}, but one run may take at most ${this.remaining}. ` +
          `Split the request into smaller runs. Nothing was charged.`
      case "overfit":
        return `The overfitting budget of ${where} is spent: its answers strayed from the reference split too ` +
          `often, and further answers would reveal the holdout. It answers no more; evaluate on other splits.`
    }
  }
}

/**
 * The split has no budget: a metered caller cannot evaluate it.
 *
 * @since 0.1.0
 * @category errors
 */
export class SplitNotBudgeted extends Schema.TaggedError<SplitNotBudgeted>()("SplitNotBudgeted", {
  datasetId: Schema.String,
  split: Schema.String
}) {
  override get message(): string {
    return `Split "${this.split}" of dataset "${this.datasetId}" has no budget, so it cannot be evaluated by an ` +
      `optimizer. Add a budget for it to the configuration, or evaluate a budgeted split.`
  }
}

/**
 * The dataset has no split of that name.
 *
 * @since 0.1.0
 * @category errors
 */
export class UnknownSplit extends Schema.TaggedError<UnknownSplit>()("UnknownSplit", {
  datasetId: Schema.String,
  split: Schema.String,
  known: Schema.optional(Schema.Array(Schema.String))
}) {
  override get message(): string {
    const known = this.known === undefined ? "" : ` Known splits: ${this.known.join(", ") || "(none)"}.`
    return `Dataset "${this.datasetId}" has no split "${this.split}".${known} Check the split name (it is case-sensitive).`
  }
}

/**
 * A request that cannot be served as it stands: malformed, contradictory or out of range.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidRequest extends Schema.TaggedError<InvalidRequest>()("InvalidRequest", {
  message: Schema.String
}) {}

/**
 * A `non_viewable` split was asked for a subset smaller than the floor, which would let an
 * optimizer read single-sample results off the aggregate.
 *
 * @since 0.1.0
 * @category errors
 */
export class SubsetTooSmall extends Schema.TaggedError<SubsetTooSmall>()("SubsetTooSmall", {
  split: Schema.String,
  requested: Schema.Int,
  minimum: Schema.Int
}) {
  override get message(): string {
    return `Split "${this.split}" is non_viewable and ${this.requested} samples were requested, but a subset of a ` +
      `non_viewable split must hold at least ${this.minimum} samples. Request at least ${this.minimum} samples, ` +
      `or the whole split.`
  }
}

/**
 * The configuration (budgets, access policy, task, options) is inconsistent.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConfigError extends Schema.TaggedError<ConfigError>()("ConfigError", {
  message: Schema.String
}) {}

/**
 * A store operation failed (I/O, a conflict, a missing record).
 *
 * @since 0.1.0
 * @category errors
 */
export class StoreError extends Schema.TaggedError<StoreError>()("StoreError", {
  op: Schema.String,
  message: Schema.String,
  /** The underlying failure (a driver's or file system's error), for logs; never shown to an optimizer. */
  cause: Schema.optional(Schema.Defect)
}) {}

/**
 * A persisted ledger cannot be read back; nothing was changed.
 *
 * @since 0.1.0
 * @category errors
 */
export class LedgerCorrupt extends Schema.TaggedError<LedgerCorrupt>()("LedgerCorrupt", {
  location: Schema.String,
  message: Schema.String
}) {}

/**
 * A persisted ledger is held by another process.
 *
 * @since 0.1.0
 * @category errors
 */
export class LedgerLocked extends Schema.TaggedError<LedgerLocked>()("LedgerLocked", {
  location: Schema.String
}) {
  override get message(): string {
    return `The ledger at ${this.location} is locked by another process. Stop that process, or open a different ` +
      `ledger.`
  }
}

/**
 * An evaluation strategy could not produce results.
 *
 * @since 0.1.0
 * @category errors
 */
export class StrategyError extends Schema.TaggedError<StrategyError>()("StrategyError", {
  strategy: Schema.String,
  message: Schema.String
}) {}

/**
 * A run ended without a usable result. Its charge stands.
 *
 * @since 0.1.0
 * @category errors
 */
export class RunFailed extends Schema.TaggedError<RunFailed>()("RunFailed", {
  runId: Schema.String,
  message: Schema.String
}) {}

/**
 * The caller did not present valid verifier credentials.
 *
 * @since 0.1.0
 * @category errors
 */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", {}) {
  override get message(): string {
    return "This operation needs the verifier's token: send it as \"Authorization: Bearer <token>\"."
  }
}

/**
 * An idempotency key or reservation id was reused for a different request. Nothing was charged or
 * run; the message names nothing of the first request.
 *
 * @since 0.1.0
 * @category errors
 */
export class IdempotencyConflict extends Schema.TaggedError<IdempotencyConflict>()("IdempotencyConflict", {}) {
  override get message(): string {
    return "This idempotency key was already used for a different request: nothing was charged or run. " +
      "Use a new key for a new request, or repeat the first request exactly to get its result."
  }
}
