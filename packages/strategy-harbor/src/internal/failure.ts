/**
 * The Harbor strategy's failures: every one is a `StrategyError` of the strategy named `harbor`.
 *
 * @internal
 */
import { HoldoutError } from "@holdout/core"

/** The name the strategy goes by, in its records and its errors. */
export const strategyName = "harbor"

/** A `StrategyError` of the Harbor strategy. */
export const failure = (message: string): HoldoutError.StrategyError =>
  new HoldoutError.StrategyError({ strategy: strategyName, message })

/** Turns a failed file operation into a `StrategyError` saying what could not be done, and why. */
export const ioFailure = (what: string) => (error: { readonly message: string }): HoldoutError.StrategyError =>
  failure(`Could not ${what}: ${error.message}`)
