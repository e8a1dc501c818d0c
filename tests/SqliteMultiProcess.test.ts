import * as NodeContext from "@effect/platform-node/NodeContext"
import * as FileSystem from "@effect/platform/FileSystem"
import * as LibsqlClient from "@effect/sql-libsql/LibsqlClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { Ledger } from "@holdout/core"
import { SqliteStore } from "@holdout/store-sqlite"
import { createClient } from "@libsql/client/node"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { fileURLToPath } from "node:url"
import { tsxLines } from "../packages/harness/test/helpers.js"
import { multiProcessBudgets } from "./crash/stack.js"

const reserver = fileURLToPath(new URL("./crash/reserver.ts", import.meta.url))

/** Runs one reserver process to its end; returns the ids it saw acknowledged, with their samples. */
const runReserver = (filename: string, index: number, mode: "runs" | "samples") =>
  Effect.map(
    tsxLines(reserver, [filename, String(index), mode], `reserver ${index}`),
    (lines) =>
      lines.map((line) => {
        const [id, samples] = line.split(" ")
        return [id!, Number(samples)] as const
      })
  )

// better-sqlite3 only loads under Node; libsql reads the same file in either runtime
const libsql = (filename: string) =>
  Layer.unwrapScoped(Effect.map(
    Effect.acquireRelease(Effect.sync(() => createClient({ url: `file:${filename}` })), (client) =>
      Effect.sync(() => client.close())),
    (liveClient) =>
      LibsqlClient.layer({ liveClient })
  ))

describe.each(["runs", "samples"] as const)("SQLite ledger shared by 4 processes (%s budget)", (mode) => {
  it.effect(
    "exactly the limit is charged, no id twice, and the database is intact",
    () =>
      Effect.scoped(
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          const dir = yield* fs.makeTempDirectoryScoped()
          const filename = `${dir}/shared.db`
          const acknowledged = yield* Effect.all(
            [0, 1, 2, 3].map((index) => runReserver(filename, index, mode)),
            { concurrency: "unbounded" }
          )

          const check = Effect.gen(function*() {
            const ledger = yield* Ledger.Ledger
            const journal = yield* ledger.reservations({ datasetId: "multi", split: mode })
            const ids = journal.map((reservation) => reservation.id)
            assert.strictEqual(new Set(ids).size, ids.length, "a reservation id was charged twice")
            for (const [id] of acknowledged.flat()) assert.include(ids, id, `acknowledged ${id} is missing`)
            const spent = (yield* ledger.get({ datasetId: "multi", split: mode })).spent
            if (mode === "runs") {
              assert.strictEqual(spent.runs, 1000)
            } else {
              assert.isAtMost(spent.samples, 1500)
              assert.isAtLeast(spent.samples, 1498) // refusals only once fewer than 3 remain
            }
            assert.strictEqual(spent.runs, journal.length)
            const sql = yield* SqlClient.SqlClient
            assert.deepStrictEqual(yield* sql`PRAGMA integrity_check`, [{ integrity_check: "ok" }])
          })
          yield* Effect.scoped(check).pipe(
            Effect.provide(
              Layer.merge(
                SqliteStore.layerLibsql({ filename, budgets: multiProcessBudgets }).pipe(
                  Layer.provide(NodeContext.layer)
                ),
                libsql(filename)
              )
            )
          )
        }).pipe(Effect.provide(NodeContext.layer))
      ),
    120_000
  )
})
