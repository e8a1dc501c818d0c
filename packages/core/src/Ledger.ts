/**
 * The budget meter: an append-only journal of reservations against per-split limits. Limits come
 * from configuration; a store keeps only what was spent, so reopening it with new limits gives
 * `remaining = max(0, limit - spent)`. Nothing is ever refunded.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { BudgetExhausted, ConfigError, IdempotencyConflict, SplitNotBudgeted, type StoreError } from "./HoldoutError.js"
import { type BudgetKey, type BudgetSnapshot, type Reservation, SplitBudget } from "./Model.js"

/**
 * A request to charge one run of `samples` samples, identified by `reservationId`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReserveRequest extends BudgetKey {
  readonly samples: number
  readonly runId: string
  readonly reservationId: string
}

/**
 * What has been charged to one split.
 *
 * @since 0.1.0
 * @category models
 */
export interface Spent {
  readonly runs: number
  readonly samples: number
}

/**
 * The ledger service. `reserve` checks, in order, that the key is budgeted, that a run is left,
 * that enough samples are left and that the per-run cap holds, then debits — as one atomic step.
 * A rejected call changes nothing; a repeated `reservationId` returns the first reservation and
 * charges nothing — if it repeats the first request's binding `(datasetId, split, samples, runId)`;
 * any other binding is an `IdempotencyConflict`.
 *
 * @since 0.1.0
 * @category tags
 */
export class Ledger extends Context.Tag("@holdout/core/Ledger")<Ledger, {
  readonly reserve: (
    request: ReserveRequest
  ) => Effect.Effect<Reservation, ReserveError>
  /** Would a reservation of `samples` pass now? Returns the snapshot; debits nothing. */
  readonly check: (
    key: BudgetKey,
    samples: number
  ) => Effect.Effect<BudgetSnapshot, SplitNotBudgeted | BudgetExhausted | StoreError>
  readonly get: (key: BudgetKey) => Effect.Effect<BudgetSnapshot, SplitNotBudgeted | StoreError>
  /** Every budgeted split, in configured order. */
  readonly status: () => Effect.Effect<ReadonlyArray<BudgetSnapshot>, StoreError>
  /** The journal, oldest first, optionally for one key. */
  readonly reservations: (key?: BudgetKey) => Effect.Effect<ReadonlyArray<Reservation>, StoreError>
}>() {}

/**
 * Everything `reserve` can fail with.
 *
 * @since 0.1.0
 * @category errors
 */
export type ReserveError = SplitNotBudgeted | BudgetExhausted | IdempotencyConflict | StoreError

/**
 * The answer to a repeated reservation id: the stored reservation when the request repeats its
 * binding `(datasetId, split, samples, runId)`, else `IdempotencyConflict` — one rule for every
 * backend, so a key can never charge one split and run another. (An `Exit`, so batching backends
 * can use it as an outcome.)
 *
 * @since 0.1.0
 * @category combinators
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
 * A string that identifies a key, for maps.
 *
 * @since 0.1.0
 * @category constructors
 */
export const keyString = (key: BudgetKey): string => JSON.stringify([key.datasetId, key.split])

/**
 * The nothing-spent value.
 *
 * @since 0.1.0
 * @category constructors
 */
export const nothingSpent: Spent = { runs: 0, samples: 0 }

const remainingOf = (limit: number | undefined, spent: number): number | null =>
  limit === undefined ? null : Math.max(0, limit - spent)

/**
 * The snapshot of a split from its limits and what was spent.
 *
 * @since 0.1.0
 * @category constructors
 */
export const snapshot = (budget: SplitBudget, spent: Spent): BudgetSnapshot => ({
  datasetId: budget.datasetId,
  split: budget.split,
  limits: {
    runs: budget.runs ?? null,
    samples: budget.samples ?? null,
    maxSamplesPerRun: budget.maxSamplesPerRun ?? null
  },
  spent: { runs: spent.runs, samples: spent.samples },
  remaining: { runs: remainingOf(budget.runs, spent.runs), samples: remainingOf(budget.samples, spent.samples) }
})

/**
 * Whether a sample count can be charged: a non-negative integer. Anything else is a bug in the
 * caller (the engine resolves counts before it reserves), so backends treat it as a defect.
 *
 * @since 0.1.0
 * @category combinators
 */
export const isSampleCount = (samples: number): boolean => Number.isSafeInteger(samples) && samples >= 0

/**
 * The defect for a sample count that is not a non-negative integer.
 *
 * @since 0.1.0
 * @category constructors
 */
export const invalidSampleCount = (samples: number): Effect.Effect<never> =>
  Effect.dieMessage(`A reservation must charge a non-negative integer number of samples, got ${samples}.`)

/**
 * The ledger's decision for a reservation of `samples`: `undefined` when it may pass, else the
 * `BudgetExhausted` to fail with. Checks runs, then samples, then the per-run cap. Every backend
 * uses this one function, so they all decide alike.
 *
 * @since 0.1.0
 * @category combinators
 */
