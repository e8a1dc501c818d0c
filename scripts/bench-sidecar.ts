/**
 * Sidecar throughput, registered in bench.ts (`npm run bench -- sidecar`):
 *
 * - `sidecar/sqlite/evalPerSec`: `POST /eval` of a 10-sample no-op task on a viewable split (its
 *   results directory written: a summary and a file per sample), over the embedded SQLite store;
 * - `sidecar/statusPerSec`: `GET /status`;
 * - `sidecar/healthPerSec`: `GET /health`, which does nothing: the most requests per second the
 *   sidecar's HTTP stack serves on this machine, the ceiling of `statusPerSec`;
 * - `sidecar/sqlite/evalPerSecNoResults`: the same evaluations from a sidecar without a results
 *   directory, which tells Holdout's own cost apart from the file system's;
 * - `sidecar/fileCreateUsBefore`, `sidecar/fileCreateUs`: what creating one small file costs the file
 *   system the results directory is on, just before the evaluations and after the group's runs
 *   (microseconds per file, the last 500 of 1,500 synchronous writes in a fresh directory next to
 *   it): an evaluation writes eleven files and a directory, so on a slow file system this figure,
 *   not Holdout, bounds `evalPerSec`. The probes' files are left for the group's clean-up, not
 *   removed between the runs.
 * - `sidecar/fsSettleS`: how long the group waited for the file system before the evaluations.
 *
 * The file system's cost of a file moves with what it did lately. On an ext4 without a journal,
 * creating a file passes over every inode of its block group freed in the last minute, or in the last
 * six minutes when the block holding the freed inode is not written back yet (creating files next to
 * it keeps it unwritten). So for up to six minutes after tens of thousands of files were removed near
 * it (this group's own clean-up, in the run before, or a test suite's), a file costs 100 to 300 µs
 * instead of 10 to 25, more the more files are made: a few hundred still come cheap, which is why
 * the probe times the last of many. At 500 evaluations a second, eleven files of 300 µs each and the
 * sidecar's own work take more than the machine's two cores have. So before the evaluations the
 * group waits, probing every 15 seconds for at most 6 minutes, until a file costs less than
 * `settledMicros`; it says so while it waits, reports the wait and the last probe, and then measures
 * whatever the file system is.
 *
 * The sidecar runs in a process of its own (`--sidecar-child <dir>`, as `holdout serve` would); the
 * client keeps 16 keep-alive connections on 127.0.0.1 busy, each sending its next request when the
 * previous one is answered, for a fixed time after a warm-up: `wrk` (one thread) when it is installed
 * (Debian's package `wrk`), else a bounded Node HTTP client, which costs the machine's other core
 * more and so measures less. The table names the client. Any answer but 200 fails the benchmark.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as HttpServer from "@effect/platform/HttpServer"
import { DatasetSource, LocalStrategy, Stack, Task } from "@holdout/core"
import { Sidecar, Verifier } from "@holdout/harness"
import { SqliteStore } from "@holdout/store-sqlite"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { spawn, spawnSync } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { Agent, createServer, request } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"

const connections = 16
const samples = 10
const budgets = [{ datasetId: "bench", split: "train", runs: 100_000_000 }]

/**
 * The sidecar process: serves until it is killed, and prints its address once it listens; it writes
 * no results directory when `results` is false.
 */
const sidecarChild = (dir: string, results: boolean): Effect.Effect<never> => {
  const store = SqliteStore.layer({ filename: join(dir, "holdout.db"), budgets }).pipe(Layer.provide(NodeContext.layer))
  const stack = Stack.layerWith({
    budgets,
    policy: { train: "viewable" },
    ledger: () => store,
    store,
    datasets: DatasetSource.layerRecords({
      bench: { train: Array.from({ length: samples }, (_, id) => ({ id, label: id % 2 })) }
    }),
    strategy: LocalStrategy.layer(
      Task.make({ name: "noop", labelFields: ["label"], infer: () => null, score: () => 1 }),
      { concurrency: 16 }
    )
  })
  const announce = Layer.effectDiscard(
    HttpServer.addressFormattedWith((address) => Console.log(`listening ${address}`))
  )
  const server = Sidecar.layer({
    tokenFile: join(dir, "admin.token"),
    ...(results ? { resultsDir: join(dir, "results") } : {})
  }).pipe(
    Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
    Layer.provide(Verifier.layer({ mode: "submit", targets: [] }).pipe(Layer.provideMerge(stack))),
    Layer.provide(NodeContext.layer)
  )
  return Effect.orDie(Layer.launch(announce.pipe(Layer.provide(server))))
}

