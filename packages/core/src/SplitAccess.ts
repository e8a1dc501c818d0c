/**
 * Which tier each split has. One fail-closed resolver serves the engine, views and every frontend:
 * an exact, case-sensitive match of the split name, and an unlisted split is `no_access`.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { ConfigError } from "./HoldoutError.js"
import { AccessTier, type SplitTier } from "./Model.js"

/**
 * The tier resolver.
 *
 * @since 0.1.0
 * @category tags
 */
export class SplitAccess extends Context.Tag("@holdout/core/SplitAccess")<SplitAccess, {
  /** The tier of a split name; `no_access` when the split is not listed. */
  readonly tier: (split: string) => Effect.Effect<AccessTier>
  /** The policy, one entry a split, in configured order. */
  readonly entries: ReadonlyArray<SplitTier>
}>() {}

/**
 * A policy as a configuration gives it: a record from split to tier, or a list of entries.
 *
 * @since 0.1.0
 * @category models
 */
export type Policy = Readonly<Record<string, AccessTier>> | ReadonlyArray<SplitTier>

/**
 * The tier of `split` under `entries`: exact, case-sensitive; unlisted → `no_access` (fail closed).
 *
 * @since 0.1.0
 * @category combinators
 */
export const resolve = (entries: ReadonlyArray<SplitTier>, split: string): AccessTier => {
  for (const entry of entries) {
    if (entry.split === split) return entry.tier
  }
  return "no_access"
}

const isTier = Schema.is(AccessTier)

/**
 * Checks a policy and turns it into entries. A tier that is not one of the three, an empty split
 * name, or the same split listed twice with different tiers is a `ConfigError`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const normalize = (policy: Policy): Effect.Effect<ReadonlyArray<SplitTier>, ConfigError> =>
  Effect.suspend(() => {
    const raw: ReadonlyArray<{ readonly split: unknown; readonly tier: unknown }> = Array.isArray(policy)
      ? policy
      : Object.entries(policy as Record<string, unknown>).map(([split, tier]) => ({ split, tier }))
    const entries: Array<SplitTier> = []
    const seen = new Map<string, AccessTier>()
    for (const entry of raw) {
      if (typeof entry.split !== "string" || entry.split.length === 0) {
        return Effect.fail(new ConfigError({ message: `Access policy has an entry without a split name.` }))
      }
      if (!isTier(entry.tier)) {
        return Effect.fail(
          new ConfigError({
            message: `Access policy gives split "${entry.split}" the tier ${JSON.stringify(entry.tier)}; ` +
              `use one of "viewable", "non_viewable", "no_access".`
          })
        )
      }
      const previous = seen.get(entry.split)
      if (previous !== undefined) {
        if (previous !== entry.tier) {
          return Effect.fail(
            new ConfigError({
              message: `Access policy lists split "${entry.split}" twice, as "${previous}" and as "${entry.tier}". ` +
                `Give each split one tier.`
            })
          )
        }
        continue
      }
      seen.set(entry.split, entry.tier)
      entries.push({ split: entry.split, tier: entry.tier })
    }
    return Effect.succeed(entries)
  })

/**
 * Builds the service from checked entries.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (entries: ReadonlyArray<SplitTier>): SplitAccess["Type"] => {
  const byName = new Map(entries.map((entry) => [entry.split, entry.tier] as const))
  return {
    tier: (split) => Effect.succeed(byName.get(split) ?? "no_access"),
    entries
  }
}

/**
 * The resolver for a policy. An empty policy denies every split.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (policy: Policy): Layer.Layer<SplitAccess, ConfigError> =>
  Layer.effect(SplitAccess, Effect.map(normalize(policy), make))
