/**
 * The engine's status: every budgeted split with its budget and tier, in configured order; a
 * thresholdout split's overfitting budget (a ledger key of its own) is shown with its split.
 */
import * as Effect from "effect/Effect"
import type { SplitStatus } from "../Engine.js"
import type { StoreError } from "../HoldoutError.js"
import type { Ledger } from "../Ledger.js"
import type { BudgetSnapshot } from "../Model.js"
import * as Release from "../Release.js"
import type { SplitAccess } from "../SplitAccess.js"

/** The status of every budgeted split. */
export const of = (
  ledger: Ledger["Type"],
  access: SplitAccess["Type"],
  releases: Release.Releases
): Effect.Effect<ReadonlyArray<SplitStatus>, StoreError> =>
  Effect.flatMap(ledger.status(), (snapshots) => {
    const byKey = new Map(snapshots.map((snapshot) => [JSON.stringify([snapshot.datasetId, snapshot.split]), snapshot]))
    const overfitOf = (snapshot: BudgetSnapshot) => {
      if (releases[snapshot.split]?._tag !== "thresholdout") return undefined
      const key = Release.overfitKey(snapshot.datasetId, snapshot.split)
      return byKey.get(JSON.stringify([key.datasetId, key.split]))
    }
    const overfitKeys = new Set(
      snapshots.flatMap((snapshot) => {
        const overfit = overfitOf(snapshot)
        return overfit === undefined ? [] : [overfit]
      })
    )
    return Effect.forEach(
      snapshots.filter((snapshot) => !overfitKeys.has(snapshot)),
      (snapshot) =>
        Effect.map(access.tier(snapshot.split), (tier): SplitStatus => {
          const overfit = overfitOf(snapshot)
          const release = releases[snapshot.split]?._tag
          return {
            ...snapshot,
            tier,
            evaluable: tier !== "no_access",
            ...(overfit === undefined ? {} : {
              overfit: { limit: overfit.limits.runs, spent: overfit.spent.runs, remaining: overfit.remaining.runs }
            }),
            ...(release === undefined || release === "exact" ? {} : { release })
          }
        })
    )
  })
