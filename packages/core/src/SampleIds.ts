/**
 * The sample ids of a run: a set of ids, ascending and each once, held compactly. Consecutive ids
 * are kept as runs (a whole split of ten million samples is two numbers); scattered ids are kept
 * one number each, off the JavaScript heap. A run's size therefore costs a run record nothing, and
 * the ids are read by position (in order at O(1) each) or iterated.
 *
 * On the wire and in JSON the ids are a plain array of integers (`SampleIdsFromArray` in `Model`).
 *
 * @since 0.1.0
 */
import * as Equal from "effect/Equal"
import * as Hash from "effect/Hash"
import { NodeInspectSymbol } from "effect/Inspectable"
import type { Pipeable } from "effect/Pipeable"
import { pipeArguments } from "effect/Pipeable"

/**
 * @since 0.1.0
 * @category symbols
 */
export const TypeId: unique symbol = Symbol.for("@holdout/core/SampleIds")

/**
 * @since 0.1.0
 * @category symbols
 */
export type TypeId = typeof TypeId

/**
 * Sample ids, ascending and each once.
 *
 * @since 0.1.0
 * @category models
 */
export interface SampleIds extends Iterable<number>, Equal.Equal, Pipeable {
  readonly [TypeId]: TypeId
  /** How the ids are held: as runs of consecutive ids, or one number each. */
  readonly kind: "runs" | "dense"
  /** How many ids. */
  readonly length: number
  /** The id at `position` (0 ≤ position < length), ascending; reads in order cost O(1) each. */
  at(position: number): number
  /** The ids as an array (what `JSON.stringify` writes). */
  toJSON(): Array<number>
}

const describe = (self: SampleIds): string => {
  const all = ranges(self)
  const shown = all.slice(0, 5).map(([first, count]) => count === 1 ? `${first}` : `${first}..${first + count - 1}`)
  const more = all.length > 5 ? ", …" : ""
  return `SampleIds(${self.length}: ${shown.join(", ")}${more})`
}

interface Dense extends SampleIds {
  readonly kind: "dense"
  readonly ids: Float64Array
}

interface Runs extends SampleIds {
  readonly kind: "runs"
  /** Run `r` holds `firsts[r]`, `firsts[r] + 1`, … at positions `positions[r]` up to the next run's. */
  readonly firsts: Float64Array
  readonly positions: Float64Array
}

const sameNumbers = (left: Float64Array, right: Float64Array): boolean => {
  if (left.length !== right.length) return false
  for (let index = 0; index < left.length; index++) if (left[index] !== right[index]) return false
  return true
}

/** The run `at` read last (not an own enumerable field: two equal sets stay deeply equal). */
const cursor = Symbol("cursor")

const Proto = {
  [TypeId]: TypeId,
  at(this: Dense | Runs, position: number): number {
    if (this.kind === "dense") return this.ids[position]!
    const { firsts, length, positions } = this
    const self = this as Runs & { [cursor]: number }
    let run = self[cursor]
    if (position < positions[run]! || position >= (positions[run + 1] ?? length)) {
      let low = 0
      let high = firsts.length - 1
      while (low < high) {
        const middle = (low + high + 1) >> 1
        if (positions[middle]! <= position) low = middle
        else high = middle - 1
      }
      run = self[cursor] = low
    }
    return firsts[run]! + position - positions[run]!
  },
  [Symbol.iterator](this: SampleIds): Iterator<number> {
    let position = 0
    return {
      next: () =>
        position < this.length ? { done: false, value: this.at(position++) } : { done: true, value: undefined }
    }
  },
  [Equal.symbol](this: Dense | Runs, that: unknown): boolean {
    if (!isSampleIds(that) || that.length !== this.length) return false
    // runs are always the longest possible (they are built merged), so two sets of runs compare run
    // by run: two whole splits in O(1)
    if (this.kind === "runs" && that.kind === "runs") {
      const other = that as Runs
      return sameNumbers(this.firsts, other.firsts) && sameNumbers(this.positions, other.positions)
    }
    for (let position = 0; position < this.length; position++) if (this.at(position) !== that.at(position)) return false
    return true
  },
  [Hash.symbol](this: SampleIds): number {
    let hash = Hash.number(this.length)
    for (const [first, count] of ranges(this)) hash = Hash.combine(Hash.combine(hash)(Hash.number(first)))(count)
    return Hash.cached(this, hash)
  },
  toJSON(this: SampleIds): Array<number> {
    return toArray(this)
  },
  toString(this: SampleIds): string {
    return describe(this)
  },
  [NodeInspectSymbol](this: SampleIds): string {
    return describe(this)
  },
  pipe(this: SampleIds) {
    // eslint-disable-next-line prefer-rest-params
    return pipeArguments(this, arguments)
  }
}

/** Scattered ids, one number each. */
const dense = (ids: Float64Array): SampleIds => {
  const self = Object.create(Proto)
  self.kind = "dense"
  self.length = ids.length
  self.ids = ids
  return self
}

