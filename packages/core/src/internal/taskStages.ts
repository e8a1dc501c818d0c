/**
 * The two stages of a `Task`, as definitions of the one generic stage: inference (the samples
 * with no record) and scoring (the samples inferred without error), and the run events they
 * publish as their records land.
 */
import * as Effect from "effect/Effect"
import { type RunPlan, sampleRecord } from "../EvalStrategy.js"
import type { SampleRecord } from "../Model.js"
import * as RunEvents from "../RunEvents.js"
import type * as Task from "../Task.js"
import type * as PlanStatus from "./planStatus.js"
import * as Stage from "./stage.js"
import type { Item, Settings } from "./stage.js"
import { decodeOutput, decodeScore, type InferenceFields, type ScoreFields } from "./taskResult.js"

type Mutable<A> = { -readonly [K in keyof A]: A[K] }

/**
 * Whether a stored record still needs scoring: inferred without error, neither scored nor failed
 * in scoring. Every other record is final.
 *
 * @internal
 */
export const needsScoring = (record: SampleRecord): boolean =>
  record.error === undefined && record.score === undefined && record.evalError === undefined

const storedOutput = (record: SampleRecord): Task.StoredOutput<unknown> =>
  record.trace === undefined ? { output: record.output } : { output: record.output, trace: record.trace }

/**
 * What the stages publish when a record lands (none without a hub).
 *
 * @internal
 */
export interface Landed {
  readonly inferred: (record: SampleRecord) => Effect.Effect<void>
  readonly scored: (record: SampleRecord) => Effect.Effect<void>
}

/**
 * Publishes `SampleInferred` and `SampleScored` with the run's counts, starting from what the run
 * held. An inference error is final, so it is published as inferred and as scored.
 *
 * @internal
 */
export const makeLanded = (
  events: RunEvents.RunEvents["Type"],
  runId: string,
  status: PlanStatus.PlanStatus
): Landed => {
  const counts = { inferred: status.stored, scored: status.final, errors: status.errors }
  // the counts are kept while nobody listens, for whoever subscribes later
  const scored = (record: SampleRecord, error: boolean) => {
    counts.scored++
    if (!events.unsafeHasSubscribers()) return Effect.void
    return events.publish(
      new RunEvents.SampleScored(
        { runId, sampleId: record.sampleId, error, scored: counts.scored, errors: counts.errors },
        true
      )
    )
  }
  return {
    inferred: (record) =>
      Effect.suspend(() => {
        const error = record.error !== undefined
        counts.inferred++
        if (error) counts.errors++
        if (!events.unsafeHasSubscribers()) return error ? scored(record, true) : Effect.void
        const inferred = events.publish(
          new RunEvents.SampleInferred(
            { runId, sampleId: record.sampleId, error, inferred: counts.inferred, errors: counts.errors },
            true
          )
        )
        return error ? Effect.zipRight(inferred, Effect.suspend(() => scored(record, true))) : inferred
      }),
    scored: (record) =>
      Effect.suspend(() => {
        const error = record.evalError !== undefined
        if (error) counts.errors++
        return scored(record, error)
      })
  }
}

/**
 * What the stages of a task are made for: the task, the resolved options, the plan, and the
 * publisher of events (none without a hub).
 *
 * @internal
 */
export interface Context {
  readonly task: Task.Task<unknown, unknown, unknown>
  readonly settings: Settings
  readonly plan: RunPlan
  readonly landed: Landed | undefined
}

/** How a stage calls the task: its function for one sample when it has one, else its batch function. */
const calling = (
  names: readonly [single: string, batch: string],
  single: ((item: Item) => unknown) | undefined,
  batch: (items: ReadonlyArray<Item>) => unknown,
  batchSize: number
): Pick<Stage.Definition<unknown>, "fn" | "batch" | "unitSize" | "call"> =>
  single === undefined
    ? { fn: names[1], batch: true, unitSize: batchSize, call: batch }
    : { fn: names[0], batch: false, unitSize: 1, call: (items) => single(items[0]!) }

/**
 * The inference stage of a task; with `next` (its scoring stage), a sample goes on to scoring at
 * once (`Stage.make`).
 *
 * @internal
 */
export const inference = ({ landed, plan, settings, task }: Context, next?: Stage.Stage): Stage.Stage => {
  const infer = task.infer
  return Stage.make<InferenceFields>({
    ...calling(
      ["infer", "inferBatch"],
      infer && ((item) => infer(item.input, plan)),
      (items) => task.inferBatch!(items.map((item) => item.input), plan),
      settings.batchSize
    ),
    needs: (item) => item.record === undefined,
    decode: decodeOutput,
    failed: (message, trace) => ({ output: null, error: message, errorTrace: trace }),
    build: (item, fields, times) => {
      const record: Mutable<SampleRecord> = sampleRecord(plan, item.sampleId, {
        input: item.input,
        output: fields.output,
        metrics: {},
        ...times
      })
      if (fields.trace !== undefined) record.trace = fields.trace
      if (fields.error !== undefined) record.error = fields.error
      if (fields.errorTrace !== undefined) record.errorTrace = fields.errorTrace
      return record
    },
    landed: landed?.inferred
  }, next)
}

/**
 * The scoring stage of a task.
 *
 * @internal
 */
export const scoring = ({ landed, plan, settings, task }: Context): Stage.Stage => {
  const score = task.score
  return Stage.make<ScoreFields>({
    ...calling(
      ["score", "scoreBatch"],
      score && ((item) => score(item.row, storedOutput(item.record!), plan)),
      (items) =>
        task.scoreBatch!(
          items.map((item) => item.row),
          items.map((item) => storedOutput(item.record!)),
          plan
        ),
      settings.batchSize
    ),
    needs: (item) => item.record !== undefined && needsScoring(item.record),
    decode: decodeScore,
    failed: (message, trace) => ({ metrics: {}, evalError: message, evalTrace: trace }),
    build: (item, fields, times) => {
      // Object.assign, not a spread: V8 turns a spread of a record this wide into a dictionary-mode
      // object that takes twice the memory.
      const record: Mutable<SampleRecord> = Object.assign({}, item.record!)
      record.metrics = fields.metrics
      record.attempts = times.attempts
      record.finishedAt = times.finishedAt
      if (fields.score !== undefined) record.score = fields.score
      if (fields.feedback !== undefined) record.feedback = fields.feedback
      if (fields.evalError !== undefined) record.evalError = fields.evalError
      if (fields.evalTrace !== undefined) record.evalTrace = fields.evalTrace
      return record
    },
    landed: landed?.scored
  })
}