export const decide = (budget: SplitBudget, spent: Spent, samples: number): BudgetExhausted | undefined => {
  const remainingRuns = remainingOf(budget.runs, spent.runs)
  if (remainingRuns !== null && remainingRuns <= 0) {
    return new BudgetExhausted({
      datasetId: budget.datasetId,
      split: budget.split,
      reason: "runs",
      requested: 1,
      remaining: remainingRuns
    })
  }
  const remainingSamples = remainingOf(budget.samples, spent.samples)
  if (remainingSamples !== null && remainingSamples < samples) {
    return new BudgetExhausted({
      datasetId: budget.datasetId,
      split: budget.split,
      reason: "samples",
      requested: samples,
      remaining: remainingSamples
    })
  }
  if (budget.maxSamplesPerRun !== undefined && samples > budget.maxSamplesPerRun) {
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
 *
 * @since 0.1.0
 * @category constructors
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
 *
 * @since 0.1.0
 * @category constructors
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

const decodeBudget = Schema.decodeUnknownEither(SplitBudget, { onExcessProperty: "error" })

/**
 * Checks a budget configuration: every entry well formed, at least one of `runs` and `samples`
 * per entry, no key listed twice. Keeps the configured order.
 *
 * @since 0.1.0
 * @category constructors
 */
export const validateBudgets = (
  budgets: ReadonlyArray<unknown>
): Effect.Effect<ReadonlyArray<SplitBudget>, ConfigError> =>
  Effect.suspend(() => {
    const result: Array<SplitBudget> = []
    const seen = new Set<string>()
    for (let index = 0; index < budgets.length; index++) {
      const decoded = decodeBudget(budgets[index])
      if (Either.isLeft(decoded)) {
        return Effect.fail(
          new ConfigError({
            message: `Budget #${index + 1} is malformed: ${ParseResult.TreeFormatter.formatErrorSync(decoded.left)}`
          })
        )
      }
      const budget = decoded.right
      const where = `split "${budget.split}" of dataset "${budget.datasetId}"`
      if (budget.runs === undefined && budget.samples === undefined) {
        return Effect.fail(
          new ConfigError({
            message: `The budget of ${where} sets neither "runs" nor "samples". Give at least one of them ` +
              `(an absent limit is unlimited).`
          })
        )
      }
      const key = keyString(budget)
      if (seen.has(key)) {
        return Effect.fail(
          new ConfigError({ message: `The budget of ${where} is given twice. Give each split one budget.` })
        )
      }
      seen.add(key)
      result.push(budget)
    }
    return Effect.succeed(result)
  })

/**
 * The ledger kept in memory: fast, for tests and single-process stacks that need no durability.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory = (budgets: ReadonlyArray<SplitBudget>): Ledger["Type"] => {
  const limits = new Map<string, SplitBudget>()
  const spentByKey = new Map<string, { runs: number; samples: number }>()
  for (const budget of budgets) {
    const key = keyString(budget)
    limits.set(key, budget)
    spentByKey.set(key, { runs: 0, samples: 0 })
  }
  const journal: Array<Reservation> = []
  const byId = new Map<string, Reservation>()

  const lookup = (key: BudgetKey) => {
    const id = keyString(key)
    const budget = limits.get(id)
    return budget === undefined ? undefined : { budget, spent: spentByKey.get(id)! }
  }
  const notBudgeted = (key: BudgetKey) => new SplitNotBudgeted({ datasetId: key.datasetId, split: key.split })

  return {
    reserve: (request) =>
      Effect.flatMap(Clock.currentTimeMillis, (now): Effect.Effect<Reservation, Exclude<ReserveError, StoreError>> => {
        // One synchronous block: nothing else runs between the check and the debit.
        const existing = byId.get(request.reservationId)
        if (existing !== undefined) return repeated(existing, request)
        if (!isSampleCount(request.samples)) return invalidSampleCount(request.samples)
        const entry = lookup(request)
        if (entry === undefined) return Effect.fail(notBudgeted(request))
        const refusal = decide(entry.budget, entry.spent, request.samples)
        if (refusal !== undefined) return Effect.fail(refusal)
        entry.spent.runs += 1
        entry.spent.samples += request.samples
        const reservation = reservationOf(request, now)
        journal.push(reservation)
        byId.set(reservation.id, reservation)
        return Effect.succeed(reservation)
      }),
    check: (key, samples) =>
      Effect.suspend((): Effect.Effect<BudgetSnapshot, SplitNotBudgeted | BudgetExhausted> => {
        const entry = lookup(key)
        if (entry === undefined) return Effect.fail(notBudgeted(key))
        const refusal = decide(entry.budget, entry.spent, samples)
        return refusal === undefined ? Effect.succeed(snapshot(entry.budget, entry.spent)) : Effect.fail(refusal)
      }),
    get: (key) =>
      Effect.suspend(() => {
        const entry = lookup(key)
        return entry === undefined ? Effect.fail(notBudgeted(key)) : Effect.succeed(snapshot(entry.budget, entry.spent))
      }),
    status: () => Effect.sync(() => budgets.map((budget) => snapshot(budget, spentByKey.get(keyString(budget))!))),
    reservations: (key) =>
      Effect.sync(() =>
        key === undefined
          ? journal.slice()
          : journal.filter((reservation) => reservation.datasetId === key.datasetId && reservation.split === key.split)
      )
  }
}

/**
 * The in-memory ledger for a budget configuration.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (budgets: ReadonlyArray<SplitBudget>): Layer.Layer<Ledger, ConfigError> =>
  Layer.effect(Ledger, Effect.map(validateBudgets(budgets), makeMemory))