/** Requests per second from `connections` keep-alive connections, each one request at a time. */
const measure = (
  url: string,
  method: string,
  body: string | undefined,
  seconds: number
): Promise<number> =>
  new Promise((resolve, reject) => {
    const agent = new Agent({ keepAlive: true, maxSockets: connections })
    const target = new URL(url)
    const deadline = performance.now() + seconds * 1000
    let done = 0
    let active = connections
    let failed = false
    const started = performance.now()
    const finish = () => {
      active--
      if (active > 0) return
      agent.destroy()
      if (!failed) resolve(done / ((performance.now() - started) / 1000))
    }
    const next = () => {
      if (failed || performance.now() >= deadline) return finish()
      const outgoing = request({
        agent,
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method,
        headers: body === undefined ? {} : { "content-type": "application/json", "content-length": body.length }
      }, (response) => {
        const status = response.statusCode
        const chunks: Array<Buffer> = []
        response.on("data", (chunk: Buffer) => chunks.push(chunk))
        response.on("end", () => {
          if (status !== 200) {
            failed = true
            reject(new Error(`${method} ${target.pathname}: ${status} ${Buffer.concat(chunks).toString("utf8")}`))
            return finish()
          }
          done++
          next()
        })
      })
      outgoing.on("error", (error) => {
        failed = true
        reject(error)
        finish()
      })
      outgoing.end(body)
    }
    for (let connection = 0; connection < connections; connection++) next()
  })

/** `wrk` on the path, if any. */
const hasWrk = (): boolean => spawnSync("wrk", ["--version"], { stdio: "ignore" }).error === undefined

/** Requests per second measured by `wrk` (one thread, `connections` connections). */
const measureWrk = (
  url: string,
  method: string,
  body: string | undefined,
  seconds: number,
  dir: string
): Promise<number> =>
  new Promise((resolve, reject) => {
    const lua = join(dir, "request.lua")
    writeFileSync(
      lua,
      `wrk.method = ${JSON.stringify(method)}\n` +
        (body === undefined
          ? ""
          : `wrk.body = ${JSON.stringify(body)}\nwrk.headers["Content-Type"] = "application/json"\n`)
    )
    const child = spawn("wrk", ["-t1", `-c${connections}`, `-d${seconds}s`, "-s", lua, url], {
      stdio: ["ignore", "pipe", "inherit"]
    })
    let output = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => output += chunk)
    child.on("exit", (code) => {
      const rate = /Requests\/sec:\s+([\d.]+)/.exec(output)
      const refused = /Non-2xx or 3xx responses: (\d+)/.exec(output)
      if (code !== 0 || rate === null) return reject(new Error(`wrk ${method} ${url} failed (${code}): ${output}`))
      if (refused !== null) return reject(new Error(`${method} ${url}: ${refused[1]} answers were not 200`))
      resolve(Number(rate[1]))
    })
  })

const script = new URL(import.meta.url).pathname

/**
 * Starts the sidecar process (its dataset `bench`, split `train`: 10 samples, viewable) and waits
 * for its address; `stop` ends it. Also the sidecar of `cli/evalRoundTripMs` (bench-cli.ts).
 */
export const startSidecar = (dir: string, options: { readonly results?: boolean } = {}) =>
  Effect.acquireRelease(
    Effect.async<{ readonly url: string; readonly stop: () => void }, Error>((resume) => {
      const flags = options.results === false ? ["--no-results"] : []
      const child = spawn(process.execPath, [...process.execArgv, script, "--sidecar-child", dir, ...flags], {
        stdio: ["ignore", "pipe", "inherit"]
      })
      let output = ""
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
        output += chunk
        const match = /listening (http:\/\/[\d.]+:\d+)/.exec(output)
        if (match !== null) resume(Effect.succeed({ url: match[1]!, stop: () => child.kill("SIGKILL") }))
      })
      child.on("exit", (code) => resume(Effect.fail(new Error(`the sidecar exited (${code}): ${output}`))))
    }),
    (sidecar) => Effect.sync(sidecar.stop)
  )

/** A new directory `name` in `dir`. */
const subdirectory = (dir: string, name: string): string => {
  const made = join(dir, name)
  mkdirSync(made)
  return made
}

/**
 * Microseconds to create one small file in a fresh directory under `dir` (synchronous writes): the
 * last 500 of 1,500 files, since after a removal nearby the first few hundred still come cheap. The
 * files stay (removing them would make the next files dearer, above).
 */
