/**
 * What a run already holds of its plan, kept compact: one status byte per planned id (the plan's
 * `SampleIds`, ascending and each once), learnt by streaming the stored records (ascending by
 * sample id) past them. Memory is 1 byte a planned sample, whatever the records hold.
 */
import * as Effect from "effect/Effect"
import type { StoreError } from "../HoldoutError.js"
import * as Metrics from "../Metrics.js"
import type { SampleIdSet, SampleRecord } from "../Model.js"
import { forEachPage, type TaskStore } from "../TaskStore.js"

/**
 * The status of a planned sample: no record, a record that is not final, a final record.
 *
 * @internal
 */
export const Missing = 0
/** @internal */
export const Unfinished = 1
/** @internal */
export const Final = 2

/**
 * The status of every planned id, and counts of the stored records of the plan.
 *
 * @internal
 */
export interface PlanStatus {
  /** The planned ids, ascending, each once. */
  readonly ids: SampleIdSet
  /** `Missing`, `Unfinished` or `Final`, by position in `ids`. */
  readonly status: Uint8Array
  /** Planned ids with a record. */
  readonly stored: number
  /** Planned ids with a final record. */
  readonly final: number
  /** Planned ids whose record is an error (`error` or `evalError`). */
  readonly errors: number
}

/**
 * Reads the status of a plan from the stored records of `runId`; `isFinal` says which records
 * need no more work.
 *
 * @internal
 */
export const read = (
  store: TaskStore["Type"],
  runId: string,
  ids: SampleIdSet,
  isFinal: (record: SampleRecord) => boolean
): Effect.Effect<PlanStatus, StoreError> =>
  Effect.suspend(() => {
    const status = new Uint8Array(ids.length)
    const counts = { stored: 0, final: 0, errors: 0 }
    let position = 0
    if (ids.length === 0) return Effect.succeed({ ids, status, ...counts })
    // page by page (a fresh run reads one empty page; no stream is built for it)
    return Effect.map(
      forEachPage(store, runId, (records) => {
        for (const record of records) {
          while (position < ids.length && ids.at(position) < record.sampleId) position++
          if (position === ids.length) break
          if (ids.at(position) !== record.sampleId) continue
          counts.stored++
          if (Metrics.isError(record)) counts.errors++
          if (isFinal(record)) {
            counts.final++
            status[position] = Final
          } else status[position] = Unfinished
        }
        return Effect.succeed(position < ids.length)
      }),
      // the counts once every page is read
      () => ({ ids, status, ...counts })
    )
  })

/**
 * The planned ids whose record is not final, ascending.
 *
 * @internal
 */
export const pendingIds = (plan: PlanStatus): Array<number> => {
  const pending: Array<number> = []
  for (let position = 0; position < plan.ids.length; position++) {
    if (plan.status[position] !== Final) pending.push(plan.ids.at(position))
  }
  return pending
}
