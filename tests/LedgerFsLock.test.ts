import * as NodeContext from "@effect/platform-node/NodeContext"
import * as FileSystem from "@effect/platform/FileSystem"
import { assert, describe, it } from "@effect/vitest"
import { Ledger } from "@holdout/core"
import { LedgerFs } from "@holdout/store-fs"
import { expectFailure } from "@holdout/testkit"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

const holder = fileURLToPath(new URL("./crash/hold.ts", import.meta.url))
const root = fileURLToPath(new URL("..", import.meta.url))

/** Starts a process that holds the ledger at `path`; resolves once it holds it. */
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

const open = (path: string) =>
  Effect.scoped(
    Effect.flatMap(Ledger.Ledger, (ledger) =>
      ledger.reserve({ datasetId: "ds", split: "train", samples: 1, runId: "r", reservationId: "r" })).pipe(
        Effect.provide(
          LedgerFs.layer({ path, budgets: [{ datasetId: "ds", split: "train", runs: 5 }] }).pipe(
            Layer.provide(NodeContext.layer)
          )
        )
      )
  )

describe("LedgerFs lock across processes", () => {
  it.effect(
    "a second process gets LedgerLocked; the lock of a killed process is taken over",
    () =>
      Effect.scoped(
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          const dir = yield* fs.makeTempDirectoryScoped()
          const path = `${dir}/ledger.jsonl`
          const child = yield* startHolder(path)
          const error = yield* expectFailure(open(path))
          assert.strictEqual(error._tag, "LedgerLocked")
          assert.isTrue(yield* fs.exists(`${path}.lock`))
          yield* killed(child)
          // the dead holder's lock is still on disk, and is taken over
          assert.isTrue(yield* fs.exists(`${path}.lock`))
          const reservation = yield* open(path)
          assert.strictEqual(reservation.id, "r")
          assert.isFalse(yield* fs.exists(`${path}.lock`))
        }).pipe(Effect.provide(NodeContext.layer))
      ),
    60_000
  )
})
