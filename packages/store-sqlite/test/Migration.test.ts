import * as NodeContext from "@effect/platform-node/NodeContext"
import * as FileSystem from "@effect/platform/FileSystem"
import * as LibsqlClient from "@effect/sql-libsql/LibsqlClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { Metrics, SampleIds, TaskStore } from "@holdout/core"
import { SqliteStore } from "@holdout/store-sqlite"
import { makeRun, makeSample } from "@holdout/testkit"
import { createClient } from "@libsql/client/node"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

// A store written before runs kept their progress: the samples are there, the columns are not.
describe("store-sqlite migrations", () => {
  it.scoped("a store from before progress was kept gets each run's progress from its samples", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const filename = `${yield* fs.makeTempDirectoryScoped()}/old.db`
      const samples = [
        makeSample("r1", 0, { score: 1 }),
        makeSample("r1", 1, { error: "boom" }),
        makeSample("r1", 2, { score: 0.5, evalError: "judge down" }),
        makeSample("r1", 3, { score: 0.25 }),
        makeSample("r1", 4)
      ]
      const store = Layer.provide(SqliteStore.layerLibsql({ filename, budgets: [] }), NodeContext.layer)
      yield* Effect.scoped(Effect.gen(function*() {
        const tasks = yield* TaskStore.TaskStore
        yield* tasks.createRun(makeRun("r1", { sampleIds: [0, 1, 2, 3, 4] }))
        for (const sample of samples) yield* tasks.putSample(sample)
      })).pipe(Effect.provide(store))
      // take the store back to before migration 0004
      const client = Layer.unwrapScoped(Effect.map(
        Effect.acquireRelease(
          Effect.sync(() => createClient({ url: `file:${filename}` })),
          (c) => Effect.sync(() => c.close())
        ),
        (liveClient) => LibsqlClient.layer({ liveClient })
      ))
      yield* Effect.scoped(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        for (const column of ["samples", "errors", "scored", "score_sum", "score_squares"]) {
          yield* sql.unsafe(`ALTER TABLE holdout_runs DROP COLUMN ${column}`)
        }
        for (const column of ["is_error", "score"]) {
          yield* sql.unsafe(`ALTER TABLE holdout_samples DROP COLUMN ${column}`)
        }
        yield* sql.unsafe(`DELETE FROM holdout_migrations WHERE migration_id = 4`)
      })).pipe(Effect.provide(client))

      const run = yield* Effect.scoped(Effect.flatMap(TaskStore.TaskStore, (tasks) => tasks.getRun("r1"))).pipe(
        Effect.provide(store)
      )
      const expected = samples.reduce(
        (progress, sample) => Metrics.addToProgress(progress, sample),
        Metrics.emptyProgress
      )
      assert.deepStrictEqual(Option.getOrThrow(run).progress, expected)
      assert.deepStrictEqual(SampleIds.toArray(Option.getOrThrow(run).sampleIds), [0, 1, 2, 3, 4])
    }).pipe(Effect.provide(NodeContext.layer)))
})
