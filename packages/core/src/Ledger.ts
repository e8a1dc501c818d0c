/**
 * The budget meter: an append-only journal of reservations against per-split limits. Limits come
 * from configuration; a store keeps only what was spent, so reopening it with new limits gives
 * `remaining = max(0, limit - spent)`. Nothing is ever refunded. A split may hold part of its budget
 * back for the verifier (`reservedForFinalize`): the optimizer's charges stop at the reserve, the
 * verifier's (`verifier: true`) may spend it.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import {
  type BudgetExhausted,
  ConfigError,
  type IdempotencyConflict,
  SplitNotBudgeted,
  type StoreError
} from "./HoldoutError.js"
import * as Rules from "./internal/ledgerRules.js"
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
  /**
   * A charge of the verifier's: it may spend the split's `reservedForFinalize` and is not held to the
   * per-run cap. Without it (the optimizer's charges) the limits are the configured ones less the reserve.
   */
  readonly verifier?: boolean
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
 * A string that identifies a key, for maps.
 *
 * @since 0.1.0
 * @category constructors
 */
export const keyString: (key: BudgetKey) => string = Rules.keyString

/**
 * The nothing-spent value.
 *
 * @since 0.1.0
 * @category constructors
 */
export const nothingSpent: Spent = { runs: 0, samples: 0 }

/**
 * The snapshot of a split from its limits and what was spent. `remaining` is what the optimizer may
 * still spend; with a `reservedForFinalize`, `reserved` is what is left of the verifier's reserve.
 *
 * @since 0.1.0
 * @category constructors
 */
