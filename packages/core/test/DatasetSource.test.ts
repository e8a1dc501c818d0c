import { SystemError } from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { assert, describe, it } from "@effect/vitest"
import { expectFailure } from "@holdout/testkit"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as DatasetSource from "../src/DatasetSource.js"

/** A read-only file system over a map of paths to contents; directories are implied. */
const memoryFs = (files: Record<string, string>) => {
  const reads: Array<string> = []
  const isDir = (path: string) => Object.keys(files).some((file) => file.startsWith(`${path}/`))
  const notFound = (method: string, path: string) =>
    new SystemError({ reason: "NotFound", module: "FileSystem", method, pathOrDescriptor: path })
  const layer = FileSystem.layerNoop({
    readDirectory: (path) =>
      isDir(path)
        ? Effect.succeed([
          ...new Set(
            Object.keys(files).filter((file) => file.startsWith(`${path}/`)).map((file) =>
              file.slice(path.length + 1).split("/")[0]!
            )
          )
        ])
        : Effect.fail(notFound("readDirectory", path)),
    stat: (path) =>
      path in files || isDir(path)
        ? Effect.succeed({ type: isDir(path) ? "Directory" : "File" } as FileSystem.File.Info)
        : Effect.fail(notFound("stat", path)),
    readFileString: (path) => {
      reads.push(path)
      const content = files[path]
      return content === undefined ? Effect.fail(notFound("readFileString", path)) : Effect.succeed(content)
    }
  })
  return {
    reads,
    layer: DatasetSource.layerJsonlDir({ dir: "/data" }).pipe(Layer.provide(Layer.merge(layer, Path.layer)))
  }
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
    const { layer, reads } = memoryFs({
      "/data/qa/train.jsonl": "{\"q\":\"a\"}\n\n{\"q\":\"b\"}\n{\"q\":\"c\"}\n",
      "/data/qa/test.jsonl": "{\"q\":\"t\"}\n",
      "/data/qa/notes.txt": "ignored"
    })
    return Effect.gen(function*() {
      const datasets = yield* source
      assert.deepStrictEqual(yield* datasets.info("qa"), { datasetId: "qa", splits: { test: 1, train: 3 } })
      assert.deepStrictEqual(yield* datasets.rows("qa", "train", [2, 0]), [{ q: "c" }, { q: "a" }])
      yield* datasets.rows("qa", "train", [1])
      assert.strictEqual(reads.filter((path) => path === "/data/qa/train.jsonl").length, 1)
      const unknownSplit = yield* expectFailure(datasets.rows("qa", "dev", [0]))
      assert.strictEqual(unknownSplit._tag, "UnknownSplit")
      const unknownDataset = yield* expectFailure(datasets.info("nope"))
      assert.strictEqual(unknownDataset._tag, "InvalidRequest")
      assert.include(unknownDataset.message, "qa")
    }).pipe(Effect.provide(layer))
  })

  it.effect("a malformed line is a StoreError naming the file and line", () =>
    Effect.gen(function*() {
      const datasets = yield* source
      const error = yield* expectFailure(datasets.rows("qa", "train", [0]))
      assert.strictEqual(error._tag, "StoreError")
      assert.include(error.message, "/data/qa/train.jsonl:2")
    }).pipe(Effect.provide(memoryFs({ "/data/qa/train.jsonl": "{\"q\":\"a\"}\n{\"q\": oops}\n" }).layer)))
})
