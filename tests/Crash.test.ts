import * as NodeContext from "@effect/platform-node/NodeContext"
import * as FileSystem from "@effect/platform/FileSystem"
import * as LibsqlClient from "@effect/sql-libsql/LibsqlClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { Engine, Ledger, TaskStore } from "@holdout/core"
import { createClient } from "@libsql/client/node"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { databaseFile, datasetId, layer, samplesInRun, smallRunLimit, type StoreKind } from "./crash/stack.js"

const child = fileURLToPath(new URL("./crash/child.ts", import.meta.url))
const root = fileURLToPath(new URL("..", import.meta.url))
const isDeno = "Deno" in globalThis

interface Outcome {
  readonly killed: boolean
  readonly reserved: ReadonlyArray<string>
  readonly samples: ReadonlyArray<readonly [string, number]>
  readonly completed: boolean
  readonly stderr: string
}

/**
 * When the parent kills the child: `delayMs` after it is ready (any moment: before the run exists,
 * during it, or after it completed), or as soon as it has acknowledged `samples` sample records (a
 * moment in the middle of the run, however fast the store is).
 */
type KillAt = { readonly delayMs: number } | { readonly samples: number }

/** Runs the child on `dir` and kills it with SIGKILL at the moment `at` says. */
const runAndKill = (kind: StoreKind, dir: string, runKey: string, at: KillAt) =>
  Effect.async<Outcome>((resume) => {
    const process = spawn("node", ["--import", "tsx", child, kind, dir, runKey], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"]
    })
    let out = ""
    let stderr = ""
    let timer: ReturnType<typeof setTimeout> | undefined
    let samplesSeen = 0
    let scanned = 0
    let killing = false
    process.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      out += chunk
      if ("delayMs" in at) {
        if (timer === undefined && out.includes("ready\n")) {
          timer = setTimeout(() => process.kill("SIGKILL"), at.delayMs)
        }
        return
      }
      // count complete lines only; a run that ends first is killed when it says so
      const end = out.lastIndexOf("\n") + 1
      for (const line of out.slice(scanned, end).split("\n")) {
        if (line.startsWith("sample ")) samplesSeen++
        else if (line.startsWith("done")) samplesSeen = at.samples
      }
      scanned = end
      if (!killing && samplesSeen >= at.samples) {
        killing = true
        process.kill("SIGKILL")
      }
    })
    process.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk
    })
    process.on("exit", (_code, signal) => {
      if (timer !== undefined) clearTimeout(timer)
      // only complete lines were written before the kill
      const lines = out.slice(0, out.lastIndexOf("\n") + 1).split("\n")
      resume(Effect.succeed({
        killed: signal === "SIGKILL",
        reserved: lines.filter((line) => line.startsWith("reserved ")).map((line) => line.slice(9)),
        samples: lines.filter((line) => line.startsWith("sample ")).map((line) => {
          const [, runId, sampleId] = line.split(" ")
          return [runId!, Number(sampleId)] as const
        }),
        completed: lines.some((line) => line.startsWith("completed ")),
        stderr
      }))
    })
  })

/**
 * A SQLite client of `filename` through the library the parent reopens the store with: better-sqlite3
 * under Node, libsql under Deno (better-sqlite3 does not load there). One process must never open a
 * database through two SQLite libraries: each keeps its own POSIX locks and its own view of the WAL
 * index, and closing one drops the other's locks, so a later checkpoint can write stale pages.
 */
const parentClient = (filename: string): Layer.Layer<SqlClient.SqlClient, unknown> =>
  isDeno
    ? Layer.unwrapScoped(Effect.map(
      Effect.acquireRelease(
        Effect.sync(() => createClient({ url: `file:${filename}` })),
        (client) => Effect.sync(() => client.close())
      ),
      (liveClient) => LibsqlClient.layer({ liveClient })
    ))
    : Layer.unwrapEffect(Effect.map(
      Effect.promise(() => import("@effect/sql-sqlite-node/SqliteClient")),
      (SqliteClient) => SqliteClient.layer({ filename })
    ))

/** `PRAGMA integrity_check` of a SQLite database, through the parent's library (`parentClient`). */
const integrity = (filename: string) =>
  Effect.scoped(
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      return yield* sql<{ integrity_check: string }>`PRAGMA integrity_check`
    }).pipe(Effect.provide(parentClient(filename)))
  )

