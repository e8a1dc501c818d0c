import { assert, describe, it } from "@effect/vitest"
import * as Equal from "effect/Equal"
import * as Hash from "effect/Hash"
import * as Schema from "effect/Schema"
import * as Model from "../src/Model.js"
import * as SampleIds from "../src/SampleIds.js"

const all = (ids: SampleIds.SampleIds): Array<number> => Array.from({ length: ids.length }, (_, index) => ids.at(index))

describe("SampleIds", () => {
  it("keep the ids ascending and each once, whatever order and repeats they come in", () => {
    assert.deepStrictEqual(all(SampleIds.fromIterable([5, 1, 3, 1, 2, 5, 9])), [1, 2, 3, 5, 9])
    assert.deepStrictEqual(all(SampleIds.fromIterable([0, 1, 2, 10, 11, 12, 13, 40])), [0, 1, 2, 10, 11, 12, 13, 40])
    assert.deepStrictEqual(all(SampleIds.fromIterable([3, 7, 20, 100])), [3, 7, 20, 100])
    assert.deepStrictEqual(all(SampleIds.fromIterable(new Set([4, 2]))), [2, 4])
    assert.deepStrictEqual(all(SampleIds.fromIterable([])), [])
    assert.deepStrictEqual([...SampleIds.fromIterable([9, 8, 7])], [7, 8, 9])
  })

  it("read by position in any order, as well as in order", () => {
    // runs of consecutive ids: 0..999, 5000..5499, 9000
    const plan = [
      ...Array.from({ length: 500 }, (_, index) => 5000 + index),
      9000,
      ...Array.from({ length: 1000 }, (_, index) => 999 - index)
    ]
    const ids = SampleIds.fromIterable(plan)
    const expected = [...plan].sort((a, b) => a - b)
    assert.strictEqual(ids.length, expected.length)
    for (const position of [1500, 0, 1000, 999, 1499, 1, 1250, 1500, 3]) {
      assert.strictEqual(ids.at(position), expected[position], `the id at ${position}`)
    }
    assert.deepStrictEqual(all(ids), expected)
    assert.deepStrictEqual(SampleIds.ranges(ids), [[0, 1000], [5000, 500], [9000, 1]])
  })

  it("cost a few numbers for a whole split, not one a sample", () => {
    // a whole split of ten million ids is one run: the structure holds no per-id array
    const size = 10_000_000
    const whole = SampleIds.range(0, size)
    assert.strictEqual(whole.length, size)
    assert.strictEqual(whole.at(size - 1), size - 1)
    assert.strictEqual(whole.at(1234567), 1234567)
    assert.strictEqual(whole.kind, "runs")
    assert.deepStrictEqual(SampleIds.ranges(whole), [[0, size]])
    assert.strictEqual(SampleIds.upperBound(whole), size)
    // from ranges, and from an array of every id, it is the same one run
    const fromRanges = SampleIds.fromRanges([[0, size / 2], [size / 2, size / 2]])
    assert.strictEqual(fromRanges.kind, "runs")
    assert.deepStrictEqual(SampleIds.ranges(fromRanges), [[0, size]])
    assert.strictEqual(SampleIds.fromIterable(Array.from({ length: size }, (_, index) => index)).kind, "runs")
    // scattered ids are held one number each, which is smaller than a run each
    assert.strictEqual(SampleIds.fromIterable([1, 3, 5, 7, 9, 10]).kind, "dense")
    assert.strictEqual(SampleIds.fromIterable([1, 2, 3, 7, 8, 9, 10]).kind, "runs")
    assert.strictEqual(SampleIds.fromRanges([[1, 1], [3, 1], [5, 1]]).kind, "dense")
  })

  it("read back from ranges in any order as the same set", () => {
    const expected = SampleIds.fromIterable([0, 1, 2, 7, 8, 20])
    assert.deepStrictEqual(all(SampleIds.fromRanges([[7, 2], [0, 3], [20, 1]])), [0, 1, 2, 7, 8, 20])
    assert.isTrue(Equal.equals(SampleIds.fromRanges([[20, 1], [0, 3], [7, 2]]), expected))
    assert.deepStrictEqual(all(SampleIds.fromRanges([[0, 3], [2, 3]])), [0, 1, 2, 3, 4])
    assert.strictEqual(SampleIds.fromRanges([]).length, 0)
    assert.strictEqual(SampleIds.upperBound(SampleIds.empty), 0)
  })

  it("are equal, and hash alike, when they hold the same ids, however they were built", () => {
    const runs = SampleIds.range(10, 5)
    const listed = SampleIds.fromIterable([14, 13, 12, 11, 10])
    assert.isTrue(Equal.equals(runs, listed))
    assert.strictEqual(Hash.hash(runs), Hash.hash(listed))
    assert.isFalse(Equal.equals(runs, SampleIds.range(10, 6)))
    assert.isFalse(Equal.equals(runs, SampleIds.fromIterable([10, 11, 12, 13, 15])))
    assert.isFalse(Equal.equals(SampleIds.fromIterable([1, 3, 5]), SampleIds.fromIterable([1, 3, 6])))
    // runs against runs, whatever built them, and a single id held either way
    assert.isTrue(
      Equal.equals(
        SampleIds.fromRanges([[0, 3], [3, 2], [9, 4]]),
        SampleIds.fromIterable([0, 1, 2, 3, 4, 9, 10, 11, 12])
      )
    )
    assert.isFalse(Equal.equals(SampleIds.fromRanges([[0, 5], [9, 4]]), SampleIds.fromRanges([[0, 5], [10, 4]])))
    assert.isFalse(Equal.equals(SampleIds.fromRanges([[0, 5], [9, 4]]), SampleIds.fromRanges([[0, 4], [9, 5]])))
    assert.isFalse(Equal.equals(runs, SampleIds.range(11, 5)))
    assert.isTrue(Equal.equals(SampleIds.range(5, 1), SampleIds.fromIterable([5])))
    assert.isTrue(
      Equal.equals(SampleIds.range(0, 10_000_000), SampleIds.fromRanges([[0, 4_000_000], [4_000_000, 6_000_000]]))
    )
    // two equal sets stay deeply equal after one of them was read
    const read = SampleIds.fromIterable([0, 1, 2, 50, 51, 52])
    read.at(4)
    assert.deepStrictEqual(read, SampleIds.fromIterable([0, 1, 2, 50, 51, 52]))
  })

  it("are an array of integers in JSON and on the wire", () => {
    const ids = SampleIds.fromIterable([3, 1, 2, 40])
    assert.strictEqual(JSON.stringify({ ids }), `{"ids":[1,2,3,40]}`)
    assert.deepStrictEqual(Schema.encodeSync(Model.SampleIdsFromArray)(ids), [1, 2, 3, 40])
    const decoded = Schema.decodeUnknownSync(Model.SampleIdsFromArray)([40, 3, 1, 2])
    assert.isTrue(Equal.equals(decoded, ids))
    assert.throws(() => Schema.decodeUnknownSync(Model.SampleIdsFromArray)([1.5]))
    assert.strictEqual(String(SampleIds.range(0, 1000)), "SampleIds(1000: 0..999)")
  })
})
