import * as NodeContext from "@effect/platform-node/NodeContext"
import * as FileSystem from "@effect/platform/FileSystem"
import { assert, describe, it } from "@effect/vitest"
import { expectFailure } from "@holdout/testkit"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as DatasetSource from "../src/DatasetSource.js"

/** The files written into a fresh directory, read through the Node file system, counting whole-file reads. */
const jsonlDir = (files: Record<string, string | Uint8Array>) => {
  const streams: Array<string> = []
  const layer = Layer.unwrapScoped(Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const dir = yield* fs.makeTempDirectoryScoped()
    for (const [name, content] of Object.entries(files)) {
      yield* fs.makeDirectory(`${dir}/${name.split("/")[0]}`, { recursive: true })
      yield* typeof content === "string"
        ? fs.writeFileString(`${dir}/${name}`, content)
        : fs.writeFile(`${dir}/${name}`, content)
    }
    const counting = Layer.succeed(FileSystem.FileSystem, {
      ...fs,
      stream: (path, options) => {
        streams.push(path.slice(dir.length + 1))
        return fs.stream(path, options)
      }
    })
    return DatasetSource.layerJsonlDir({ dir }).pipe(Layer.provide(counting))
  })).pipe(Layer.provide(NodeContext.layer))
  return { streams, layer }
}

const source = DatasetSource.DatasetSource

describe("DatasetSource.layerRecords", () => {
  it.effect("gives split sizes, picks rows in the order asked, and names bad ids", () =>
    Effect.gen(function*() {
      const datasets = yield* source
      assert.deepStrictEqual(yield* datasets.info("d"), { datasetId: "d", splits: { a: 3, b: 0 } })
      assert.deepStrictEqual(yield* datasets.rows("d", "a", [2, 0]), ["z", "x"])
      const bad = yield* expectFailure(datasets.rows("d", "a", [1, 3, -1]))
      assert.strictEqual(bad._tag, "InvalidRequest")
      assert.include(bad.message, "3, -1")
      assert.strictEqual((yield* expectFailure(datasets.rows("d", "c", [0])))._tag, "UnknownSplit")
      assert.strictEqual((yield* expectFailure(datasets.info("e")))._tag, "InvalidRequest")
    }).pipe(Effect.provide(DatasetSource.layerRecords({ d: { a: ["x", "y", "z"], b: [] } }))))
})

describe("DatasetSource.layerJsonlDir", () => {
  it.effect("reads <dir>/<dataset>/<split>.jsonl once, skipping blank lines", () => {
    const { layer, streams } = jsonlDir({
      "qa/train.jsonl": "{\"q\":\"a\"}\n\n{\"q\":\"b\"}\r\n  \n{\"q\":\"c\"}",
      "qa/test.jsonl": "{\"q\":\"t\"}\n",
      "qa/notes.txt": "ignored"
    })
    return Effect.gen(function*() {
      const datasets = yield* source
      assert.deepStrictEqual(yield* datasets.info("qa"), { datasetId: "qa", splits: { test: 1, train: 3 } })
      assert.deepStrictEqual(yield* datasets.rows("qa", "train", [2, 0]), [{ q: "c" }, { q: "a" }])
      assert.deepStrictEqual(yield* datasets.rows("qa", "train", [1, 1]), [{ q: "b" }, { q: "b" }])
      assert.deepStrictEqual(streams.filter((path) => path === "qa/train.jsonl").length, 1)
      const bad = yield* expectFailure(datasets.rows("qa", "train", [3]))
      assert.strictEqual(bad._tag, "InvalidRequest")
      const unknownSplit = yield* expectFailure(datasets.rows("qa", "dev", [0]))
      assert.strictEqual(unknownSplit._tag, "UnknownSplit")
      const unknownDataset = yield* expectFailure(datasets.info("nope"))
      assert.strictEqual(unknownDataset._tag, "InvalidRequest")
      assert.include(unknownDataset.message, "qa")
    }).pipe(Effect.provide(layer))
  })

  it.effect("a large file is read in chunks: every row comes back, in any order asked, with multi-byte text", () => {
    const size = 30_000
    const line = (id: number) =>
      JSON.stringify({ id, text: `row ${id} ${"é∑😀".repeat(id % 7)}`, pad: "x".repeat(id % 300) })
    const { layer } = jsonlDir({
      "big/train.jsonl": new TextEncoder().encode(Array.from({ length: size }, (_, id) => line(id)).join("\n") + "\n")
    })
    return Effect.gen(function*() {
      const datasets = yield* source
      assert.deepStrictEqual(yield* datasets.info("big"), { datasetId: "big", splits: { train: size } })
      const all = yield* datasets.rows("big", "train", Array.from({ length: size }, (_, id) => id))
      assert.strictEqual(all.length, size)
      all.forEach((row, id) => assert.deepStrictEqual(row, JSON.parse(line(id))))
      const scattered = [29_999, 3, 15_000, 4, 0, 29_998, 7_777]
      assert.deepStrictEqual(
        yield* datasets.rows("big", "train", scattered),
        scattered.map((id) => JSON.parse(line(id)))
      )
    }).pipe(Effect.provide(layer))
  })

  it.effect("a malformed line is a StoreError naming the file and line", () =>
    Effect.gen(function*() {
      const datasets = yield* source
      const error = yield* expectFailure(datasets.rows("qa", "train", [0]))
      assert.strictEqual(error._tag, "StoreError")
      assert.match(error.message, /qa\/train\.jsonl:2 is not valid JSON/)
    }).pipe(Effect.provide(jsonlDir({ "qa/train.jsonl": "{\"q\":\"a\"}\n{\"q\": oops}\n" }).layer)))
})
