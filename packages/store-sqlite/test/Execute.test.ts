import * as NodeContext from "@effect/platform-node/NodeContext"
import * as FileSystem from "@effect/platform/FileSystem"
import { assert, describe, it } from "@effect/vitest"
import { Ledger, TaskStore } from "@holdout/core"
import { SqliteStore } from "@holdout/store-sqlite"
import { makeRun, makeSample } from "@holdout/testkit"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"

const isDeno = "Deno" in globalThis
const budgets = [{ datasetId: "d", split: "train", runs: 10 }]

/**
 * A tracer that records the name of every span made while `on.recording` is set, and makes it as the
 * tracer in use would.
 */
const recording = (names: Array<string>, on: { recording: boolean }) =>
  Effect.map(Effect.tracer, (inner) =>
    Tracer.make({
      span: (name, parent, context, links, startTime, kind, options) => {
        if (on.recording) names.push(name)
        return inner.span(name, parent, context, links, startTime, kind, options)
      },
      context: (f, fiber) => inner.context(f, fiber)
    }))

/** The names of the spans made while a store, once open, is charged, written to and read. */
const spansOfStore = (layer: typeof SqliteStore.layer) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const dir = yield* fs.makeTempDirectoryScoped()
    const names: Array<string> = []
    const on = { recording: false }
    const tracer = yield* recording(names, on)
    yield* Effect.gen(function*() {
      const context = yield* Layer.build(layer({ filename: `${dir}/holdout.db`, budgets }))
      on.recording = true
      const store = Context.get(context, TaskStore.TaskStore)
      const ledger = Context.get(context, Ledger.Ledger)
      yield* ledger.reserve({ datasetId: "d", split: "train", samples: 1, runId: "r", reservationId: "r" })
      yield* store.createRun(makeRun("r", { datasetId: "d", sampleIds: [0], reservationId: "r" }))
      yield* store.putSample(makeSample("r", 0, { datasetId: "d", score: 1 }))
      const [sample] = yield* store.listSamples("r", { limit: 10 })
      assert.strictEqual(sample?.score, 1)
      const run = yield* store.getRun("r")
      assert.deepStrictEqual(Option.map(run, (run) => run.progress?.samples), Option.some(1))
      assert.strictEqual((yield* ledger.get({ datasetId: "d", split: "train" })).spent.runs, 1)
      on.recording = false
    }).pipe(Effect.scoped, Effect.withTracer(tracer))
    return names
  }).pipe(Effect.provide(NodeContext.layer))

describe("how the SQLite stores run their statements", () => {
  // a client's statement costs about a hundred effect steps and a `sql.execute` span
  it.scoped.skipIf(isDeno)(
    "on better-sqlite3, on the connection directly: no statement goes through the client",
    () =>
      Effect.gen(function*() {
        const names = yield* spansOfStore(SqliteStore.layer)
        assert.deepStrictEqual(names.filter((name) => name === "sql.execute"), [])
      })
  )

  it.scoped("on libsql, through the client (whose statements the tracer sees)", () =>
    Effect.gen(function*() {
      const names = yield* spansOfStore(SqliteStore.layerLibsql)
      assert.isAbove(names.filter((name) => name === "sql.execute").length, 5)
    }))
})
