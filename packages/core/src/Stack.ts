/**
 * Composition checks for a stack: budgets and the access policy must agree before anything runs.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { ConfigError } from "./HoldoutError.js"
import { validateBudgets } from "./Ledger.js"
import type { SplitBudget, SplitTier } from "./Model.js"
import { normalize, type Policy } from "./SplitAccess.js"

/**
 * A budget configuration and an access policy that agree with each other.
 *
 * @since 0.1.0
 * @category models
 */
export interface Reconciled {
  readonly budgets: ReadonlyArray<SplitBudget>
  readonly policy: ReadonlyArray<SplitTier>
}

/**
 * Reconciles budgets with the access policy (tiers are per split name, across datasets):
 * a budgeted split with no tier becomes `non_viewable`; a budgeted `no_access` split is a
 * `ConfigError` (the budget could never be used); a budgeted `viewable` split is allowed with a
 * logged warning (the budget meters compute, but the optimizer sees every per-sample result).
 *
 * @since 0.1.0
 * @category constructors
 */
export const reconcile = (
  budgets: ReadonlyArray<SplitBudget>,
  policy: Policy
): Effect.Effect<Reconciled, ConfigError> =>
  Effect.gen(function*() {
    const checkedBudgets = yield* validateBudgets(budgets)
    const entries = [...(yield* normalize(policy))]
    const tiers = new Map(entries.map((entry) => [entry.split, entry.tier] as const))
    for (const budget of checkedBudgets) {
      const tier = tiers.get(budget.split)
      if (tier === undefined) {
        tiers.set(budget.split, "non_viewable")
        entries.push({ split: budget.split, tier: "non_viewable" })
        yield* Effect.logInfo(`Split "${budget.split}" is budgeted but has no tier: it is non_viewable`)
      } else if (tier === "no_access") {
        return yield* new ConfigError({
          message: `Split "${budget.split}" of dataset "${budget.datasetId}" has a budget but is tiered no_access, ` +
            `which makes the budget unusable (optimizers cannot evaluate no_access splits). Tier it ` +
            `non_viewable or viewable, or drop the budget.`
        })
      } else if (tier === "viewable") {
        yield* Effect.logWarning(
          `Split "${budget.split}" of dataset "${budget.datasetId}" is budgeted and viewable: the budget meters ` +
            `evaluation compute, but every per-sample result is visible to the optimizer`
        )
      }
    }
    return { budgets: checkedBudgets, policy: entries }
  })
