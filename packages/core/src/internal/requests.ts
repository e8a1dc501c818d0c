import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { InvalidRequest } from "../HoldoutError.js"
import { EvalRequest } from "../Model.js"
import * as SampleIds from "../SampleIds.js"

const decodeRequest = Schema.decodeUnknownEither(EvalRequest, { onExcessProperty: "error", errors: "all" })

/** @internal */
export const decode = (input: unknown): Either.Either<EvalRequest, InvalidRequest> =>
  Either.mapLeft(
    decodeRequest(input),
    (error) =>
      new InvalidRequest({
        message: `Malformed evaluation request: ${ParseResult.TreeFormatter.formatErrorSync(error)}`
      })
  )

const listIds = (ids: ReadonlyArray<unknown>): string => {
  const shown = ids.slice(0, 20).map((id) => JSON.stringify(id)).join(", ")
  return ids.length > 20 ? `${shown}, … (${ids.length} in all)` : shown
}

/**
 * The sample ids a request resolves to, ascending, against a split of `size` samples.
 *
 * @internal
 */
export const resolveSampleIds = (
  request: EvalRequest,
  size: number
): Either.Either<SampleIds.SampleIds, InvalidRequest> => {
  const fail = (message: string) => Either.left(new InvalidRequest({ message }))
  const where = `split "${request.split}" of dataset "${request.datasetId}"`
  if (request.sampleIds !== undefined && request.numSamples !== undefined) {
    return fail(
      "Give either sampleIds (those samples) or numSamples (the first N samples), not both."
    )
  }
  if (size === 0) return fail(`The ${where} is empty: there is nothing to evaluate.`)
  if (request.numSamples !== undefined) {
    const count = request.numSamples
    if (!Number.isInteger(count) || count < 1) {
      return fail(`numSamples must be an integer of at least 1, got ${JSON.stringify(count)}.`)
    }
    return Either.right(SampleIds.range(0, Math.min(count, size)))
  }
  if (request.sampleIds !== undefined) {
    const ids = request.sampleIds
    if (ids.length === 0) {
      return fail("sampleIds is empty. List at least one sample id, or leave it out to evaluate the whole split.")
    }
    const notIntegers = ids.filter((id) => !Number.isInteger(id))
    if (notIntegers.length > 0) return fail(`sampleIds must be integers; these are not: ${listIds(notIntegers)}.`)
    const outside = ids.filter((id) => id < 0 || id >= size)
    if (outside.length > 0) {
      return fail(`sampleIds ${listIds(outside)} are outside the ${where}, whose ids are 0..${size - 1}.`)
    }
    const seen = new Set<number>()
    const repeated: Array<number> = []
    for (const id of ids) {
      if (seen.has(id)) repeated.push(id)
      seen.add(id)
    }
    if (repeated.length > 0) return fail(`sampleIds lists ${listIds(repeated)} more than once; list each id once.`)
    return Either.right(SampleIds.fromIterable(seen))
  }
  return Either.right(SampleIds.range(0, size))
}