export const snapshot = (budget: SplitBudget, spent: Spent): BudgetSnapshot => {
  const reserve = budget.reservedForFinalize
  const runs = Rules.leftOf(budget.runs, reserve?.runs, spent.runs)
  const samples = Rules.leftOf(budget.samples, reserve?.samples, spent.samples)
  return {
    datasetId: budget.datasetId,
    split: budget.split,
    limits: {
      runs: budget.runs ?? null,
      samples: budget.samples ?? null,
      maxSamplesPerRun: budget.maxSamplesPerRun ?? null
    },
    spent: { runs: spent.runs, samples: spent.samples },
    remaining: { runs: runs.optimizer, samples: samples.optimizer },
    ...(reserve === undefined ? {} : { reserved: { runs: runs.reserve, samples: samples.reserve } })
  }
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
      const reserveError = reserveProblem(budget, where)
      if (reserveError !== undefined) return Effect.fail(new ConfigError({ message: reserveError }))
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

/** What is wrong with a budget's `reservedForFinalize`, if anything. */
const reserveProblem = (budget: SplitBudget, where: string): string | undefined => {
  const reserve = budget.reservedForFinalize
  if (reserve === undefined) return undefined
  if (reserve.runs === undefined && reserve.samples === undefined) {
    return `The budget of ${where} sets reservedForFinalize with neither "runs" nor "samples". Give at least one, ` +
      `or drop reservedForFinalize.`
  }
  for (const unit of ["runs", "samples"] as const) {
    const reserved = reserve[unit]
    const limit = budget[unit]
    if (reserved === undefined) continue
    if (limit === undefined) {
      return `The budget of ${where} reserves ${reserved} ${unit} for finalize, but its ${unit} are unlimited. ` +
        `Set "${unit}", or drop reservedForFinalize.${unit}.`
    }
    if (reserved > limit) {
      return `The budget of ${where} reserves ${reserved} ${unit} for finalize, more than its ${limit} ${unit}. ` +
        `Reserve at most ${limit}.`
    }
  }
  return undefined
}

/**
 * What a driver shows the ledger's rules inside one atomic step: the store as it is, plus what
 * this step appended so far.
 *
 * @since 0.1.0
 * @category models
 */
export interface DriverView {
  /** The reservation stored under this id, if any. */
  readonly find: (reservationId: string) => Reservation | undefined
  /** What has been spent on a key (`keyString`), counting what this step appended. */
  readonly spent: (key: string) => Spent
  /** Appends a reservation: debited in this view at once, stored atomically with the step. */
  readonly append: (reservation: Reservation) => void
}

/**
 * The storage primitives of a ledger backend. The rules (idempotency, allow-list, runs, samples,
 * cap, debit) live once, in `make`; a driver only reads what is spent, finds an id and appends
 * atomically. Memory, file, SQL and third-party ledgers are drivers.
 *
 * @since 0.1.0
 * @category models
 */
export interface Driver {
  /**
   * Runs `step` against a consistent view of the store and stores what it appends, as one atomic
   * step against every other writer (fibers, and processes for a shared store). Succeeds with the
   * step's outcome once its appends are durable, and once a reservation it found is durable too.
   * A driver may batch steps and may run a step again (a retried transaction): a step acts only
   * through its view. `reservationId` is the id the step looks up, for drivers that prefetch.
   */
  readonly transact: (
    reservationId: string,
    step: (view: DriverView) => Exit.Exit<Reservation, ReserveError>
  ) => Effect.Effect<Reservation, ReserveError>
  /** What has been spent, by `keyString`; keys never charged may be absent. */
  readonly spent: Effect.Effect<ReadonlyMap<string, Spent>, StoreError>
  /** The journal, oldest first, optionally for one key. */
  readonly reservations: (key?: BudgetKey) => Effect.Effect<ReadonlyArray<Reservation>, StoreError>
  /** A store opened in place of a corrupt one (`onCorrupt: "exhaust"`): every budget reads 0 left. */
  readonly exhausted?: boolean
  /**
   * For a driver whose storage is this process's memory: a view whose appends are stored at once
   * and need no wait. The rules then run on it directly, in one synchronous step, with no
   * `transact` around them.
   */
  readonly unsafeView?: DriverView
}

/**
 * The ledger over a driver, for budgets already checked by `validateBudgets`; see `make`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const unsafeMake = (budgets: ReadonlyArray<SplitBudget>, driver: Driver): Ledger["Type"] => {
  const limits = new Map(budgets.map((budget) => [keyString(budget), budget] as const))
  const exhausted = driver.exhausted === true
  const lookup = Rules.budgetLookup(budgets)
  const refusalOf = (budget: SplitBudget, spent: Spent, samples: number, verifier?: boolean) =>
    exhausted ? Rules.exhaustedRefusal(budget) : Rules.decide(budget, spent, samples, verifier)
  const snapshotOf = (budget: SplitBudget, spent: ReadonlyMap<string, Spent>): BudgetSnapshot => {
    const result = snapshot(budget, spent.get(keyString(budget)) ?? nothingSpent)
    if (!exhausted) return result
    const none = { runs: 0, samples: 0 }
    return { ...result, remaining: none, ...(result.reserved === undefined ? {} : { reserved: none }) }
  }

  // The rule, in order: idempotency (bound to its request), allow-list, runs, samples, cap, debit.
  const apply = (view: DriverView, request: ReserveRequest, at: number): Exit.Exit<Reservation, ReserveError> => {
    const existing = view.find(request.reservationId)
    if (existing !== undefined) return Rules.repeated(existing, request)
    const key = keyString(request)
    const budget = limits.get(key)
    if (budget === undefined) {
      return Exit.fail(new SplitNotBudgeted({ datasetId: request.datasetId, split: request.split }))
    }
    const refusal = refusalOf(budget, view.spent(key), request.samples, request.verifier)
    if (refusal !== undefined) return Exit.fail(refusal)
    const reservation = Rules.reservationOf(request, at)
    view.append(reservation)
    return Exit.succeed(reservation)
  }

  return {
    reserve: (request) => {
      if (!Rules.isSampleCount(request.samples)) return Rules.invalidSampleCount(request.samples)
      const view = driver.unsafeView
      return view === undefined
        ? Effect.clockWith((clock) =>
          driver.transact(request.reservationId, (view) => apply(view, request, clock.unsafeCurrentTimeMillis()))
        )
        : Effect.clockWith((clock) => apply(view, request, clock.unsafeCurrentTimeMillis()))
    },
    check: (key, samples) =>
      Effect.flatMap(lookup(key), (budget) =>
        Effect.flatMap(driver.spent, (spent) => {
          const refusal = refusalOf(budget, spent.get(keyString(budget)) ?? nothingSpent, samples)
          return refusal === undefined ? Effect.succeed(snapshotOf(budget, spent)) : Effect.fail(refusal)
        })),
    get: (key) =>
      Effect.flatMap(lookup(key), (budget) => Effect.map(driver.spent, (spent) => snapshotOf(budget, spent))),
    status: () => Effect.map(driver.spent, (spent) => budgets.map((budget) => snapshotOf(budget, spent))),
    reservations: driver.reservations
  }
}

/**
 * The ledger over a driver: checks the budget configuration, then applies the ledger's rules to
 * the driver's storage. Every backend, ours and third parties', is built this way.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: {
  readonly budgets: ReadonlyArray<unknown>
  readonly driver: Driver
}): Effect.Effect<Ledger["Type"], ConfigError> =>
  Effect.map(validateBudgets(options.budgets), (budgets) => unsafeMake(budgets, options.driver))

/**
 * A driver that keeps the journal in memory. Its steps run synchronously, so nothing else runs
 * between a step's reads and its appends.
 *
 * @since 0.1.0
 * @category constructors
 */
export const driverMemory = (): Driver => {
  const spentByKey = new Map<string, { runs: number; samples: number }>()
  const journal: Array<Reservation> = []
  const byId = new Map<string, Reservation>()
  const view: DriverView = {
    find: (reservationId) => byId.get(reservationId),
    spent: (key) => spentByKey.get(key) ?? nothingSpent,
    append: (reservation) => {
      const key = keyString(reservation)
      const spent = spentByKey.get(key)
      if (spent === undefined) spentByKey.set(key, { runs: 1, samples: reservation.samples })
      else {
        spent.runs += 1
        spent.samples += reservation.samples
      }
      journal.push(reservation)
      byId.set(reservation.id, reservation)
    }
  }
  return {
    unsafeView: view,
    transact: (_reservationId, step) => Effect.suspend(() => step(view)),
    spent: Effect.sync(() => spentByKey),
    reservations: (key) =>
      Effect.sync(() =>
        key === undefined
          ? journal.slice()
          : journal.filter((reservation) => reservation.datasetId === key.datasetId && reservation.split === key.split)
      )
  }
}

/**
 * The ledger kept in memory: fast, for tests and single-process stacks that need no durability.
 * The budgets must already be valid (`validateBudgets`); `layerMemory` checks them.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory = (budgets: ReadonlyArray<SplitBudget>): Ledger["Type"] => unsafeMake(budgets, driverMemory())

/**
 * The in-memory ledger for a budget configuration.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (budgets: ReadonlyArray<SplitBudget>): Layer.Layer<Ledger, ConfigError> =>
  Layer.effect(Ledger, Effect.map(validateBudgets(budgets), makeMemory))
