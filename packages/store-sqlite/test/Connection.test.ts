import * as NodeContext from "@effect/platform-node/NodeContext"
import * as FileSystem from "@effect/platform/FileSystem"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { SqliteStore } from "@holdout/store-sqlite"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import { existsSync, readdirSync, readlinkSync } from "node:fs"
import * as Client from "../src/internal/client.js"
import * as Tables from "../src/internal/schema.js"
import * as Transaction from "../src/internal/transaction.js"

// Both drivers are synchronous: a client that waited for SQLite's lock held by another client of the
// same process would block the very thread the holder needs to commit (for busy_timeout, 10 s, then
// fail). Clients of one file in one process take turns on a lock of their own instead.
const isDeno = "Deno" in globalThis
const drivers = [
  ...(isDeno ? [] : [["better-sqlite3", Client.betterSqlite3] as const]),
  ["libsql", Client.libsql] as const
]

/** The stores' client of `filename`, not configured yet. */
const open = (filename: string, driver: typeof Client.libsql) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(Client.layer(filename, driver).pipe(Layer.provide(NodeContext.layer)))
    return Context.get(context, SqlClient.SqlClient)
  })

for (const [name, driver] of drivers) {
  describe(`SQLite clients of one file in one process (${name})`, () => {
    it.scopedLive("a write waits for another client's open transaction without blocking the process", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* fs.makeTempDirectoryScoped()
        const first = yield* open(`${dir}/holdout.db`, driver)
        // the same file by another name: a symbolic link to its directory
        yield* fs.symlink(dir, `${dir}-link`)
        yield* Effect.addFinalizer(() => Effect.ignore(fs.remove(`${dir}-link`)))
        const second = yield* open(`${dir}-link/holdout.db`, driver)
        yield* Effect.orDie(
          Effect.zipRight(Tables.configure, first`CREATE TABLE log (who TEXT)`).pipe(
            Effect.provideService(SqlClient.SqlClient, first)
          )
        )
        yield* Effect.orDie(Tables.configure.pipe(Effect.provideService(SqlClient.SqlClient, second)))

        const inside = yield* Deferred.make<void>()
        const holder = yield* Effect.fork(Transaction.write(
          first,
          "ledger",
          Effect.gen(function*() {
            yield* first`INSERT INTO log VALUES ('first')`
            yield* Deferred.succeed(inside, undefined)
            // the holder needs the event loop to finish its transaction
            yield* Effect.sleep("200 millis")
            yield* first`INSERT INTO log VALUES ('first, later')`
          })
        ))
        yield* Deferred.await(inside)
        const started = Date.now()
        yield* Transaction.write(second, "ledger", second`INSERT INTO log VALUES ('second')`).pipe(
          Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => "the second client waited out SQLite's lock" }),
          Effect.orDie
        )
        yield* Effect.orDie(Fiber.join(holder))
        // SQLite's busy wait would have blocked the thread for its whole timeout, 10 s
        assert.isBelow(Date.now() - started, 5000)
        const rows = yield* Effect.orDie(first<{ readonly who: string }>`SELECT who FROM log ORDER BY rowid`)
        assert.deepStrictEqual(rows.map((row) => row.who), ["first", "first, later", "second"])
      }).pipe(Effect.provide(NodeContext.layer)))
  })
}

for (const [name, driver] of drivers) {
  describe(`a store's SQLite connection (${name})`, () => {
    it.scoped("keeps its settings after the migrations (libsql moves a transaction to a connection of its own)", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const sql = yield* open(`${yield* fs.makeTempDirectoryScoped()}/holdout.db`, driver)
        yield* Effect.orDie(Tables.open.pipe(Effect.provideService(SqlClient.SqlClient, sql)))
        const [busy] = yield* Effect.orDie(sql.unsafe<{ readonly timeout: number }>("PRAGMA busy_timeout"))
        const [sync] = yield* Effect.orDie(sql.unsafe<{ readonly synchronous: number }>("PRAGMA synchronous"))
        assert.strictEqual(Number(busy?.timeout), 10000)
        // FULL: every commit is synced
        assert.strictEqual(Number(sync?.synchronous), 2)
      }).pipe(Effect.provide(NodeContext.layer)))

    it.scoped("leaves no transaction open after a failed commit: the next write goes through", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const sql = yield* open(`${yield* fs.makeTempDirectoryScoped()}/holdout.db`, driver)
        yield* Effect.orDie(Effect.all([
          sql`PRAGMA foreign_keys = ON`,
          sql`CREATE TABLE parent (id INTEGER PRIMARY KEY)`,
          // checked at COMMIT, which then fails and leaves the transaction open
          sql`CREATE TABLE child (parent_id INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)`
        ], { discard: true }))
        const failed = yield* Effect.exit(Transaction.write(sql, "tasks", sql`INSERT INTO child VALUES (1)`))
        assert.isTrue(Exit.isFailure(failed))
        yield* Effect.orDie(Transaction.write(sql, "tasks", sql`INSERT INTO parent VALUES (1)`))
        const rows = yield* Effect.orDie(Effect.all([
          sql<{ readonly n: number }>`SELECT COUNT(*) AS n FROM parent`,
          sql<{ readonly n: number }>`SELECT COUNT(*) AS n FROM child`
        ]))
        assert.deepStrictEqual(rows.map(([row]) => Number(row?.n)), [1, 0])
      }).pipe(Effect.provide(NodeContext.layer)))
  })
}

// Linux lists a process's open files under /proc/self/fd.
const hasProc = existsSync("/proc/self/fd")

/** How many of this process's open files are `filename` (or one of its -wal, -shm files). */
const openFiles = (filename: string) =>
  readdirSync("/proc/self/fd").filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith(filename)
    } catch {
      return false
    }
  }).length

// libsql closes a connection only once its statements are garbage-collected: a closed client may
// hold its database and WAL open a while (two files). The migrator's transaction would leave two
// more connections open on every open (libsql moves a transaction to a connection of its own).
const stores = [
  ...(isDeno ? [] : [["better-sqlite3", SqliteStore.layer, 0] as const]),
  ["libsql", SqliteStore.layerLibsql, 2] as const
]

for (const [name, openStore, heldAfterClose] of stores) {
  describe(`an existing SQLite store (${name})`, () => {
    it.scoped.skipIf(!hasProc)(
      "opened and closed again and again, runs no migration and leaves open no more than the driver holds",
      () =>
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          const filename = `${yield* fs.makeTempDirectoryScoped()}/holdout.db`
          const openAndClose = Effect.scoped(Layer.build(openStore({ filename, budgets: [] })))
          yield* Effect.orDie(openAndClose)
          const before = openFiles(filename)
          const rounds = 3
          for (let round = 0; round < rounds; round++) yield* Effect.orDie(openAndClose)
          assert.isAtMost(openFiles(filename), before + rounds * heldAfterClose)
        }).pipe(Effect.provide(NodeContext.layer))
    )
  })
}
