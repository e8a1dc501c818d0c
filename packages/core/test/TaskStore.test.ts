import { assert, describe, it } from "@effect/vitest"
import { makeRun, makeSample, taskStoreConformance } from "@holdout/testkit"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as SampleIds from "../src/SampleIds.js"
import * as TaskStore from "../src/TaskStore.js"

taskStoreConformance("memory", {
  makeLocation: Effect.succeed(() => TaskStore.layerMemory),
  persistent: false
})

describe("TaskStore.forEachPage", () => {
  const stored = Effect.gen(function*() {
    const store = TaskStore.makeMemory()
    const ids = Array.from({ length: 10 }, (_, index) => index * 2)
    yield* store.createRun(makeRun("r", { sampleIds: ids }))
    for (const id of ids) yield* store.putSample(makeSample("r", id))
    return store
  })

  it.effect("visits every page in order, from after `after`, and stops after the short page", () =>
    Effect.gen(function*() {
      const store = yield* stored
      const pages: Array<Array<number>> = []
      yield* TaskStore.forEachPage(
        store,
        "r",
        (page) => Effect.sync(() => pages.push(page.map((sample) => sample.sampleId))).pipe(Effect.as(true)),
        { after: 3, pageSize: 3 }
      )
      assert.deepStrictEqual(pages, [[4, 6, 8], [10, 12, 14], [16, 18]])
    }))

  it.effect("reads no further page once the visitor answers false", () =>
    Effect.gen(function*() {
      const store = yield* stored
      const pages: Array<Array<number>> = []
      yield* TaskStore.forEachPage(store, "r", (page) =>
        Effect.sync(() => {
          pages.push(page.map((sample) => sample.sampleId))
          return pages.length < 2
        }), { pageSize: 4 })
      assert.deepStrictEqual(pages, [[0, 2, 4, 6], [8, 10, 12, 14]])
    }))

  it.effect("a page of exactly the page size is followed by one more (empty) read; nothing else", () =>
    Effect.gen(function*() {
      const store = yield* stored
      const sizes: Array<number> = []
      yield* TaskStore.forEachPage(
        store,
        "r",
        (page) => Effect.sync(() => sizes.push(page.length)).pipe(Effect.as(true)),
        {
          pageSize: 5
        }
      )
      assert.deepStrictEqual(sizes, [5, 5, 0])
    }))
})

describe("TaskStore.decodeRun", () => {
  it("decodes a text it decoded before to the same record, once; a bad text stays an error", () => {
    const text = TaskStore.encodeRun(makeRun("codec", { sampleIds: [0, 1, 2, 5] }))
    const first = TaskStore.decodeRun(text)
    const again = TaskStore.decodeRun(text)
    assert.isTrue(Either.isRight(first) && Either.isRight(again))
    // the record of the first decoding, not a second decoding of the text
    assert.strictEqual(Either.getOrThrow(again), Either.getOrThrow(first))
    assert.deepStrictEqual(SampleIds.toArray(Either.getOrThrow(again).sampleIds), [0, 1, 2, 5])
    // a text that differs is decoded for itself
    const other = TaskStore.decodeRun(text.replace("\"codec\"", "\"codec-2\""))
    assert.strictEqual(Either.getOrThrow(other).runId, "codec-2")
    const bad = text.replace("\"codec\"", "42")
    assert.isTrue(Either.isLeft(TaskStore.decodeRun(bad)))
    assert.isTrue(Either.isLeft(TaskStore.decodeRun(bad)))
  })
})
