/**
 * The stored form of a run record: its sample ids as ranges (`[first, count]`), so a run of a
 * million consecutive ids is a few bytes and reads back without checking a million numbers.
 * Records stored with a plain `sampleIds` array still read back.
 */
import * as Either from "effect/Either"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { RunRecord } from "../Model.js"

const Count = Schema.Int.pipe(Schema.greaterThanOrEqualTo(0))

const StoredRun = Schema.Struct({
  ...RunRecord.omit("sampleIds").fields,
  sampleIds: Schema.optional(Schema.Array(Schema.Int)),
  sampleRanges: Schema.optional(Schema.Array(Schema.Tuple(Count, Count)))
})

const decodeStored = Schema.decodeUnknownEither(Schema.parseJson(StoredRun))

/** The ids as ranges of consecutive ids, in order. */
export const toRanges = (ids: ReadonlyArray<number>): Array<[number, number]> => {
  const ranges: Array<[number, number]> = []
  let start = 0
  let count = 0
  for (const id of ids) {
    if (count > 0 && id === start + count) {
      count++
      continue
    }
    if (count > 0) ranges.push([start, count])
    start = id
    count = 1
  }
  if (count > 0) ranges.push([start, count])
  return ranges
}

/** The ids the ranges stand for, in order. */
export const fromRanges = (ranges: ReadonlyArray<readonly [number, number]>): Array<number> => {
  let total = 0
  for (const [, count] of ranges) total += count
  const ids = new Array<number>(total)
  let index = 0
  for (const [start, count] of ranges) {
    for (let offset = 0; offset < count; offset++) ids[index++] = start + offset
  }
  return ids
}

/** A run record as the JSON text a store keeps (without its `progress`, which stores keep apart). */
export const encode = (run: RunRecord): string => {
  const { progress: _progress, sampleIds, ...rest } = run
  return JSON.stringify({ ...rest, sampleRanges: toRanges(sampleIds) })
}

/** A run record from the JSON text a store keeps. */
export const decode = (text: string): Either.Either<RunRecord, ParseResult.ParseError> =>
  Either.map(decodeStored(text), ({ sampleIds, sampleRanges, ...rest }) => ({
    ...rest,
    sampleIds: sampleRanges === undefined ? (sampleIds ?? []) : fromRanges(sampleRanges)
  }))
