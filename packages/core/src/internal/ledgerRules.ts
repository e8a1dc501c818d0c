/**
 * The ledger's rules, applied once by `Ledger.make` for every driver.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { BudgetExhausted, IdempotencyConflict, SplitNotBudgeted } from "../HoldoutError.js"
import type { ReserveRequest, Spent } from "../Ledger.js"
import type { BudgetKey, Reservation, SplitBudget } from "../Model.js"

/** A string that identifies a budget key, for maps. */
export const keyString = (key: BudgetKey): string => JSON.stringify([key.datasetId, key.split])

/**
 * The answer to a repeated reservation id: the stored reservation when the request repeats its
 * binding `(datasetId, split, samples, runId)`, else `IdempotencyConflict` — one rule for every
 * backend, so a key can never charge one split and run another. (An `Exit`, so batching backends
 * can use it as an outcome.)
 */
export const repeated = (
  stored: Reservation,
  request: ReserveRequest
): Exit.Exit<Reservation, IdempotencyConflict> =>
  stored.datasetId === request.datasetId && stored.split === request.split && stored.samples === request.samples &&
    stored.runId === request.runId
    ? Exit.succeed(stored)
    : Exit.fail(new IdempotencyConflict())

/**
 * Whether a sample count can be charged: a non-negative integer. Anything else is a bug in the
 * caller (the engine resolves counts before it reserves), so backends treat it as a defect.
 */
export const isSampleCount = (samples: number): boolean => Number.isSafeInteger(samples) && samples >= 0

/**
 * The defect for a sample count that is not a non-negative integer.
 */
export const invalidSampleCount = (samples: number): Effect.Effect<never> =>
  Effect.dieMessage(`A reservation must charge a non-negative integer number of samples, got ${samples}.`)

export const remainingOf = (limit: number | undefined, spent: number): number | null =>
  limit === undefined ? null : Math.max(0, limit - spent)

/**
 * A limit as one charge is held to it: an optimizer's leaves the split's reserve for the verifier, a
 * verifier's (`verifier`) may spend the whole limit.
 */
const limitFor = (limit: number | undefined, reserved: number | undefined, verifier: boolean): number | undefined =>
  limit === undefined || verifier ? limit : Math.max(0, limit - (reserved ?? 0))

/**
 * What the optimizer has left and what is left of the reserve, per dimension: the optimizer may spend
 * down to the reserve, the verifier the rest (together, never more than the limit).
 */
export const leftOf = (
  limit: number | undefined,
  reserved: number | undefined,
  spent: number
): { readonly optimizer: number | null; readonly reserve: number } => {
  const optimizer = remainingOf(limitFor(limit, reserved, false), spent)
  const total = remainingOf(limit, spent)
  return { optimizer, reserve: total === null || optimizer === null ? 0 : total - optimizer }
}

/**
 * The ledger's decision for a reservation of `samples`: `undefined` when it may pass, else the
 * `BudgetExhausted` to fail with. Checks runs, then samples, then the per-run cap. Every backend
 * uses this one function, so they all decide alike. An optimizer's charge (the default) is held to
 * the limits less the split's `reservedForFinalize`; a verifier's may spend the reserve too and is not
 * held to the per-run cap (its re-scores take whole splits).
 */
export const decide = (
  budget: SplitBudget,
  spent: Spent,
  samples: number,
  verifier = false
): BudgetExhausted | undefined => {
  const reserve = budget.reservedForFinalize
  const remainingRuns = remainingOf(limitFor(budget.runs, reserve?.runs, verifier), spent.runs)
  if (remainingRuns !== null && remainingRuns <= 0) {
    return new BudgetExhausted({
      datasetId: budget.datasetId,
      split: budget.split,
      reason: "runs",
      requested: 1,
      remaining: remainingRuns
    })
  }
  const remainingSamples = remainingOf(limitFor(budget.samples, reserve?.samples, verifier), spent.samples)
  if (remainingSamples !== null && remainingSamples < samples) {
    return new BudgetExhausted({
      datasetId: budget.datasetId,
      split: budget.split,
      reason: "samples",
      requested: samples,
      remaining: remainingSamples
    })
  }
  if (!verifier && budget.maxSamplesPerRun !== undefined && samples > budget.maxSamplesPerRun) {
    return new BudgetExhausted({
      datasetId: budget.datasetId,
      split: budget.split,
      reason: "per_run_cap",
      requested: samples,
      remaining: budget.maxSamplesPerRun
    })
  }
  return undefined
}

/**
 * The reservation a request makes, charged at `at`.
 */
export const reservationOf = (request: ReserveRequest, at: number): Reservation => ({
  id: request.reservationId,
  datasetId: request.datasetId,
  split: request.split,
  samples: request.samples,
  runId: request.runId,
  at
})

/**
 * Finds the configured budget of a key, or fails with `SplitNotBudgeted`: the allow-list check
 * every backend makes first.
 */
export const budgetLookup = (
  budgets: ReadonlyArray<SplitBudget>
): (key: BudgetKey) => Effect.Effect<SplitBudget, SplitNotBudgeted> => {
  const limits = new Map(budgets.map((budget) => [keyString(budget), budget] as const))
  return (key) =>
    Effect.suspend(() => {
      const budget = limits.get(keyString(key))
      return budget === undefined
        ? Effect.fail(new SplitNotBudgeted({ datasetId: key.datasetId, split: key.split }))
        : Effect.succeed(budget)
    })
}

export const exhaustedRefusal = (budget: SplitBudget): BudgetExhausted =>
  new BudgetExhausted({ datasetId: budget.datasetId, split: budget.split, reason: "runs", requested: 1, remaining: 0 })
