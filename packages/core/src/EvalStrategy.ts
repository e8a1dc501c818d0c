/**
 * How a run's samples get produced. A strategy receives a plan and must leave exactly one
 * `SampleRecord` per planned sample id for that run in the `TaskStore`, skip samples already
 * complete (resume), and touch no other run.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { StoreError, StrategyError } from "./HoldoutError.js"
import type { Candidate } from "./Model.js"

/**
 * What a strategy is asked to produce: the samples of one run.
 *
 * @since 0.1.0
 * @category models
 */
export interface RunPlan {
  readonly runId: string
  readonly candidate: Candidate
  readonly datasetId: string
  readonly split: string
  readonly sampleIds: ReadonlyArray<number>
}

/**
 * The strategy service.
 *
 * @since 0.1.0
 * @category tags
 */
export class EvalStrategy extends Context.Tag("@holdout/core/EvalStrategy")<EvalStrategy, {
  readonly name: string
  readonly produce: (plan: RunPlan) => Effect.Effect<void, StrategyError | StoreError>
}>() {}