/** Runs of consecutive ids (see `Runs`); `length` is the number of ids. */
const runs = (firsts: Float64Array, positions: Float64Array, length: number): SampleIds => {
  const self = Object.create(Proto)
  self.kind = "runs"
  self.length = length
  self.firsts = firsts
  self.positions = positions
  Object.defineProperty(self, cursor, { value: 0, writable: true, enumerable: false })
  return self
}

/**
 * Whether a value is `SampleIds`.
 *
 * @since 0.1.0
 * @category guards
 */
export const isSampleIds = (u: unknown): u is SampleIds => typeof u === "object" && u !== null && TypeId in u

/**
 * No ids.
 *
 * @since 0.1.0
 * @category constructors
 */
export const empty: SampleIds = runs(new Float64Array(0), new Float64Array(0), 0)

/**
 * The `count` consecutive ids from `first`: `range(0, size)` is a whole split.
 *
 * @since 0.1.0
 * @category constructors
 */
export const range = (first: number, count: number): SampleIds =>
  count <= 0 ? empty : runs(Float64Array.of(first), Float64Array.of(0), count)

/** Whether the ids ascend strictly (then they are already sorted and each once). */
const ascending = (ids: ArrayLike<number>): boolean => {
  for (let index = 1; index < ids.length; index++) if (ids[index]! <= ids[index - 1]!) return false
  return true
}

/** Sorted ids, each once: as runs when those are fewer than half the ids, else one number each. */
const fromSorted = (ids: ArrayLike<number>): SampleIds => {
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
 * The ids of an iterable, in any order and with repeats, as a set: ascending, each once.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromIterable = (ids: Iterable<number>): SampleIds => {
  if (isSampleIds(ids)) return ids
  const list: ArrayLike<number> = Array.isArray(ids) ? ids : Array.from(ids)
  if (ascending(list)) return fromSorted(list)
  const sorted = Float64Array.from(list).sort()
  let length = 0
  for (let index = 0; index < sorted.length; index++) {
    if (length === 0 || sorted[index] !== sorted[length - 1]) sorted[length++] = sorted[index]!
  }
  return fromSorted(sorted.subarray(0, length))
}

/**
 * The ids of runs of consecutive ids, each `[first, count]`. Ascending, disjoint runs are taken as
 * they are (a whole split reads back without a number per id); any others are sorted into a set.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromRanges = (given: ReadonlyArray<readonly [first: number, count: number]>): SampleIds => {
  let total = 0
  let merged = 0
  let ordered = true
  for (let index = 0; index < given.length; index++) {
    const [first, count] = given[index]!
    total += count
    const previous = given[index - 1]
    if (count < 1 || (previous !== undefined && first < previous[0] + previous[1])) ordered = false
    if (previous === undefined || first !== previous[0] + previous[1]) merged++
  }
  if (!ordered || merged * 2 > total) {
    const ids = new Float64Array(total)
    let index = 0
    for (const [first, count] of given) for (let offset = 0; offset < count; offset++) ids[index++] = first + offset
    return ordered ? fromSorted(ids) : fromIterable(ids)
  }
  const firsts = new Float64Array(merged)
  const positions = new Float64Array(merged)
  let run = -1
  let position = 0
  given.forEach(([first, count], index) => {
    const previous = given[index - 1]
    if (previous === undefined || first !== previous[0] + previous[1]) {
      run++
      firsts[run] = first
      positions[run] = position
    }
    position += count
  })
  return runs(firsts, positions, total)
}

/**
 * The ids as runs of consecutive ids, each `[first, count]`, ascending.
 *
 * @since 0.1.0
 * @category getters
 */
export const ranges = (self: SampleIds): Array<[first: number, count: number]> => {
  const result: Array<[number, number]> = []
  if (self.kind === "runs") {
    const { firsts, positions } = self as Runs
    firsts.forEach((first, run) => result.push([first, (positions[run + 1] ?? self.length) - positions[run]!]))
    return result
  }
  let first = 0
  let count = 0
  for (let position = 0; position < self.length; position++) {
    const id = self.at(position)
    if (count > 0 && id === first + count) {
      count++
      continue
    }
    if (count > 0) result.push([first, count])
    first = id
    count = 1
  }
  if (count > 0) result.push([first, count])
  return result
}

/**
 * The ids as an array, ascending.
 *
 * @since 0.1.0
 * @category getters
 */
export const toArray = (self: SampleIds): Array<number> => {
  const ids = new Array<number>(self.length)
  for (let position = 0; position < self.length; position++) ids[position] = self.at(position)
  return ids
}

/**
 * One more than the largest id; 0 when there is none.
 *
 * @since 0.1.0
 * @category getters
 */
export const upperBound = (self: SampleIds): number => self.length === 0 ? 0 : self.at(self.length - 1) + 1
