/**
 * The engine's status: every budgeted split with its budget and tier, in configured order; a
 * thresholdout split's overfitting budget (a ledger key of its own) is shown with its split.
 *
 * The budgets are read from the ledger at most once per `maxAge` while the engine charges nothing:
 * a charge the engine makes shows in the next status at once (read your writes), one made by another
 * process sharing the store within `maxAge`. So a client that polls the status costs the store next to
 * nothing, and never sees less spent than its own evaluations charged.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { SplitStatus } from "../Engine.js"
import { ConfigError, type StoreError } from "../HoldoutError.js"
import type { Ledger } from "../Ledger.js"
import type { BudgetSnapshot } from "../Model.js"
import * as Release from "../Release.js"
import type { SplitAccess } from "../SplitAccess.js"

/** The ledger's budgets as last read, and the ledger the engine charges through. */
export interface Budgets {
  /** The ledger, whose `reserve` marks the budgets read before it as outdated. */
  readonly ledger: Ledger["Type"]
  /** Every budgeted split's budget, read again when outdated or older than `maxAge`. */
  readonly snapshots: Effect.Effect<ReadonlyArray<BudgetSnapshot>, StoreError>
}

/** How long a status may show budgets read before, unless the engine says otherwise. */
export const defaultMaxAge = Duration.millis(100)

/** The budgets of `ledger`, kept for at most `maxAge` (zero reads the ledger every time). */
export const budgets = (
  ledger: Ledger["Type"],
  maxAge: Duration.DurationInput = defaultMaxAge
): Effect.Effect<Budgets, ConfigError> => {
  const decoded = Duration.decodeUnknown(maxAge)
  if (Option.isNone(decoded) || !Duration.isFinite(decoded.value)) {
    return new ConfigError({
      message: `statusMaxAge must be a finite duration (e.g. "100 millis" or a number of milliseconds), got ${
        String(maxAge)
      }.`
    })
  }
  const maxAgeMillis = Duration.toMillis(decoded.value)
  // bumped when a charge ends, however it ends: a read that began before is outdated
  let generation = 0
  let last:
    | { readonly generation: number; readonly at: number; readonly snapshots: ReadonlyArray<BudgetSnapshot> }
    | undefined
  const charged = Effect.sync(() => {
    generation++
  })
  const snapshots = Effect.flatMap(Clock.currentTimeMillis, (now) => {
    if (last !== undefined && last.generation === generation && now >= last.at && now - last.at < maxAgeMillis) {
      return Effect.succeed(last.snapshots)
    }
    const read = { generation, at: now }
    return Effect.map(ledger.status(), (snapshots) => {
      last = { ...read, snapshots }
      return snapshots
    })
  })
  return Effect.succeed({
    ledger: { ...ledger, reserve: (request) => Effect.ensuring(ledger.reserve(request), charged) },
    snapshots
  })
}

/**
 * The status of every budgeted split. It is worked out again only when the budgets were read again:
 * until then every call answers the same array, so a caller can keep what it made of it (the
 * sidecar's encoded answer) for as long as that holds.
 */
export const of = (
  budgets: Budgets,
  access: SplitAccess["Type"],
  releases: Release.Releases
): Effect.Effect<ReadonlyArray<SplitStatus>, StoreError> => {
  let last: { readonly snapshots: ReadonlyArray<BudgetSnapshot>; readonly statuses: ReadonlyArray<SplitStatus> } = {
    snapshots: [],
    statuses: []
  }
  return Effect.flatMap(budgets.snapshots, (snapshots) => {
    if (snapshots === last.snapshots) return Effect.succeed(last.statuses)
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
    ).pipe(Effect.tap((statuses) => {
      last = { snapshots, statuses }
    }))
  })
}
