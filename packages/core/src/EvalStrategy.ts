/**
 * How a run's samples get produced. A strategy receives a plan and must leave exactly one
 * `SampleRecord` per planned sample id for that run in the `TaskStore`, skip samples already
 * complete (resume), and touch no other run. `pendingSampleIds` and `sampleRecord` are the helpers
 * a strategy of its own needs for that.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type { StoreError, StrategyError } from "./HoldoutError.js"
import * as PlanStatus from "./internal/planStatus.js"
import type { Candidate, SampleIdSet, SampleRecord } from "./Model.js"
import type { TaskStore } from "./TaskStore.js"

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
  /** The planned ids, ascending and each once (`SampleIds.fromIterable` builds them from any ids). */
  readonly sampleIds: SampleIdSet
}

/**
 * The candidate metadata key under which the verifier names the model a target is scored with (a
 * transfer target's `model`). Only the verifier sets it: a strategy honours it on admin runs (Harbor:
 * `-m`), a local task may read it from `run.candidate.metadata`.
 *
 * @since 0.1.0
 * @category constants
 */
export const modelOverrideKey = "holdout:model"

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

/**
 * Options of `pendingSampleIds`.
 *
 * @since 0.1.0
 * @category models
 */
export interface PendingOptions {
  /**
   * Whether a stored record needs no more work (default: every stored record is final). A
   * strategy that runs failed samples again passes `(record) => !Metrics.isError(record)`.
   */
  readonly isFinal?: (record: SampleRecord) => boolean
}

const everyRecordIsFinal = (_record: SampleRecord): boolean => true

/**
 * The sample ids of a plan that have no final record in its run yet, ascending and each once: what
 * a strategy still has to produce (all of them for a new run, the rest on a resume). The stored
 * records are read as a stream, so memory stays flat in the size of the run.
 *
 * @since 0.1.0
 * @category combinators
 */
export const pendingSampleIds = (
  store: TaskStore["Type"],
  plan: RunPlan,
  options: PendingOptions = {}
): Effect.Effect<Array<number>, StoreError> =>
  Effect.map(
    PlanStatus.read(store, plan.runId, plan.sampleIds, options.isFinal ?? everyRecordIsFinal),
    PlanStatus.pendingIds
  )

/**
 * The fields of a sample record a strategy supplies; the plan supplies the rest.
 *
 * @since 0.1.0
 * @category models
 */
export type SampleFields = Omit<SampleRecord, "runId" | "sampleId" | "datasetId" | "split" | "candidateId">

/**
 * The record of one sample of a plan: its run, dataset, split and candidate come from the plan.
 *
 * @example
 * ```ts
 * yield* store.putSample(EvalStrategy.sampleRecord(plan, sampleId, {
 *   output: answer, score: 1, metrics: {}, attempts: 1, startedAt, finishedAt
 * }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const sampleRecord = (plan: RunPlan, sampleId: number, fields: SampleFields): SampleRecord => ({
  runId: plan.runId,
  sampleId,
  datasetId: plan.datasetId,
  split: plan.split,
  candidateId: plan.candidate.id,
  ...fields
})