const fileCreateMicros = (dir: string): number => {
  const probe = mkdtempSync(join(dir, "probe-"))
  const files = 1_500
  const timed = 500
  let started = 0
  for (let index = 0; index < files; index++) {
    if (index === files - timed) started = performance.now()
    writeFileSync(join(probe, `${index}.json`), "{}\n")
  }
  return (performance.now() - started) * 1000 / timed
}

/** A file system whose files cost less than this (µs) is not slowed down by an earlier removal. */
const settledMicros = 30

/**
 * Waits until creating a file under `dir` costs less than `settledMicros`, at most `limitSeconds`;
 * returns the seconds waited and the last probe.
 */
const settle = (dir: string, limitSeconds: number) =>
  Effect.gen(function*() {
    const started = performance.now()
    const waited = () => (performance.now() - started) / 1000
    let cost = fileCreateMicros(dir)
    while (cost >= settledMicros && waited() < limitSeconds) {
      yield* Effect.sync(() =>
        process.stderr.write(
          `  a file costs ${Math.round(cost)} µs on the results' file system (a large removal nearby?): ` +
            `waiting for it to settle, ${Math.round(waited())} of at most ${limitSeconds} s…\n`
        )
      )
      yield* Effect.sleep("15 seconds")
      cost = fileCreateMicros(dir)
    }
    return { seconds: waited(), cost }
  })

/**
 * The figures: evaluations and status from one sidecar over a fresh store, evaluations again from a
 * second one without a results directory, and the file system's cost of a file.
 */
export const bench = Effect.suspend(() =>
  Effect.scoped(Effect.gen(function*() {
    const dir = mkdtempSync(join(tmpdir(), "holdout-bench-sidecar-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
    const evalBody = JSON.stringify({ datasetId: "bench", split: "train", candidate: { id: "bench" } })
    const wrk = hasWrk()
    const run = (url: string, path: string, method: string, body: string | undefined, seconds: number) =>
      Effect.tryPromise(() =>
        wrk ? measureWrk(url + path, method, body, seconds, dir) : measure(url + path, method, body, seconds)
      )
    const withResults = subdirectory(dir, "with-results")
    const before = yield* settle(withResults, 360)
    const { evalPerSec, healthPerSec, statusPerSec } = yield* Effect.scoped(Effect.gen(function*() {
      const sidecar = yield* startSidecar(withResults)
      yield* run(sidecar.url, "/eval", "POST", evalBody, 1) // warm-up
      const evalPerSec = yield* run(sidecar.url, "/eval", "POST", evalBody, 4)
      // the results' files reach the disk first: the status is not measured against the kernel's writeback
      yield* Effect.sync(() => spawnSync("sync", { stdio: "ignore" }))
      yield* run(sidecar.url, "/status", "GET", undefined, 1)
      const statusPerSec = yield* run(sidecar.url, "/status", "GET", undefined, 3)
      const healthPerSec = yield* run(sidecar.url, "/health", "GET", undefined, 3)
      return { evalPerSec, statusPerSec, healthPerSec }
    }))
    const noResults = yield* Effect.scoped(Effect.gen(function*() {
      const sidecar = yield* startSidecar(subdirectory(dir, "without-results"), { results: false })
      yield* run(sidecar.url, "/eval", "POST", evalBody, 1) // warm-up
      return yield* run(sidecar.url, "/eval", "POST", evalBody, 4)
    }))
    const fileCreateUs = fileCreateMicros(withResults)
    const client = wrk ? "wrk" : "node client"
    return [
      { name: "sidecar/sqlite/evalPerSec", value: Math.round(evalPerSec), unit: `evals/s (${client})` },
      { name: "sidecar/statusPerSec", value: Math.round(statusPerSec), unit: `requests/s (${client})` },
      { name: "sidecar/healthPerSec", value: Math.round(healthPerSec), unit: `requests/s (${client})` },
      { name: "sidecar/sqlite/evalPerSecNoResults", value: Math.round(noResults), unit: `evals/s (${client})` },
      { name: "sidecar/fsSettleS", value: Math.round(before.seconds * 10) / 10, unit: "s waited for the file system" },
      {
        name: "sidecar/fileCreateUsBefore",
        value: Math.round(before.cost),
        unit: "µs per file (results' file system, before)"
      },
      {
        name: "sidecar/fileCreateUs",
        value: Math.round(fileCreateUs),
        unit: "µs per file (results' file system, after)"
      }
    ]
  })).pipe(Effect.orDie)
)

if (process.argv.includes("--sidecar-child")) {
  NodeRuntime.runMain(
    sidecarChild(process.argv[process.argv.indexOf("--sidecar-child") + 1]!, !process.argv.includes("--no-results"))
      .pipe(
        Effect.provide(Logger.minimumLogLevel(LogLevel.Error))
      )
  )
}
