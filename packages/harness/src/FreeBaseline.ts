/**
 * The free baseline (opt-in, `verifier.freeBaseline`): the optimizer's first evaluation of the
 * configured baseline on each budgeted split costs nothing, so that measuring the starting point does
 * not eat the search's budget.
 *
 * - It is the optimizer's evaluation, only uncharged (`EvaluateOptions.free`), never an admin one: the
 *   tier gate, the subset floor and blocks of `non_viewable` splits, release mechanisms and the
 *   projection of the answer all hold, and only a budgeted split the optimizer may evaluate qualifies.
 * - One free evaluation per split, claimed in the store before the evaluation starts
 *   (`TaskStore.putMetaIfAbsent`, first writer wins): of concurrent requests exactly one is free, the
 *   others are charged (or refused) as the budget allows; the claim is the store's, so it holds after
 *   a restart and between processes sharing the store.
 * - A free evaluation that fails (a typed error: refused, or the run failed) gives its claim back, and
 *   the next evaluation of the baseline is free. An interrupted one keeps it: its run can be resumed,
 *   uncharged.
 *
 * A claim is a generation: the claim of generation n is the first value stored under its key, and
 * it is given back by storing a release mark beside it; the next claim takes generation n + 1.
 *
 * @since 0.1.0
 */
import { Engine, type HoldoutError, Ledger, type Model, SplitAccess, TaskStore, Workspace } from "@holdout/core"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"

/**
 * The free-baseline service of a stack.
 *
 * @since 0.1.0
 * @category models
 */
export interface FreeBaseline {
  /** Evaluates for the optimizer: free when it is the baseline's first evaluation of the split. */
  readonly evaluate: (request: Model.EvalRequest) => Effect.Effect<Model.Experiment, Engine.EvaluateError>
  /** Whether the baseline's free evaluation of a split is still to be had (`None` when not configured). */
  readonly available: (key: Model.BudgetKey) => Effect.Effect<Option.Option<boolean>, HoldoutError.StoreError>
  /**
   * How many times this process has tried to claim a free evaluation (won or lost) or given one
   * back: while it is the same, an answer of `available` changed only by another process sharing
   * the store.
   */
  readonly changes: () => number
}

/**
 * The store key of a split's claim of generation `generation`; its release mark is the key with
 * `:released` appended.
 *
 * @since 0.1.0
 * @category constants
 */
export const claimKey = (key: Model.BudgetKey, generation: number): string =>
  `holdout:free-baseline:${JSON.stringify([key.datasetId, key.split])}:${generation}`

const releasedKey = (claim: string) => `${claim}:released`

/**
 * The free baseline over a stack; `baseline` none means every evaluation is charged as usual.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  baseline: Option.Option<Model.Candidate>
): Effect.Effect<
  FreeBaseline,
  never,
  Engine.Engine | Ledger.Ledger | TaskStore.TaskStore | SplitAccess.SplitAccess
> =>
  Effect.gen(function*() {
    const engine = yield* Engine.Engine
    const ledger = yield* Ledger.Ledger
    const store = yield* TaskStore.TaskStore
    const access = yield* SplitAccess.SplitAccess
    const workspace = yield* Effect.serviceOption(Workspace.Workspace)
    if (Option.isNone(baseline)) {
      return { evaluate: (request) => engine.evaluate(request), available: () => Effect.succeedNone, changes: () => 0 }
    }
    let changes = 0
    const changed = Effect.sync(() => {
      changes++
    })

    /** The split's current generation: its claim key, and whether a claim there stands (not released). */
    const current = (key: Model.BudgetKey) =>
      Effect.gen(function*() {
        for (let generation = 0;; generation++) {
          const claim = claimKey(key, generation)
          if (Option.isNone(yield* store.getMeta(claim))) return { claim, held: false }
          if (Option.isNone(yield* store.getMeta(releasedKey(claim)))) return { claim, held: true }
        }
      })

    /** Claims the split's free evaluation: the claim key when this caller's write won, else none. */
    const claim = (key: Model.BudgetKey) =>
      Effect.gen(function*() {
        for (;;) {
          const { claim, held } = yield* current(key)
          if (held) return Option.none<string>()
          const mine = JSON.stringify({ claim: globalThis.crypto.randomUUID(), at: yield* Clock.currentTimeMillis })
          const won = (yield* Effect.ensuring(store.putMetaIfAbsent(claim, mine), changed)) === mine
          if (won) return Option.some(claim)
          // another caller took this generation first: it holds it, unless it gave it back already
        }
      })

    const release = (claim: string) =>
      store.putMetaIfAbsent(releasedKey(claim), "released").pipe(
        Effect.ensuring(changed),
        Effect.tapError((error) => Effect.logError("Free baseline: a claim could not be given back", error)),
        Effect.ignore
      )

    const resolved = (candidate: Model.Candidate) =>
      Option.isSome(workspace)
        ? Effect.option(Effect.map(workspace.value.resolve(candidate), (resolved) => resolved.id))
        : Effect.succeedSome(candidate.id)

    /** Whether the request is for the baseline (both resolved, as the engine records candidates). */
    const isBaseline = (candidate: Model.Candidate) =>
      Effect.gen(function*() {
        const wanted = yield* resolved(baseline.value)
        const given = yield* resolved(candidate)
        return Option.isSome(wanted) && Option.isSome(given) && wanted.value === given.value
      })

    /** Whether the request may be free: a budgeted split the optimizer may evaluate, the baseline, unclaimed. */
    const eligible = (request: Model.EvalRequest) =>
      Effect.gen(function*() {
        const key = { datasetId: request.datasetId, split: request.split }
        if (Option.isNone(yield* Effect.option(ledger.get(key)))) return false
        if ((yield* access.tier(request.split)) === "no_access") return false
        if ((yield* current(key)).held) return false
        return yield* isBaseline(request.candidate)
      })

    const evaluate = (request: Model.EvalRequest) =>
      Effect.gen(function*() {
        if (!(yield* eligible(request))) return yield* engine.evaluate(request)
        const claimed = yield* claim({ datasetId: request.datasetId, split: request.split })
        if (Option.isNone(claimed)) return yield* engine.evaluate(request)
        yield* Effect.logInfo(`Free baseline: ${request.split} of ${request.datasetId} is evaluated uncharged`)
        return yield* engine.evaluate(request, { free: true }).pipe(
          // a failed free evaluation gives its claim back
          Effect.tapError(() => release(claimed.value)),
          // so does a replayed key that names a run charged before: nothing free was given
          Effect.tap((experiment) => experiment.run.reservationId === undefined ? Effect.void : release(claimed.value))
        )
      })

    const available = (key: Model.BudgetKey) => Effect.map(current(key), (generation) => Option.some(!generation.held))

    return { evaluate, available, changes: () => changes }
  })
