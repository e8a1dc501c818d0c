/**
 * Tampering with a store's files: every case that can be detected fails closed with a typed,
 * one-line error instead of opening as a fresh budget.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as FileSystem from "@effect/platform/FileSystem"
import { assert, describe, it } from "@effect/vitest"
import { Ledger, TaskStore } from "@holdout/core"
import { LedgerFs, TaskStoreFs } from "@holdout/store-fs"
import { SqliteStore } from "@holdout/store-sqlite"
import { expectFailure, makeRun } from "@holdout/testkit"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../..", import.meta.url))
const holder = fileURLToPath(new URL("../crash/hold.ts", import.meta.url))
const bin = fileURLToPath(new URL("../../packages/harness/src/bin.ts", import.meta.url))
const fixture = fileURLToPath(new URL("../../packages/harness/test/fixtures/stack", import.meta.url))
const isDeno = "Deno" in globalThis

const key = { datasetId: "ds", split: "train" }
// the budgets of tests/crash/hold.ts
const budgets = [{ ...key, runs: 5 }]

const withDir = <A, E>(f: (fs: FileSystem.FileSystem, dir: string) => Effect.Effect<A, E, FileSystem.FileSystem>) =>
  Effect.scoped(Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const dir = yield* fs.makeTempDirectoryScoped()
    return yield* f(fs, dir)
  })).pipe(Effect.provide(NodeContext.layer))

const useLedger = <A, E, LE>(
  layer: Layer.Layer<Ledger.Ledger, LE>,
  f: (ledger: Ledger.Ledger["Type"]) => Effect.Effect<A, E>
) => Effect.scoped(Effect.flatMap(Ledger.Ledger, f).pipe(Effect.provide(layer)))

const fsLedger = (path: string) => LedgerFs.layer({ path, budgets }).pipe(Layer.provide(NodeContext.layer))

const reserve = (ledger: Ledger.Ledger["Type"], id: string) =>
  ledger.reserve({ ...key, samples: 1, runId: `run-${id}`, reservationId: id })

/** A one-line message that says how to start over. */
const assertOneLine = (message: string) => {
  assert.notInclude(message, "\n")
  assert.isAbove(message.length, 20)
}

/** Starts tests/crash/hold.ts on `path` and resolves once it holds the ledger. */
const startHolder = (path: string) =>
  Effect.async<ChildProcess, Error>((resume) => {
    const child = spawn("node", ["--import", "tsx", holder, path], { cwd: root, stdio: ["ignore", "pipe", "pipe"] })
    let stderr = ""
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => stderr += chunk)
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      if (chunk.includes("ready")) resume(Effect.succeed(child))
    })
    child.on("exit", () => resume(Effect.fail(new Error(`the holder exited: ${stderr}`))))
  })

const killed = (child: ChildProcess) =>
  Effect.async<void>((resume) => {
    child.on("exit", () => resume(Effect.void))
    child.kill("SIGKILL")
  })

