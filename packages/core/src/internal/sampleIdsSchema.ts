/**
 * The schemas of `SampleIds`, exported by `Model` (with the type, as `Model.SampleIdSet`, so that
 * the declarations of schemas holding run records name it through `Model`).
 */
import * as Equal from "effect/Equal"
import * as Schema from "effect/Schema"
import * as SampleIds from "../SampleIds.js"

export type { SampleIds as SampleIdSet } from "../SampleIds.js"

/** Sample ids as themselves. */
export const SampleIdsFromSelf: Schema.declare<SampleIds.SampleIds> = Schema.declare(SampleIds.isSampleIds, {
  identifier: "SampleIdsFromSelf",
  description: "sample ids, ascending and each once",
  pretty: () => String,
  equivalence: () => Equal.equals,
  arbitrary: () => (fc) => fc.uniqueArray(fc.nat({ max: 10_000 })).map(SampleIds.fromIterable)
})

/**
 * Sample ids from an array of integers (the form of JSON and the wire), as a set: in any order and
 * with repeats they decode ascending and each once, and encode as an ascending array.
 */
export const SampleIdsFromArray = Schema.transform(Schema.Array(Schema.Int), SampleIdsFromSelf, {
  strict: true,
  decode: (ids) => SampleIds.fromIterable(ids),
  encode: (ids) => SampleIds.toArray(ids)
})
