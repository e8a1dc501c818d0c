/**
 * Composition checks for a stack: budgets and the access policy must agree before anything runs.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as DatasetSource from "./DatasetSource.js"
import * as Engine from "./Engine.js"
import type { EvalStrategy } from "./EvalStrategy.js"
import { ConfigError } from "./HoldoutError.js"
import { closest, didYouMean } from "./internal/suggest.js"
import * as Ledger from "./Ledger.js"
import * as LocalStrategy from "./LocalStrategy.js"
import type { SplitBudget, SplitTier } from "./Model.js"
import * as Release from "./Release.js"
import * as RunEvents from "./RunEvents.js"
import * as SplitAccess from "./SplitAccess.js"
import type * as Task from "./Task.js"
import * as TaskStore from "./TaskStore.js"

/**
 * The known name closest to `name` by edit distance, when it is close enough to be a typo of it (at
 * most a third of its length apart, at least one edit): the "did you mean …?" of an error message.
 * Names are compared regardless of case unless `options.ignoreCase` is `false`.
 *
 * @example
 * ```ts
 * Stack.closestName("validaton", ["train", "validation"]) // "validation"
 * Stack.closestName("secret", ["train", "validation"]) // undefined
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const closestName: (
  name: string,
  known: Iterable<string>,
  options?: { readonly ignoreCase?: boolean }
) => string | undefined = closest

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
 * logged note at info level (the budget meters compute, but the optimizer sees every per-sample result).
 *
 * @since 0.1.0
 * @category constructors
 */
export const reconcile = (
  budgets: ReadonlyArray<SplitBudget>,
  policy: SplitAccess.Policy
): Effect.Effect<Reconciled, ConfigError> =>
  Effect.gen(function*() {
    const checkedBudgets = yield* Ledger.validateBudgets(budgets)
    const entries = [...(yield* SplitAccess.normalize(policy))]
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
        // a budget on a viewable split is ordinary (it meters compute on train): said at info level,
        // not as a warning on every command
        yield* Effect.logInfo(
          `Split "${budget.split}" of dataset "${budget.datasetId}" is budgeted and viewable: the budget meters ` +
            `evaluation compute, but every per-sample result is visible to the optimizer`
        )
      }
    }
    return { budgets: checkedBudgets, policy: entries }
  })

/**
 * Checks that every budget names a dataset the source holds and a split that dataset has: a budget
 * for a split that does not exist (a typo such as `valdation`) could never be spent, and the split
 * it was meant for would run unbudgeted. A `ConfigError` with the closest known name, at start.
 *
 * @since 0.1.0
 * @category constructors
 */
export const checkBudgetedSplits = (
  budgets: ReadonlyArray<SplitBudget>
): Effect.Effect<void, ConfigError, DatasetSource.DatasetSource> =>
  Effect.gen(function*() {
    const source = yield* DatasetSource.DatasetSource
    const datasetIds = [...new Set(budgets.map((budget) => budget.datasetId))]
    for (const datasetId of datasetIds) {
      const info = yield* source.info(datasetId).pipe(
        Effect.mapError((error) =>
          new ConfigError({
            message: `A budget names dataset "${datasetId}", which the datasets do not hold: ${error.message}` +
              ` Fix the budget's datasetId.`
          })
        )
      )
      const known = Object.keys(info.splits)
      for (const budget of budgets) {
        if (budget.datasetId !== datasetId || known.includes(budget.split)) continue
        return yield* new ConfigError({
          message: `A budget names split "${budget.split}" of dataset "${datasetId}", which has no such split ` +
            `(its splits: ${known.join(", ") || "none"}).${didYouMean(budget.split, known)} Fix the budget's split.`
        })
      }
    }
  })

/**
 * The services a stack provides: the engine and everything it runs on.
 *
 * @since 0.1.0
 * @category models
 */
export type Services =
  | Engine.Engine
  | Ledger.Ledger
  | TaskStore.TaskStore
  | SplitAccess.SplitAccess
  | DatasetSource.DatasetSource
  | EvalStrategy
  | RunEvents.RunEvents

/**
 * Assembles a stack from its parts after reconciling budgets with the policy and checking that
 * every budgeted split exists in the datasets (`checkBudgetedSplits`): the ledger is
 * opened with the reconciled budgets, the strategy gets the store, the datasets and the stack's
 * event hub (`RunEvents`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWith = <E1, R1, E2, R2, E3, R3, E4, R4>(options: {
  readonly budgets: ReadonlyArray<SplitBudget>
  readonly policy: SplitAccess.Policy
  readonly ledger: (budgets: ReadonlyArray<SplitBudget>) => Layer.Layer<Ledger.Ledger, E1, R1>
  readonly store: Layer.Layer<TaskStore.TaskStore, E2, R2>
  readonly datasets: Layer.Layer<DatasetSource.DatasetSource, E3, R3>
  readonly strategy: Layer.Layer<
    EvalStrategy,
    E4,
    R4 | TaskStore.TaskStore | DatasetSource.DatasetSource | RunEvents.RunEvents
  >
  readonly engine?: Engine.EngineOptions
}): Layer.Layer<
  Services,
  ConfigError | E1 | E2 | E3 | E4,
  | R1
  | R2
  | R3
  | Exclude<
    R4,
    Ledger.Ledger | TaskStore.TaskStore | DatasetSource.DatasetSource | SplitAccess.SplitAccess | RunEvents.RunEvents
  >
> =>
  Layer.unwrapEffect(
    Effect.map(reconcile(options.budgets, options.policy), (reconciled) => {
      const base = Layer.mergeAll(
        SplitAccess.layer(reconciled.policy),
        options.ledger([
          ...reconciled.budgets,
          ...Release.overfitBudgets(options.engine?.releases ?? {}, reconciled.budgets)
        ]),
        options.store,
        options.datasets,
        RunEvents.layer,
        // the datasets are built once (layers are shared by reference), and checked before anything runs
        Layer.effectDiscard(checkBudgetedSplits(reconciled.budgets)).pipe(Layer.provide(options.datasets))
      )
      const withStrategy = Layer.provideMerge(options.strategy, base)
      return Layer.provideMerge(Engine.layer(options.engine), withStrategy)
    })
  )

/**
 * A whole stack in memory around a local task: for tests, notebooks and single-process use.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = <Row, Out, Input>(options: {
  readonly budgets: ReadonlyArray<SplitBudget>
  readonly policy: SplitAccess.Policy
  readonly datasets: Readonly<Record<string, Readonly<Record<string, ReadonlyArray<unknown>>>>>
  readonly task: Task.Task<Row, Out, Input>
  readonly local?: LocalStrategy.Options
  readonly engine?: Engine.EngineOptions
}): Layer.Layer<Services, ConfigError> =>
  layerWith({
    budgets: options.budgets,
    policy: options.policy,
    ledger: Ledger.layerMemory,
    store: TaskStore.layerMemory,
    datasets: DatasetSource.layerRecords(options.datasets),
    strategy: LocalStrategy.layer(options.task, options.local),
    ...(options.engine === undefined ? {} : { engine: options.engine })
  })
