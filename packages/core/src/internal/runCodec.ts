/**
 * The stored form of a run record: its sample ids as ranges (`[first, count]`), so a run of a
 * million consecutive ids is a few bytes and reads back without a number per id. Records stored
 * with a plain `sampleIds` array still read back.
 */
import * as Either from "effect/Either"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { RunRecord } from "../Model.js"
import * as SampleIds from "../SampleIds.js"

const Count = Schema.Int.pipe(Schema.greaterThanOrEqualTo(0))

const StoredRun = Schema.Struct({
  ...RunRecord.omit("sampleIds").fields,
  sampleIds: Schema.optional(Schema.Array(Schema.Int)),
  sampleRanges: Schema.optional(Schema.Array(Schema.Tuple(Count, Count)))
})

const decodeStored = Schema.decodeUnknownEither(Schema.parseJson(StoredRun))

/** A run record as the JSON text a store keeps (without its `progress`, which stores keep apart). */
export const encode = (run: RunRecord): string => {
  const { progress: _progress, sampleIds, ...rest } = run
  return JSON.stringify({ ...rest, sampleRanges: SampleIds.ranges(sampleIds) })
}

/** A run record from the JSON text a store keeps. */
export const decode = (text: string): Either.Either<RunRecord, ParseResult.ParseError> =>
  Either.map(decodeStored(text), ({ sampleIds, sampleRanges, ...rest }) => ({
    ...rest,
    sampleIds: sampleRanges === undefined ? SampleIds.fromIterable(sampleIds ?? []) : SampleIds.fromRanges(sampleRanges)
  }))
