/**
 * Processes racing for one stale lock: whatever the stale record (a dead pid, a pid reused by a
 * live process, pid 1 restarted in a container), exactly one of them holds the ledger; a live
 * holder's lock is taken by none.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as FileSystem from "@effect/platform/FileSystem"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { type ChildProcess, spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"

const racer = fileURLToPath(new URL("./lock-racer.ts", import.meta.url))
const root = fileURLToPath(new URL("../..", import.meta.url))

interface Racer {
  readonly child: ChildProcess
  /** Resolves with the next line the racer prints. */
  readonly next: () => Promise<string>
  readonly send: (line: string) => void
}

const startRacer = (): Promise<Racer> =>
  new Promise((resolve, reject) => {
    const child = spawn("node", ["--import", "tsx", racer], { cwd: root, stdio: ["pipe", "pipe", "pipe"] })
    const lines: Array<string> = []
    const waiting: Array<(line: string) => void> = []
    let buffer = ""
    let stderr = ""
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => stderr += chunk)
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      buffer += chunk
      let end: number
      while ((end = buffer.indexOf("\n")) !== -1) {
        const line = buffer.slice(0, end)
        buffer = buffer.slice(end + 1)
        // the racers' log lines (a takeover is logged) are not answers
        if (line.startsWith("timestamp=")) continue
        const waiter = waiting.shift()
        if (waiter === undefined) lines.push(line)
        else waiter(line)
      }
    })
    child.on("exit", (code) => reject(new Error(`a racer exited (${code}): ${stderr}`)))
    const next = () =>
      new Promise<string>((resume) => {
        const line = lines.shift()
        if (line === undefined) waiting.push(resume)
        else resume(line)
      })
    const send = (line: string) => child.stdin!.write(`${line}\n`)
    next().then((line) => line === "ready" ? resolve({ child, next, send }) : reject(new Error(line)))
  })

/** Fields 3 (state) and 22 (start time) of /proc/<pid>/stat. */
const startTime = (pid: number | "self"): string => {
  const text = readFileSync(`/proc/${pid}/stat`, "utf8")
  return text.slice(text.lastIndexOf(")") + 1).trim().split(/\s+/)[19]!
}

type Kind = "dead pid" | "reused pid" | "pid 1 restarted" | "live holder"
const kinds: ReadonlyArray<Kind> = ["dead pid", "reused pid", "pid 1 restarted", "live holder"]
const hasProc = (() => {
  try {
    startTime("self")
    return true
  } catch {
    return false
  }
})()

describe("lock takeover races", () => {
  it.effect.skipIf(!hasProc)(
    "50 trials of 2-4 processes racing for one stale lock: never two holders",
    () =>
      Effect.scoped(
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          const racers = yield* Effect.acquireRelease(
            Effect.promise(() => Promise.all([startRacer(), startRacer(), startRacer(), startRacer()])),
            (started) => Effect.sync(() => started.forEach((one) => one.child.kill("SIGKILL")))
          )
          const self = { pid: process.pid, start: startTime("self") }
          const tallies = new Map<Kind, number>()
          for (let trial = 0; trial < 50; trial++) {
            const kind = kinds[trial % kinds.length]!
            const dir = yield* fs.makeTempDirectoryScoped()
            const racing = racers.slice(0, 2 + (trial % 3))
            const record = kind === "dead pid"
              ? { pid: 4_194_304 + 1000 + trial, start: "12345", token: `dead-${trial}` }
              : kind === "reused pid"
              // a pid now used by one of the racers, which started later than the recorded holder
              ? { pid: racing[trial % racing.length]!.child.pid, start: "1", token: `reused-${trial}` }
              : kind === "pid 1 restarted"
              ? { pid: 1, start: `${startTime(1)}0`, token: `init-${trial}` }
              : { ...self, token: `live-${trial}` }
            yield* fs.writeFileString(`${dir}/ledger.jsonl.lock`, JSON.stringify(record) + "\n")

            const answers = yield* Effect.promise(() => {
              const replies = racing.map((one) => one.next())
              for (const one of racing) one.send(`go ${dir}`)
              return Promise.all(replies)
            })
            const holders = racing.filter((_, index) => answers[index] !== "locked LedgerLocked")
            assert.notInclude(answers, "double", `trial ${trial} (${kind}): two holders at once: ${answers}`)
            for (const answer of answers) assert.include(["held", "locked LedgerLocked"], answer, `trial ${trial}`)
            assert.strictEqual(holders.length, kind === "live holder" ? 0 : 1, `trial ${trial} (${kind}): ${answers}`)
            const log = (yield* fs.readFileString(`${dir}/holders.log`).pipe(Effect.orElseSucceed(() => ""))).trim()
            assert.strictEqual(log.length === 0 ? 0 : log.split("\n").length, holders.length)
            yield* Effect.promise(() => {
              const released = holders.map((one) => one.next())
              for (const one of holders) one.send("release")
              return Promise.all(released)
            })
            if (kind !== "live holder") assert.isFalse(yield* fs.exists(`${dir}/ledger.jsonl.lock`))
            tallies.set(kind, (tallies.get(kind) ?? 0) + 1)
          }
          assert.strictEqual([...tallies.values()].reduce((sum, count) => sum + count, 0), 50)
        }).pipe(Effect.provide(NodeContext.layer))
      ),
    60_000
  )
})
