/**
 * Release mechanisms of `non_viewable` splits (DESIGN §12): what an optimizer is told of a run's
 * mean, so that querying one split many times does not overfit it. `exact` (the default) tells
 * the mean; `thresholdout` (Dwork et al., Science 2015) tells the candidate's mean on a reference
 * split unless the holdout disagrees by more than a noisy threshold, and then a noisy holdout mean,
 * charging one unit of an overfitting budget; `ladder` (Blum & Hardt, ICML 2015) tells a new mean
 * only when it beats the best told so far by at least `eta`. Noise comes from a secret in the store:
 * an identical request gets an identical answer.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { ConfigError } from "./HoldoutError.js"
import type * as SplitAccess from "./SplitAccess.js"

/**
 * Tell the mean as it is.
 *
 * @since 0.1.0
 * @category models
 */
export const Exact = Schema.TaggedStruct("exact", {})

/**
 * Thresholdout: `reference` is a split the optimizer may evaluate (train, say), `threshold` T,
 * `sigma` σ, `overfitBudget` B.
 *
 * @since 0.1.0
 * @category models
 */
export const Thresholdout = Schema.TaggedStruct("thresholdout", {
  reference: Schema.String,
  threshold: Schema.Number.pipe(Schema.greaterThan(0)),
  sigma: Schema.Number.pipe(Schema.greaterThan(0)),
  overfitBudget: Schema.Int.pipe(Schema.greaterThanOrEqualTo(1))
})

/**
 * The ladder: a mean is told only when it beats the best told so far by at least `eta`.
 *
 * @since 0.1.0
 * @category models
 */
export const Ladder = Schema.TaggedStruct("ladder", {
  eta: Schema.Number.pipe(Schema.greaterThan(0))
})

/**
 * A split's release mechanism.
 *
 * @since 0.1.0
 * @category models
 */
export const Mechanism = Schema.Union(Exact, Thresholdout, Ladder)

/**
 * @since 0.1.0
 * @category models
 */
export type Mechanism = typeof Mechanism.Type

/**
 * The mechanisms of a stack, by split name; a split not listed is `exact`.
 *
 * @since 0.1.0
 * @category models
 */
export const Releases = Schema.Record({ key: Schema.String, value: Mechanism })

/**
 * @since 0.1.0
 * @category models
 */
export type Releases = typeof Releases.Type

/**
 * What a mechanism told: the only figure of a run's scores an optimizer sees under it.
 *
 * @since 0.1.0
 * @category models
 */
export const Released = Schema.Struct({
  mechanism: Schema.Literal("thresholdout", "ladder"),
  mean: Schema.Number
})

/**
 * @since 0.1.0
 * @category models
 */
export type Released = typeof Released.Type

/**
 * A Laplace draw of scale `scale` from a uniform number in (0, 1).
 *
 * @since 0.1.0
 * @category combinators
 */
export const laplace = (uniform: number, scale: number): number => {
  const centred = Math.min(Math.max(uniform, 1e-12), 1 - 1e-12) - 0.5
  return -scale * Math.sign(centred) * Math.log(1 - 2 * Math.abs(centred))
}

/**
 * A uniform number in (0, 1) drawn from a secret and the parts that name the draw (SHA-256):
 * the same parts always give the same number.
 *
 * @since 0.1.0
 * @category combinators
 */
export const uniform = (secret: string, ...parts: ReadonlyArray<string | number>): Effect.Effect<number> =>
  Effect.promise(async () => {
    const text = JSON.stringify(["holdout-release-v1", secret, ...parts])
    const digest = new Uint32Array(await globalThis.crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)))
    // 53 random bits, shifted off 0
    return (digest[0]! * 2 ** 21 + (digest[1]! >>> 11) + 0.5) / 2 ** 53
  })

/**
 * The noise of one thresholdout answer: γ ~ Lap(2σ) for the threshold (the same until an answer
 * goes over it), η ~ Lap(4σ) per query, ξ ~ Lap(σ) added to an over-threshold answer.
 *
 * @since 0.1.0
 * @category models
 */
