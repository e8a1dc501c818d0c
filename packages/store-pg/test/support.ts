/**
 * PostgreSQL for the tests: the server at `HOLDOUT_TEST_PG_URL` (set by CI, or by the global setup,
 * which starts a throwaway cluster when PostgreSQL is installed), and a database of its own for each
 * use, dropped afterwards, so that test files run side by side.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import { execFileSync } from "node:child_process"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

/** The server's URL; no server is a failure saying how to get one (the tests never skip silently). */
export const serverUrl: Effect.Effect<string> = Effect.suspend(() => {
  const url = process.env["HOLDOUT_TEST_PG_URL"]
  if (url !== undefined && url !== "") return Effect.succeed(url)
  const why = process.env["HOLDOUT_TEST_PG_START_ERROR"]
  return Effect.dieMessage(
    `No PostgreSQL for the tests${
      why === undefined ? "" : ` (starting one failed: ${why})`
    }: set HOLDOUT_TEST_PG_URL to a server's URL, or install PostgreSQL (apt-get install postgresql) so that the tests start one.`
  )
})

/** `url` with another database. */
export const withDatabase = (url: string, database: string): string => {
  const parsed = new URL(url)
  parsed.pathname = `/${database}`
  return parsed.toString()
}

const admin = (url: string) => PgClient.layer({ url: Redacted.make(url), maxConnections: 1 })

let counter = 0

/** A new empty database on the test server, dropped with the scope; its URL. */
export const freshDatabase = (prefix: string): Effect.Effect<string, never, Scope.Scope> =>
  Effect.gen(function*() {
    const url = yield* serverUrl
    const name = `${prefix}_${process.pid}_${++counter}_${Math.random().toString(36).slice(2, 8)}`.toLowerCase()
      .replace(/[^a-z0-9_]/g, "_")
    const run = (statement: string) =>
      Effect.scoped(Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(statement))).pipe(
        Effect.provide(admin(url)),
        Effect.orDie
      )
    yield* Effect.acquireRelease(
      run(`CREATE DATABASE "${name}"`),
      () => run(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
    )
    return withDatabase(url, name)
  })

const clusterScript = fileURLToPath(new URL("../../../scripts/pg-cluster.sh", import.meta.url))

const cluster = (...args: ReadonlyArray<string>) =>
  Effect.try({
    try: () => execFileSync(clusterScript, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim(),
    catch: (error) =>
      new Error(
        `scripts/pg-cluster.sh ${args[0]} failed (${
          String(error).split("\n")[0]
        }): install PostgreSQL (apt-get install postgresql) to run this test.`
      )
  }).pipe(Effect.orDie)

/**
 * A cluster of the test's own (for a test that stops and starts its server), removed with the
 * scope: its URL, and its server's `stop` (keeping its data) and `start` (on the same port).
 */
export const ownCluster = Effect.gen(function*() {
  const dir = yield* Effect.acquireRelease(
    Effect.sync(() => mkdtempSync(join(tmpdir(), "holdout-pg-own-"))),
    (dir) => Effect.ignore(cluster("stop", dir))
  )
  const url = yield* cluster("start", dir)
  return {
    url,
    stop: Effect.asVoid(cluster("stop", dir, "--keep")),
    start: Effect.asVoid(cluster("start", dir))
  }
})