describe("tampering with a file store", () => {
  it.effect("a journal truncated to 0 bytes is LedgerCorrupt, and stays so", () =>
    withDir((fs, dir) =>
      Effect.gen(function*() {
        const path = `${dir}/ledger.jsonl`
        yield* useLedger(fsLedger(path), (ledger) => Effect.all([reserve(ledger, "a"), reserve(ledger, "b")]))
        yield* fs.truncate(path, 0)
        for (let attempt = 0; attempt < 2; attempt++) {
          const error = yield* expectFailure(useLedger(fsLedger(path), () => Effect.void))
          assert.strictEqual(error._tag, "LedgerCorrupt")
          assertOneLine(error.message)
          assert.include(error.message, "empty")
        }
        assert.strictEqual((yield* fs.stat(path)).size, FileSystem.Size(0))
      })
    ))

  it.effect("a journal whose first line is not a Holdout journal is LedgerCorrupt", () =>
    withDir((fs, dir) =>
      Effect.gen(function*() {
        const path = `${dir}/ledger.jsonl`
        yield* fs.writeFileString(path, JSON.stringify({ hello: "world" }) + "\n")
        const error = yield* expectFailure(useLedger(fsLedger(path), () => Effect.void))
        assert.strictEqual(error._tag, "LedgerCorrupt")
        assertOneLine(error.message)
      })
    ))

  it.effect("a new journal starts with a header line, so it is never legitimately empty", () =>
    withDir((fs, dir) =>
      Effect.gen(function*() {
        const path = `${dir}/ledger.jsonl`
        yield* useLedger(fsLedger(path), () => Effect.void)
        const first = (yield* fs.readFileString(path)).split("\n")[0]!
        assert.strictEqual(JSON.parse(first).t, "holdout-ledger")
        yield* useLedger(fsLedger(path), (ledger) => reserve(ledger, "a"))
        yield* useLedger(fsLedger(path), (ledger) =>
          Effect.map(ledger.get(key), (snapshot) => assert.strictEqual(snapshot.spent.runs, 1)))
      })
    ))

  it.effect("a journal written before headers existed still opens", () =>
    withDir((fs, dir) =>
      Effect.gen(function*() {
        const path = `${dir}/ledger.jsonl`
        const line = { t: "reservation", id: "old", ...key, samples: 1, runId: "run-old", at: 1 }
        yield* fs.writeFileString(path, JSON.stringify(line) + "\n")
        yield* useLedger(
          fsLedger(path),
          (ledger) => Effect.map(ledger.get(key), (snapshot) => assert.strictEqual(snapshot.spent.runs, 1))
        )
      })
    ))

  it.effect(
    "a journal deleted beside the lock of a killed holder is LedgerCorrupt, and stays so",
    () =>
      withDir((fs, dir) =>
        Effect.gen(function*() {
          const path = `${dir}/ledger.jsonl`
          yield* useLedger(fsLedger(path), (ledger) => reserve(ledger, "a"))
          const child = yield* startHolder(path)
          yield* killed(child)
          assert.isTrue(yield* fs.exists(`${path}.lock`))
          yield* fs.remove(path)
          for (let attempt = 0; attempt < 2; attempt++) {
            const error = yield* expectFailure(useLedger(fsLedger(path), () => Effect.void))
            assert.strictEqual(error._tag, "LedgerCorrupt")
            assertOneLine(error.message)
            assert.include(error.message, "missing")
          }
          assert.isFalse(yield* fs.exists(path))
        })
      ),
    30_000
  )

  it.effect("a killed holder's lock without a journal is a fresh ledger (it died before creating it)", () =>
    withDir((fs, dir) =>
      Effect.gen(function*() {
        const path = `${dir}/ledger.jsonl`
        // the lock of a process that is gone, written before it created the journal
        yield* fs.writeFileString(`${path}.lock`, JSON.stringify({ pid: 999_999_999, token: "dead" }) + "\n")
        yield* useLedger(fsLedger(path), (ledger) => reserve(ledger, "a"))
        assert.isFalse(yield* fs.exists(`${path}.lock`))
      })
    ))

  it.effect("a complete last line without its newline is kept, and the newline completed", () =>
    withDir((fs, dir) =>
      Effect.gen(function*() {
        const path = `${dir}/ledger.jsonl`
        yield* useLedger(fsLedger(path), (ledger) => Effect.all([reserve(ledger, "a"), reserve(ledger, "b")]))
        const text = yield* fs.readFileString(path)
        assert.isTrue(text.endsWith("\n"))
        yield* fs.writeFileString(path, text.slice(0, -1))
        yield* useLedger(fsLedger(path), (ledger) =>
          Effect.gen(function*() {
            assert.deepStrictEqual((yield* ledger.get(key)).spent, { runs: 2, samples: 2 })
            yield* reserve(ledger, "c")
          }))
        assert.isTrue((yield* fs.readFileString(path)).endsWith("\n"))
        yield* useLedger(fsLedger(path), (ledger) =>
          Effect.map(ledger.reservations(), (entries) =>
            assert.deepStrictEqual(
              entries.map((entry) =>
                entry.id
              ),
              ["a", "b", "c"]
            )))
      })
    ))

  it.effect("a task log truncated to 0 bytes refuses to open", () =>
    withDir((fs, dir) =>
      Effect.gen(function*() {
        const open = TaskStoreFs.layer({ dir }).pipe(Layer.provide(NodeContext.layer))
        yield* Effect.scoped(
          Effect.flatMap(TaskStore.TaskStore, (store) => store.createRun(makeRun("r1"))).pipe(
            Effect.provide(open)
          )
        )
        yield* fs.truncate(`${dir}/${TaskStoreFs.logFile}`, 0)
        const error = yield* expectFailure(Effect.scoped(Effect.provide(TaskStore.TaskStore, open)))
        assert.strictEqual(error._tag, "StoreError")
        assertOneLine(error.message)
      })
    ))
})

// better-sqlite3 does not load under Deno; libsql reads and writes the same files
const sqliteClients = [
  ...(isDeno ? [] : [["better-sqlite3", SqliteStore.layer] as const]),
  ["libsql", SqliteStore.layerLibsql] as const
]

