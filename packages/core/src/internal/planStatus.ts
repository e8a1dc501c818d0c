/**
 * What a run already holds of its plan, kept compact: the planned ids, sorted and without
 * repeats, as runs of consecutive ids (a whole split is one run) or, when they are scattered, in a
 * `Float64Array`; and one status byte per id, learnt by streaming the stored records (ascending by
 * sample id) past them. Memory is 1 byte a planned sample for consecutive ids and at most 9 bytes
 * a planned sample otherwise, whatever the records hold.
 */
import * as Effect from "effect/Effect"
import type { StoreError } from "../HoldoutError.js"
import * as Metrics from "../Metrics.js"
import type { SampleRecord } from "../Model.js"
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
  readonly ids: SortedIds
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
 * Ids in ascending order, each once, read by position.
 *
 * @internal
 */
export interface SortedIds {
  /** How the ids are held: as runs of consecutive ids, or one number each. */
  readonly kind: "runs" | "dense"
  readonly length: number
  /** The id at `position`, for 0 ≤ position < length. */
  readonly at: (position: number) => number
}

/** Scattered ids, one number each. */
const dense = (ids: Float64Array): SortedIds => ({
  kind: "dense",
  length: ids.length,
  at: (position) => ids[position]!
})

/**
 * Runs of consecutive ids: run `r` holds `firsts[r]`, `firsts[r] + 1`, … at positions
 * `positions[r]` up to `positions[r + 1]` (exclusive). Reads in order cost O(1) each.
 */
const runs = (firsts: Float64Array, positions: Float64Array, length: number): SortedIds => {
  let run = 0
  return {
    kind: "runs",
    length,
    at: (position) => {
      if (position < positions[run]! || position >= (positions[run + 1] ?? length)) {
        let low = 0
        let high = firsts.length - 1
        while (low < high) {
          const middle = (low + high + 1) >> 1
          if (positions[middle]! <= position) low = middle
          else high = middle - 1
        }
        run = low
      }
      return firsts[run]! + position - positions[run]!
    }
  }
}

/** Whether the ids ascend strictly (then they are already sorted and without repeats). */
const ascending = (ids: ArrayLike<number>): boolean => {
  for (let index = 1; index < ids.length; index++) if (ids[index]! <= ids[index - 1]!) return false
  return true
}

/**
 * The planned ids, ascending, each once: as runs when there are few, else one number each.
 *
 * @internal
 */
export const sortedIds = (sampleIds: ReadonlyArray<number>): SortedIds => {
  let ids: ArrayLike<number> = sampleIds
  if (!ascending(sampleIds)) {
    const sorted = Float64Array.from(sampleIds).sort()
    let length = 0
    for (let index = 0; index < sorted.length; index++) {
      if (length === 0 || sorted[index] !== sorted[length - 1]) sorted[length++] = sorted[index]!
    }
    ids = sorted.subarray(0, length)
  }
  let count = 0
  for (let index = 0; index < ids.length; index++) if (index === 0 || ids[index] !== ids[index - 1]! + 1) count++
  // two numbers a run: runs pay off while they are fewer than half the ids
  if (count * 2 > ids.length) return dense(ids instanceof Float64Array ? ids : Float64Array.from(ids))
  const firsts = new Float64Array(count)
  const positions = new Float64Array(count)
  let run = -1
  for (let index = 0; index < ids.length; index++) {
    if (index === 0 || ids[index] !== ids[index - 1]! + 1) {
      run++
      firsts[run] = ids[index]!
      positions[run] = index
    }
  }
  return runs(firsts, positions, ids.length)
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
  sampleIds: ReadonlyArray<number>,
  isFinal: (record: SampleRecord) => boolean
): Effect.Effect<PlanStatus, StoreError> =>
  Effect.suspend(() => {
    const ids = sortedIds(sampleIds)
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
