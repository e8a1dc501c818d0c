import { assert, describe, it } from "@effect/vitest"
import * as PlanStatus from "../src/internal/planStatus.js"

const all = (ids: PlanStatus.SortedIds): Array<number> =>
  Array.from({ length: ids.length }, (_, index) => ids.at(index))

describe("a plan's sorted ids", () => {
  it("keep the ids ascending and each once, whatever order and repeats the plan has", () => {
    assert.deepStrictEqual(all(PlanStatus.sortedIds([5, 1, 3, 1, 2, 5, 9])), [1, 2, 3, 5, 9])
    assert.deepStrictEqual(all(PlanStatus.sortedIds([0, 1, 2, 10, 11, 12, 13, 40])), [0, 1, 2, 10, 11, 12, 13, 40])
    assert.deepStrictEqual(all(PlanStatus.sortedIds([3, 7, 20, 100])), [3, 7, 20, 100])
    assert.deepStrictEqual(all(PlanStatus.sortedIds([])), [])
  })

  it("read by position in any order, as well as in order", () => {
    // runs of consecutive ids: 0..999, 5000..5499, 9000
    const plan = [
      ...Array.from({ length: 500 }, (_, index) => 5000 + index),
      9000,
      ...Array.from({ length: 1000 }, (_, index) => 999 - index)
    ]
    const ids = PlanStatus.sortedIds(plan)
    const expected = [...plan].sort((a, b) => a - b)
    assert.strictEqual(ids.length, expected.length)
    for (const position of [1500, 0, 1000, 999, 1499, 1, 1250, 1500, 3]) {
      assert.strictEqual(ids.at(position), expected[position], `the id at ${position}`)
    }
    assert.deepStrictEqual(all(ids), expected)
  })

  it("cost a few numbers for a whole split, not one a sample", () => {
    // a whole split of ten million ids is one run: the structure holds no per-id array
    const size = 10_000_000
    const ids = PlanStatus.sortedIds(Array.from({ length: size }, (_, index) => index))
    assert.strictEqual(ids.length, size)
    assert.strictEqual(ids.at(size - 1), size - 1)
    assert.strictEqual(ids.at(1234567), 1234567)
    assert.strictEqual(ids.kind, "runs")
    // scattered ids are held one number each, which is smaller than a run each
    assert.strictEqual(PlanStatus.sortedIds([1, 3, 5, 7, 9, 10]).kind, "dense")
    assert.strictEqual(PlanStatus.sortedIds([1, 2, 3, 7, 8, 9, 10]).kind, "runs")
  })
})
