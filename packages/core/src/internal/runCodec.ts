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

/**
 * The records of the texts decoded last (short texts only, the oldest forgotten first): a run is read
 * several times as it was stored while it runs (by the engine, and by a store updating it), and a
 * record's decoding costs more than the statement that read it. Records are immutable, and one text
 * always decodes to the same record.
 */
const recent = new Map<string, RunRecord>()
const recentCount = 256
const recentLength = 8192

/** A run record from the JSON text a store keeps. */
export const decode = (text: string): Either.Either<RunRecord, ParseResult.ParseError> => {
  const known = recent.get(text)
  if (known !== undefined) return Either.right(known)
  const decoded = Either.map(decodeStored(text), ({ sampleIds, sampleRanges, ...rest }): RunRecord => ({
    ...rest,
    sampleIds: sampleRanges === undefined ? SampleIds.fromIterable(sampleIds ?? []) : SampleIds.fromRanges(sampleRanges)
  }))
  if (Either.isRight(decoded) && text.length <= recentLength) {
    if (recent.size >= recentCount) recent.delete(recent.keys().next().value!)
    recent.set(text, decoded.right)
  }
  return decoded
}
