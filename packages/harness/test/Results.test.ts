import * as NodeContext from "@effect/platform-node/NodeContext"
import { assert, describe, it } from "@effect/vitest"
import { Engine, Stack, Task, TaskStore } from "@holdout/core"
import { Results } from "@holdout/harness"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as FileWorker from "../src/internal/fileWorker.js"

const rows = Array.from({ length: 10 }, (_, index) => ({ index, secret: `label-${index}` }))
const task = Task.make<{ readonly index: number; readonly secret: string }, number, "secret">({
  name: "parity",
  labelFields: ["secret"],
  infer: (row) => row.index,
  score: (row) => (row.index % 2 === 0 ? 1 : 0)
})
const stack = Stack.layerMemory({
  datasets: { ds: { train: rows, validation: rows, test: rows } },
  budgets: [{ datasetId: "ds", split: "train", runs: 5 }, { datasetId: "ds", split: "validation", runs: 5 }],
  policy: { train: "viewable", validation: "non_viewable", test: "no_access" },
  task
})

const evaluate = (split: string, admin = false) =>
  Effect.flatMap(
    Engine.Engine,
    (engine) => engine.evaluate({ datasetId: "ds", split, candidate: { id: "c/1" } }, { admin })
  )

describe("Results: the optimizer's results directory, by tier", () => {
  it.effect("viewable: summary and per-sample files; non_viewable: a summary naming no sample; no_access and admin: nothing", () => {
    const dir = mkdtempSync(join(tmpdir(), "holdout-results-"))
    return Effect.gen(function*() {
      const experiment = yield* evaluate("train")
      const viewable = yield* Results.write(dir, experiment)
      assert.isTrue(Option.isSome(viewable))
      const train = Option.getOrThrow(viewable)
      assert.strictEqual(train, join(dir, yield* Results.directoryName(experiment.run)))
      assert.match(train, /\/train__c_1__\d{8}T\d{9}Z__[0-9a-f]{16}$/)
      assert.sameMembers(readdirSync(train), ["summary.json", ...rows.map((row) => `${row.index}.json`)])
      assert.strictEqual(JSON.parse(readFileSync(join(train, "3.json"), "utf8")).score, 0)

      const hidden = Option.getOrThrow(yield* Results.write(dir, yield* evaluate("validation")))
      assert.deepStrictEqual(readdirSync(hidden), ["summary.json"])
      const text = readFileSync(join(hidden, "summary.json"), "utf8")
      const summary = JSON.parse(text)
      assert.strictEqual(summary.metrics.avgFilledScore, 0.5)
      assert.notInclude(text, "sampleId")
      assert.notInclude(text, "label-")
      assert.notInclude(text, "sampleIds")

      // the verifier's runs and no_access splits leave no trace
      assert.isTrue(Option.isNone(yield* Results.write(dir, yield* evaluate("test", true))))
      assert.isTrue(Option.isNone(yield* Results.write(dir, yield* evaluate("train", true))))
      assert.notInclude(readdirSync(dir).join(" "), "test")
    }).pipe(
      Effect.provide(stack),
      Effect.provide(NodeContext.layer),
      Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
    )
  })

  it.effect("every run gets a directory of its own, written once: a repeat of the run returns it and writes nothing; no partial directory stays", () => {
    const dir = mkdtempSync(join(tmpdir(), "holdout-results-"))
    mkdirSync(join(dir, "train__c_1__e7"))
    return Effect.gen(function*() {
      const experiments = yield* Effect.all([evaluate("train"), evaluate("train"), evaluate("train")])
      const written = yield* Effect.forEach(experiments, (experiment) => Results.write(dir, experiment), {
        concurrency: 3
      })
      const paths = written.map(Option.getOrThrow)
      assert.strictEqual(new Set(paths).size, 3)
      assert.sameMembers(readdirSync(dir), ["train__c_1__e7", ...paths.map((path) => path.slice(dir.length + 1))])
      assert.isTrue(existsSync(join(dir, "train__c_1__e7")))

      // the same run again, also many times at once: the same directory, nothing new, nothing rewritten
      const before = readFileSync(join(paths[0]!, "summary.json"), "utf8")
      const again = yield* Effect.forEach(
        Array.from({ length: 20 }, () => experiments[0]!),
        (experiment) => Results.write(dir, experiment),
        { concurrency: 20 }
      )
      assert.deepStrictEqual(again.map(Option.getOrThrow), Array.from({ length: 20 }, () => paths[0]))
      assert.strictEqual(readdirSync(dir).length, 4)
      assert.strictEqual(readFileSync(join(paths[0]!, "summary.json"), "utf8"), before)
      assert.isFalse(readdirSync(dir).some((entry) => entry.startsWith(".")))
    }).pipe(
      Effect.provide(stack),
      Effect.provide(NodeContext.layer),
      Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
    )
  })

  it.effect("a run of several pages is written a page a request and published whole", () => {
    const dir = mkdtempSync(join(tmpdir(), "holdout-results-"))
    // two whole pages of the store's page size: the last request has no sample and publishes
    const many = Array.from({ length: 2 * TaskStore.defaultPageSize }, (_, index) => ({ index, secret: "s" }))
    const requests: Array<readonly [number, boolean, boolean]> = []
    const counting = Layer.succeed(FileWorker.FileWorker, {
      run: (request) => {
        if (request.op === "writeDirectory") requests.push([request.files.length, request.first, request.last])
        return FileWorker.shared.run(request)
      }
    })
    return Effect.gen(function*() {
      const written = Option.getOrThrow(yield* Results.write(dir, yield* evaluate("train")))
      assert.deepStrictEqual(requests, [
        [TaskStore.defaultPageSize + 1, true, false],
        [TaskStore.defaultPageSize, false, false],
        [0, false, true]
      ])
      assert.strictEqual(readdirSync(written).length, many.length + 1)
      assert.deepStrictEqual(readdirSync(dir), [written.slice(dir.length + 1)])
    }).pipe(
      Effect.provide(counting),
      Effect.provide(Stack.layerMemory({
        datasets: { ds: { train: many } },
        budgets: [{ datasetId: "ds", split: "train", runs: 1 }],
        policy: { train: "viewable" },
        task
      })),
      Effect.provide(NodeContext.layer),
      Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
    )
  })

  it.effect("a write that fails removes its partial directory and leaves no directory for the run; a later write succeeds", () => {
    const dir = mkdtempSync(join(tmpdir(), "holdout-results-"))
    let failing = true
    // the process's file writer, except that while `failing` holds, the request that writes sample 3
    // also asks for a file it cannot write (in a directory that is not there): it fails in the writer,
    // after the partial directory was made and other files written
    const flaky = Layer.succeed(FileWorker.FileWorker, {
      run: (request) =>
        FileWorker.shared.run(
          failing && request.op === "writeDirectory" && request.files.some(([name]) => name === "3.json")
            ? { ...request, files: [...request.files, ["missing/x.json", "{}\n"] as const] }
            : request
        )
    })
    return Effect.gen(function*() {
      const experiment = yield* evaluate("train")
      const failed = yield* Effect.flip(Results.write(dir, experiment).pipe(Effect.provide(flaky)))
      assert.strictEqual(failed._tag, "StoreError")
      assert.deepStrictEqual(readdirSync(dir), [])
      failing = false
      const written = Option.getOrThrow(yield* Results.write(dir, experiment).pipe(Effect.provide(flaky)))
      assert.deepStrictEqual(readdirSync(dir), [written.slice(dir.length + 1)])
      assert.strictEqual(readdirSync(written).length, rows.length + 1)
    }).pipe(
      Effect.provide(stack),
      Effect.provide(NodeContext.layer),
      Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
    )
  })
})
