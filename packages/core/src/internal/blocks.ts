/**
 * Secret blocks of `non_viewable` splits (DESIGN §10). A split of `size` samples is cut into blocks
 * of at least `floor` samples by a secret random permutation: the permutation is drawn from a
 * seed derived (SHA-256) from the store's secret, the split and its size, so every process sharing
 * the store computes the same blocks, a restart keeps them, and a new size gets a new partition.
 * Without the secret the blocks cannot be predicted; every answer is a sum over whole blocks.
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { InvalidRequest, SubsetTooSmall } from "../HoldoutError.js"
import * as Metrics from "../Metrics.js"
import type { EvalRequest, RunRecord, SampleRecord } from "../Model.js"
import * as SampleIds from "../SampleIds.js"
import { resolveSampleIds } from "./requests.js"
import * as Statistics from "./statistics.js"

/** The blocks of a split: sample ids, each block ascending, blocks in their secret order. */
export type Blocks = ReadonlyArray<ReadonlyArray<number>>

const seedOf = (secret: string, datasetId: string, split: string, size: number, floor: number) =>
  Effect.promise(async () => {
    const text = JSON.stringify(["holdout-blocks-v1", secret, datasetId, split, size, floor])
    const digest = await globalThis.crypto.subtle.digest("SHA-256", new TextEncoder().encode(text))
    return new Uint32Array(digest.slice(0, 16))
  })

/** sfc32 from a 128-bit seed: uniform numbers in [0, 1). */
const generator = (seed: Uint32Array) => Statistics.generator(seed[0]!, seed[1]!, seed[2]!, seed[3]!)

/** Cuts a permutation into chunks of `floor`; a short last chunk joins the one before. */
export const chunk = (permutation: ReadonlyArray<number>, floor: number): Blocks => {
  const count = Math.max(1, Math.floor(permutation.length / floor))
  const blocks: Array<Array<number>> = []
  for (let index = 0; index < count; index++) {
    const end = index === count - 1 ? permutation.length : (index + 1) * floor
    blocks.push(permutation.slice(index * floor, end).sort((x, y) => x - y))
  }
  return blocks
}

/** The secret blocks of a split of `size` samples. */
export const partition = (
  secret: string,
  datasetId: string,
  split: string,
  size: number,
  floor: number
): Effect.Effect<Blocks> =>
  Effect.map(seedOf(secret, datasetId, split, size, floor), (seed) => {
    const random = generator(seed)
    for (let warm = 0; warm < 12; warm++) random()
    const permutation = Array.from({ length: size }, (_, index) => index)
    for (let index = size - 1; index > 0; index--) {
      const other = Math.floor(random() * (index + 1))
      const held = permutation[index]!
      permutation[index] = permutation[other]!
      permutation[other] = held
    }
    return chunk(permutation, floor)
  })

/** The sample ids of the fewest leading blocks holding at least `count` samples, ascending. */
export const take = (blocks: Blocks, count: number): ReadonlyArray<number> => {
  const ids: Array<number> = []
  for (const block of blocks) {
    if (ids.length >= count) break
    for (const id of block) ids.push(id)
  }
  return ids.sort((x, y) => x - y)
}

/** A fresh store secret: 32 random bytes, hex. */
export const newSecret = (): string =>
  Array.from(globalThis.crypto.getRandomValues(new Uint8Array(32)), (byte) => byte.toString(16).padStart(2, "0")).join(
    ""
  )

/**
 * The sample ids a request names on a `non_viewable` split: the fewest whole secret blocks holding
 * at least `numSamples`, or the whole split; ids are refused, and fewer than the floor is
 * `SubsetTooSmall`. `secretOf` stores a new secret unless the store has one, and returns the
 * stored one. Blocks are drawn once per split and size and kept.
 */
export const make = <E>(
  secretOf: (fresh: string) => Effect.Effect<string, E>,
  floor: number
) => {
  const cache = new Map<string, Blocks>()
  const blocksOf = (datasetId: string, split: string, size: number) =>
    Effect.gen(function*() {
      const cacheKey = JSON.stringify([datasetId, split, size])
      const cached = cache.get(cacheKey)
      if (cached !== undefined) return cached
      const blocks = yield* partition(yield* secretOf(newSecret()), datasetId, split, size, floor)
      cache.set(cacheKey, blocks)
      return blocks
    })
  const sampleIds = (request: EvalRequest, size: number) =>
    Effect.gen(function*() {
      if (request.sampleIds !== undefined) {
        return yield* new InvalidRequest({
          message: `Split "${request.split}" is non_viewable: its samples cannot be chosen by id. Give numSamples ` +
            `(whole secret blocks of at least ${floor} samples are evaluated), or neither for the whole split.`
        })
      }
      // numSamples (and an empty split) are checked as on any split
      const first = yield* resolveSampleIds(request, size)
      if (first.length === size) return first
      if (first.length < floor) {
        return yield* new SubsetTooSmall({ split: request.split, requested: first.length, minimum: floor })
      }
      return SampleIds.fromIterable(take(yield* blocksOf(request.datasetId, request.split, size), first.length))
    })

  /**
   * The spread of a run made of whole blocks, at block level: the standard error of its mean from
   * the blocks' sums (a cluster standard error, so it says nothing a sum over whole blocks does not)
   * and its 95% t interval over the blocks. Reads the run's samples once.
   */
  const spread = <E2>(samples: Stream.Stream<SampleRecord, E2>, run: RunRecord, size: number) =>
    Effect.gen(function*() {
      const blocks = yield* blocksOf(run.datasetId, run.split, size)
      const blockOf = new Int32Array(size).fill(-1)
      blocks.forEach((block, index) => {
        for (const id of block) blockOf[id] = index
      })
      const counts = new Float64Array(blocks.length)
      const sums = new Float64Array(blocks.length)
      yield* Stream.runForEach(samples, (sample) =>
        Effect.sync(() => {
          const block = sample.sampleId < size ? blockOf[sample.sampleId]! : -1
          if (block < 0) return
          counts[block]! += 1
          sums[block]! += Metrics.isError(sample) ? 0 : (sample.score ?? 0)
        }))
      let used = 0
      let total = 0
      let sum = 0
      for (let block = 0; block < blocks.length; block++) {
        if (counts[block] === 0) continue
        used++
        total += counts[block]!
        sum += sums[block]!
      }
      if (used < 2) return { count: used, standardError: null, interval: null }
      const mean = sum / total
      let squares = 0
      for (let block = 0; block < blocks.length; block++) {
        if (counts[block] !== 0) squares += (sums[block]! - counts[block]! * mean) ** 2
      }
      const standardError = Math.sqrt((used / (used - 1)) * squares) / total
      const half = Statistics.tQuantile975(used - 1) * standardError
      return { count: used, standardError, interval: { lower: mean - half, upper: mean + half } }
    })

  return { sampleIds, spread }
}