for (const [name, open] of sqliteClients) {
  const sqliteLedger = (filename: string) => open({ filename, budgets }).pipe(Layer.provide(NodeContext.layer))

  describe(`tampering with a SQLite store (${name})`, () => {
    it.effect("a database truncated to 0 bytes is LedgerCorrupt", () =>
      withDir((fs, dir) =>
        Effect.gen(function*() {
          const filename = `${dir}/holdout.db`
          yield* useLedger(sqliteLedger(filename), (ledger) => reserve(ledger, "a"))
          // a clean close leaves the main file complete: no write-ahead log to lose
          yield* useLedger(
            sqliteLedger(filename),
            (ledger) => Effect.map(ledger.get(key), (snapshot) => assert.strictEqual(snapshot.spent.runs, 1))
          )
          for (const suffix of ["-wal", "-shm"]) yield* fs.remove(`${filename}${suffix}`).pipe(Effect.ignore)
          yield* fs.truncate(filename, 0)
          const error = yield* expectFailure(useLedger(sqliteLedger(filename), () => Effect.void))
          assert.strictEqual(error._tag, "LedgerCorrupt")
          assertOneLine(error.message)
          assert.strictEqual((yield* fs.stat(filename)).size, FileSystem.Size(0))
        })
      ))

    it.effect("a database with a garbage header is LedgerCorrupt", () =>
      withDir((fs, dir) =>
        Effect.gen(function*() {
          const filename = `${dir}/holdout.db`
          yield* fs.writeFileString(filename, "this is not a database\n".repeat(200))
          const error = yield* expectFailure(useLedger(sqliteLedger(filename), () => Effect.void))
          assert.strictEqual(error._tag, "LedgerCorrupt")
          assertOneLine(error.message)
        })
      ))

    it.effect("a SQLite database of another application is LedgerCorrupt", () =>
      withDir((_fs, dir) =>
        Effect.gen(function*() {
          const filename = `${dir}/other.db`
          // a Holdout store creates its tables; then they are swapped for someone else's
          yield* useLedger(sqliteLedger(filename), () => Effect.void)
          yield* Effect.scoped(Effect.gen(function*() {
            const { createClient } = yield* Effect.promise(() => import("@libsql/client/node"))
            const client = createClient({ url: `file:${filename}` })
            yield* Effect.promise(() =>
              client.executeMultiple(
                "DROP TABLE holdout_reservations; DROP TABLE holdout_migrations; CREATE TABLE customers (id INTEGER);"
              )
            )
            client.close()
          }))
          const error = yield* expectFailure(useLedger(sqliteLedger(filename), () => Effect.void))
          assert.strictEqual(error._tag, "LedgerCorrupt")
          assertOneLine(error.message)
        })
      ))

    it.effect("a missing database is created fresh", () =>
      withDir((_fs, dir) =>
        useLedger(sqliteLedger(`${dir}/new/holdout.db`).pipe(Layer.orDie), (ledger) => reserve(ledger, "a")).pipe(
          Effect.flatMap(() => useLedger(sqliteLedger(`${dir}/new/holdout.db`), (ledger) => ledger.get(key))),
          Effect.map((snapshot) => assert.strictEqual(snapshot.spent.runs, 1))
        )
      ))
  })
}

interface Outcome {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs the holdout CLI on Node; `serve` is stopped after `timeoutMs` if it is still running. */
const holdout = (args: ReadonlyArray<string>, timeoutMs = 20_000) =>
  Effect.async<Outcome>((resume) => {
    const child = spawn("node", ["--import", "tsx", bin, ...args], { cwd: root, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs)
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    child.on("exit", (code) => {
      clearTimeout(timer)
      resume(Effect.succeed({ code, stdout, stderr }))
    })
  })

describe("tampering seen through the CLI", () => {
  it.effect(
    "a SQLite store with a garbage header: serve and run print one error line and exit 1",
    () =>
      withDir((fs, dir) =>
        Effect.gen(function*() {
          const config = `${dir}/holdout.yaml`
          yield* fs.makeDirectory(`${dir}/state`)
          yield* fs.writeFileString(`${dir}/state/holdout.db`, "garbage header, not SQLite\n".repeat(100))
          yield* fs.writeFileString(
            config,
            `store: { kind: sqlite, filename: state/holdout.db }
datasets: { kind: jsonl, dir: ${JSON.stringify(`${fixture}/data`)} }
strategy: { kind: task, module: ${JSON.stringify(`${fixture}/task.ts`)}, concurrency: 2 }
budgets:
  - { datasetId: qa, split: train, runs: 5 }
policy: { train: viewable }
sidecar: { tokenFile: state/admin.token, resultsDir: state/results, port: 0 }
`
          )
          const outcomes = yield* Effect.all([
            holdout(["run", "-c", config, "--dataset", "qa", "--split", "train", "--candidate", "exact"]),
            holdout(["serve", "-c", config])
          ], { concurrency: 2 })
          for (const outcome of outcomes) {
            assert.strictEqual(outcome.code, 1, outcome.stderr)
            // log lines (the CLI logs to stderr) aside, the failure is one line: no trace, no dump
            const lines = outcome.stderr.trim().split("\n").filter((line) => !line.startsWith("timestamp="))
            assert.strictEqual(lines.length, 1, outcome.stderr)
            assert.match(lines[0]!, /^error: LedgerCorrupt: /)
          }
        })
      ),
    60_000
  )
})