export interface ThresholdoutNoise {
  readonly gamma: number
  readonly eta: number
  readonly xi: number
}

/**
 * Thresholdout's answer rule: the reference mean when |holdout − reference| ≤ T + γ + η; else the
 * holdout mean plus ξ, which spends one unit of the overfitting budget.
 *
 * @since 0.1.0
 * @category combinators
 */
export const thresholdoutAnswer = (
  mechanism: typeof Thresholdout.Type,
  holdout: number,
  reference: number,
  noise: ThresholdoutNoise
): { readonly over: boolean; readonly mean: number } =>
  Math.abs(holdout - reference) > mechanism.threshold + noise.gamma + noise.eta
    ? { over: true, mean: holdout + noise.xi }
    : { over: false, mean: reference }

/**
 * The ladder's answer rule: a mean that beats the best told so far by at least `eta` is told,
 * rounded to a multiple of `eta`; otherwise the best so far is told again.
 *
 * @since 0.1.0
 * @category combinators
 */
export const ladderAnswer = (
  mechanism: typeof Ladder.Type,
  mean: number,
  best: number | undefined
): { readonly improved: boolean; readonly mean: number } =>
  best === undefined || mean >= best + mechanism.eta
    ? { improved: true, mean: Math.round(mean / mechanism.eta) * mechanism.eta }
    : { improved: false, mean: best }

/**
 * The ledger key of a split's overfitting budget (one run a unit). It is no split an optimizer
 * can name: unlisted, so `no_access`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const overfitKey = (datasetId: string, split: string) => ({ datasetId, split: `${split}#overfit` })

const decodeReleases = Schema.decodeUnknownEither(Releases, { onExcessProperty: "error" })

/**
 * Checks a stack's release mechanisms against its tiers: a mechanism other than `exact` belongs to
 * a `non_viewable` split, and a thresholdout reference is another split an optimizer may evaluate.
 *
 * @since 0.1.0
 * @category constructors
 */
export const validate = (
  releases: unknown,
  access: SplitAccess.SplitAccess["Type"]
): Effect.Effect<Releases, ConfigError> =>
  Effect.gen(function*() {
    const decoded = decodeReleases(releases)
    if (Either.isLeft(decoded)) {
      return yield* new ConfigError({
        message: `releases is malformed: ${ParseResult.TreeFormatter.formatErrorSync(decoded.left)}`
      })
    }
    for (const [split, mechanism] of Object.entries(decoded.right)) {
      if (mechanism._tag === "exact") continue
      const tier = yield* access.tier(split)
      if (tier !== "non_viewable") {
        return yield* new ConfigError({
          message: `Split "${split}" has the ${mechanism._tag} release mechanism but is ${tier}: mechanisms ` +
            `belong to non_viewable splits. Tier it non_viewable or drop its release.`
        })
      }
      if (mechanism._tag === "thresholdout") {
        const referenceTier = yield* access.tier(mechanism.reference)
        if (mechanism.reference === split || referenceTier === "no_access") {
          return yield* new ConfigError({
            message: `The thresholdout reference of split "${split}" is "${mechanism.reference}", which ` +
              (mechanism.reference === split ? "is the split itself" : "optimizers cannot evaluate (no_access)") +
              `. Give a split the optimizer evaluates candidates on, such as train.`
          })
        }
      }
    }
    return decoded.right
  })

/**
 * The overfitting budgets the ledger must meter for a stack's budgets: one per budgeted split with
 * thresholdout, of `overfitBudget` units.
 *
 * @since 0.1.0
 * @category constructors
 */
export const overfitBudgets = (
  releases: Releases,
  budgets: ReadonlyArray<{ readonly datasetId: string; readonly split: string }>
): Array<{ readonly datasetId: string; readonly split: string; readonly runs: number }> =>
  budgets.flatMap((budget) => {
    const mechanism = releases[budget.split]
    return mechanism?._tag === "thresholdout"
      ? [{ ...overfitKey(budget.datasetId, budget.split), runs: mechanism.overfitBudget }]
      : []
  })