// The child writes with the store's own client; the parent reopens with one that loads in its
// runtime (better-sqlite3 does not load under Deno; libsql reads the same file).
const cases: ReadonlyArray<readonly [string, StoreKind, StoreKind]> = [
  ["file store", "fs", "fs"],
  ["SQLite store", "sqlite", isDeno ? "libsql" : "sqlite"]
]

describe.each(cases)("crash safety: %s", (_name, kind, reopenKind) => {
  it.effect(
    "SIGKILL at random moments loses no acknowledged write, never overspends, and resume completes",
    () =>
      Effect.scoped(
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          const dir = yield* fs.makeTempDirectoryScoped()
          const acknowledged = new Set<string>()
          let kills = 0
          let resumed = 0
          let midRun = 0
          for (let round = 0; round < 22; round++) {
            const runKey = `round-${round}`
            // even rounds: any moment; odd rounds: a random moment in the first half of the run
            const at: KillAt = round % 2 === 0
              ? { delayMs: Math.floor(Math.random() * 600) }
              : { samples: 1 + Math.floor(Math.random() * samplesInRun / 2) }
            const outcome = yield* runAndKill(kind, dir, runKey, at)
            assert.isTrue(outcome.killed, `the child ended on its own: ${outcome.stderr}`)
            kills++
            for (const id of outcome.reserved) acknowledged.add(id)

            // no temp file and no torn line is visible after the crash is repaired by a reopen
            yield* Effect.scoped(
              Effect.gen(function*() {
                const engine = yield* Engine.Engine
                const ledger = yield* Ledger.Ledger
                const store = yield* TaskStore.TaskStore

                const journal = new Set((yield* ledger.reservations()).map((reservation) => reservation.id))
                for (const id of acknowledged) {
                  assert.isTrue(journal.has(id), `acknowledged reservation ${id} is missing`)
                }
                const small = yield* ledger.get({ datasetId, split: "small" })
                assert.isAtMost(small.spent.runs, smallRunLimit)
                assert.strictEqual(small.spent.runs, (yield* ledger.reservations({ datasetId, split: "small" })).length)

                const runId = Engine.runIdForKey(runKey)
                const stored = new Set<number>()
                yield* Stream.runForEach(
                  TaskStore.streamSamples(store, runId),
                  (sample) => Effect.sync(() => stored.add(sample.sampleId))
                )
                const run = yield* store.getRun(runId)
                for (const [sampleRun, sampleId] of outcome.samples) {
                  assert.strictEqual(sampleRun, runId)
                  assert.isTrue(
                    stored.has(sampleId),
                    `acknowledged sample ${sampleId} of ${runId} is missing (${outcome.samples.length} acknowledged, ` +
                      `${stored.size} stored, the run ${run._tag === "Some" ? "is stored" : "is not stored"})`
                  )
                }

                if (run._tag === "Some") {
                  if (!outcome.completed) midRun++
                  const before = yield* ledger.get({ datasetId, split: "train" })
                  const experiment = yield* engine.resume(runId)
                  assert.strictEqual(experiment.run.status, "completed")
                  assert.strictEqual(experiment.metrics.numSamples, samplesInRun)
                  assert.strictEqual(
                    Chunk.size(yield* Stream.runCollect(TaskStore.streamSamples(store, runId))),
                    samplesInRun
                  )
                  assert.deepStrictEqual((yield* ledger.get({ datasetId, split: "train" })).spent, before.spent)
                  resumed++
                }
              }).pipe(Effect.provide(layer(reopenKind, dir)))
            )

            if (kind === "fs") {
              for (const name of yield* fs.readDirectory(dir)) {
                assert.include(["ledger.jsonl", "tasks.jsonl"], name, `unexpected file ${name} after a reopen`)
                const text = yield* fs.readFileString(`${dir}/${name}`)
                assert.isTrue(text.length === 0 || text.endsWith("\n"), `${name} ends with a torn line`)
              }
            } else {
              assert.deepStrictEqual(yield* integrity(databaseFile(dir)), [{ integrity_check: "ok" }])
            }
          }
          assert.isAtLeast(kills, 20)
          assert.isAtLeast(resumed, 10, "too few kills landed after the run was created")
          assert.isAtLeast(midRun, 5, "too few kills landed in the middle of a run")
        }).pipe(Effect.provide(NodeContext.layer))
      ),
    300_000
  )
})
