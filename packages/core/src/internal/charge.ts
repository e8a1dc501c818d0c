/**
 * The engine's charge step (DESIGN §5 step 6), by caller:
 *
 * - the optimizer's evaluation is charged to its split's budget (`Ledger.reserve`);
 * - a free one (the configured baseline's first on a split, claimed by the harness) is charged
 *   nothing, but its split must still be budgeted: free never opens a split the optimizer could not
 *   evaluate otherwise;
 * - the verifier's is charged only on a split that reserves part of its budget for it
 *   (`reservedForFinalize`), where it may spend the reserve; elsewhere it is unmetered.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { SplitNotBudgeted, StoreError } from "../HoldoutError.js"
import type { Ledger, ReserveError, ReserveRequest } from "../Ledger.js"

/** Who an evaluation is for, as the charge step sees it. */
export interface Caller {
  readonly admin: boolean
  readonly free: boolean
}

/** Charges an evaluation as its caller is charged: the id of its reservation, if one was made. */
export const charge = (
  ledger: Ledger["Type"],
  request: Omit<ReserveRequest, "verifier">,
  caller: Caller
): Effect.Effect<string | undefined, ReserveError | SplitNotBudgeted | StoreError> =>
  Effect.gen(function*() {
    if (caller.admin) {
      const budget = yield* ledger.get(request).pipe(
        Effect.asSome,
        Effect.catchTag("SplitNotBudgeted", () => Effect.succeedNone)
      )
      if (Option.isNone(budget) || budget.value.reserved === undefined) return undefined
      return (yield* ledger.reserve({ ...request, verifier: true })).id
    }
    if (caller.free) {
      yield* ledger.get(request)
      return undefined
    }
    return (yield* ledger.reserve(request)).id
  })
