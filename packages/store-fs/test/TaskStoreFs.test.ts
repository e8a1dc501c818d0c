import * as NodeContext from "@effect/platform-node/NodeContext"
import * as FileSystem from "@effect/platform/FileSystem"
import { assert, describe, it } from "@effect/vitest"
import { Metrics, TaskStore } from "@holdout/core"
import { TaskStoreFs } from "@holdout/store-fs"
import { expectFailure, makeRun, makeSample, taskStoreConformance } from "@holdout/testkit"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

const tempDir = Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped()).pipe(
  Effect.provide(NodeContext.layer)
)

const openAt = (dir: string) => TaskStoreFs.layer({ dir }).pipe(Layer.provide(NodeContext.layer))

taskStoreConformance("file", {
  makeLocation: Effect.map(tempDir, (dir) => () => openAt(dir)),
  persistent: true
})

const useStore = <A, E>(dir: string, f: (store: TaskStore.TaskStore["Type"]) => Effect.Effect<A, E>) =>
  Effect.scoped(Effect.flatMap(TaskStore.TaskStore, f).pipe(Effect.provide(openAt(dir))))

const withDir = <A, E>(f: (fs: FileSystem.FileSystem, dir: string) => Effect.Effect<A, E>) =>
  Effect.scoped(Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const dir = yield* fs.makeTempDirectoryScoped()
    return yield* f(fs, dir)
  })).pipe(Effect.provide(NodeContext.layer))

describe("TaskStoreFs", () => {
  it.effect("a torn last line is discarded; what was acknowledged is all there", () =>
    withDir((fs, dir) =>
      Effect.gen(function*() {
        yield* useStore(dir, (store) =>
          Effect.gen(function*() {
            yield* store.createRun(makeRun("r1"))
            yield* store.putSample(makeSample("r1", 0, { score: 1 }))
          }))
        const file = `${dir}/${TaskStoreFs.logFile}`
        yield* fs.writeFileString(
          file,
          (yield* fs.readFileString(file)) + "{\"t\":\"sample\",\"sample\":{\"runId\":\"r1\",\"sam"
        )
        yield* useStore(dir, (store) =>
          Effect.gen(function*() {
            assert.deepStrictEqual(yield* store.listSamples("r1", { limit: 1000 }), [makeSample("r1", 0, { score: 1 })])
            yield* store.putSample(makeSample("r1", 1))
          }))
        yield* useStore(dir, (store) =>
          Effect.gen(function*() {
            assert.deepStrictEqual((yield* store.listSamples("r1", { limit: 1000 })).map((sample) => sample.sampleId), [
              0,
              1
            ])
          }))
      })
    ))

  it.effect("a corrupt log refuses to open with a StoreError and is left untouched", () =>
    withDir((fs, dir) =>
      Effect.gen(function*() {
        yield* useStore(dir, (store) => store.createRun(makeRun("r1")))
        const file = `${dir}/${TaskStoreFs.logFile}`
        const damaged = "#garbage#\n" + (yield* fs.readFileString(file))
        yield* fs.writeFileString(file, damaged)
        const error = yield* expectFailure(useStore(dir, () => Effect.void))
        assert.strictEqual(error._tag, "StoreError")
        assert.include(error.message, "line 1")
        assert.strictEqual(yield* fs.readFileString(file), damaged)
      })
    ))

  it.effect("a directory held by this or another live process cannot be opened twice", () =>
    withDir((_fs, dir) =>
      useStore(dir, () =>
        Effect.gen(function*() {
          const error = yield* expectFailure(useStore(dir, () => Effect.void))
          assert.include(error.message, "held by another process")
        }))
    ))

  it.effect("past the threshold the log is rewritten as its live state, and reopens the same", () =>
    withDir((fs, dir) =>
      Effect.gen(function*() {
        const file = `${dir}/${TaskStoreFs.logFile}`
        const open = TaskStoreFs.layer({ dir, compactAfterBytes: 4096 }).pipe(Layer.provide(NodeContext.layer))
        const written = yield* Effect.scoped(
          Effect.gen(function*() {
            const store = yield* TaskStore.TaskStore
            yield* store.createRun(makeRun("r1"))
            for (let round = 0; round < 5; round++) {
              yield* Effect.forEach(
                Array.from({ length: 40 }, (_, id) => id),
                (id) => store.putSample(makeSample("r1", id, { score: round / 10 })),
                { concurrency: 8, discard: true }
              )
              yield* store.updateRun("r1", { finishedAt: round })
            }
            return { samples: yield* store.listSamples("r1", { limit: 1000 }), run: yield* store.getRun("r1") }
          }).pipe(Effect.provide(open))
        )
        const lines = (yield* fs.readFileString(file)).trim().split("\n")
        // 205 writes in all; a rewrite keeps one line a run and a sample, plus what came after it
        assert.isBelow(lines.length, 150)
        assert.isFalse(yield* fs.exists(`${file}.compact`))
        const reopened = yield* useStore(
          dir,
          (store) => Effect.all({ samples: store.listSamples("r1", { limit: 1000 }), run: store.getRun("r1") })
        )
        // the score sums were kept through 200 replacements before, and summed afresh after: equal up to rounding
        const withoutSums = (state: typeof written) => ({
          ...state,
          run: Option.map(
            state.run,
            (run) => ({ ...run, progress: { ...run.progress!, scoreSum: 0, scoreSquares: 0 } })
          )
        })
        assert.deepStrictEqual(withoutSums(reopened), withoutSums(written))
        const sums = (state: typeof written) => Option.getOrThrow(state.run).progress!
        assert.closeTo(sums(reopened).scoreSum, sums(written).scoreSum, 1e-9)
        assert.closeTo(sums(reopened).scoreSquares, sums(written).scoreSquares, 1e-9)
        assert.deepStrictEqual(reopened.samples.map((sample) => sample.score), Array(40).fill(0.4))
      })
    ))

  it.effect("a compaction file left by a crash before its rename is removed on open", () =>
    withDir((fs, dir) =>
      Effect.gen(function*() {
        yield* useStore(dir, (store) => store.createRun(makeRun("r1")))
        const file = `${dir}/${TaskStoreFs.logFile}`
        yield* fs.writeFileString(`${file}.compact`, "{\"t\":\"run\",\"run\":{\"runId\":\"half")
        const runs = yield* useStore(dir, (store) => store.listRuns())
        assert.deepStrictEqual(runs.map((run) => run.runId), ["r1"])
        assert.isFalse(yield* fs.exists(`${file}.compact`))
      })
    ))

  it.effect("run updates replay in order", () =>
    withDir((_fs, dir) =>
      Effect.gen(function*() {
        yield* useStore(dir, (store) =>
          Effect.gen(function*() {
            yield* store.createRun(makeRun("r1"))
            yield* store.updateRun("r1", { status: "failed", finishedAt: 3 })
            yield* store.updateRun("r1", { status: "completed" })
          }))
        const run = yield* useStore(dir, (store) => store.getRun("r1"))
        assert.deepStrictEqual(
          run,
          Option.some({
            ...makeRun("r1"),
            status: "completed" as const,
            finishedAt: 3,
            progress: Metrics.emptyProgress
          })
        )
      })
    ))
})
