/**
 * What the harness tests share: the `holdout` executable run from its sources, stack configurations
 * over the `qa` fixture, a process awaited until it tells its address, and a small in-memory task.
 * Not a test file: vitest collects `*.test.ts` only.
 */
import { type DatasetSource, EvalStrategy, type HoldoutError, LocalStrategy, Task, type TaskStore } from "@holdout/core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

/** The repository's root, where `holdout` runs unless told otherwise. */
export const root = fileURLToPath(new URL("../../..", import.meta.url))

/** The `holdout` executable's source. */
export const bin = fileURLToPath(new URL("../src/bin.ts", import.meta.url))

/** A stack's fixture: a `qa` dataset (`data/`) and the task over it (`task.ts`). */
export const stackFixture = fileURLToPath(new URL("./fixtures/stack", import.meta.url))

/** How a process ended and what it wrote. */
export interface Outcome {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Options of {@link holdout}. */
export interface HoldoutOptions {
  /** Where it runs: the repository's root unless given. */
  readonly cwd?: string
  /** Variables over this process's environment; an `undefined` one is removed. */
  readonly env?: Record<string, string | undefined>
  /** Sees all of stdout so far at each chunk (e.g. to interrupt the process). */
  readonly onStdout?: (text: string, child: ChildProcess) => void
  /** Sees all of stderr so far at each chunk. */
  readonly onStderr?: (text: string, child: ChildProcess) => void
  /** A network namespace to run in (`ip netns exec`, which keeps the process's pid); needs root. */
  readonly namespace?: string
}

/** `command` with `args`, inside `namespace` when one is given. */
const within = (
  namespace: string | undefined,
  command: string,
  args: ReadonlyArray<string>
): readonly [string, ReadonlyArray<string>] =>
  namespace === undefined ? [command, args] : ["ip", ["netns", "exec", namespace, command, ...args]]

/** An environment: `overrides` over this process's, without the variables set to `undefined`. */
export const environment = (overrides: Record<string, string | undefined> = {}): Record<string, string> =>
  Object.fromEntries(
    Object.entries({ ...process.env, ...overrides }).filter((entry): entry is [string, string] =>
      typeof entry[1] === "string"
    )
  )

/** Runs `holdout` on Node, from its sources, to its end; killed if the effect is interrupted. */
export const holdout = (args: ReadonlyArray<string>, options: HoldoutOptions = {}) =>
  Effect.async<Outcome>((resume) => {
    const [command, commandArgs] = within(options.namespace, "node", ["--import", "tsx", bin, ...args])
    const child = spawn(command, commandArgs, {
      cwd: options.cwd ?? root,
      env: environment(options.env),
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk
      options.onStdout?.(stdout, child)
    })
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk
      options.onStderr?.(stderr, child)
    })
    child.on("exit", (code) => resume(Effect.succeed({ code, stdout, stderr })))
    return Effect.sync(() => child.kill("SIGKILL"))
  })

/** A process that told the address it serves on. */
export interface Served {
  readonly child: ChildProcess
  readonly url: string
  /** All it wrote so far, stdout and stderr together. */
  readonly output: () => string
}

/**
 * Waits until `child` writes an address that `pattern` captures (its first group), on stdout or
 * stderr; dies if it exits first (`<what> exited`) or, with `timeout` (ms), if it is silent that long
 * (`<what> did not start`, and it is killed).
 */
export const awaitAddress = (
  child: ChildProcess,
  options: { readonly pattern: RegExp; readonly what: string; readonly timeout?: number }
) =>
  Effect.async<Served>((resume) => {
    let output = ""
    let done = false
    const timer = options.timeout === undefined ? undefined : setTimeout(() => {
      if (!done) {
        done = true
        child.kill("SIGKILL")
        resume(Effect.die(new Error(`${options.what} did not start:\n${output}`)))
      }
    }, options.timeout)
    const onData = (chunk: string) => {
      output += chunk
      const match = options.pattern.exec(output)
      if (match !== null && !done) {
        done = true
        clearTimeout(timer)
        resume(Effect.succeed({ child, url: match[1]!, output: () => output }))
      }
    }
    child.stdout?.setEncoding("utf8").on("data", onData)
    child.stderr?.setEncoding("utf8").on("data", onData)
    child.on("exit", () => {
      if (!done) {
        done = true
        clearTimeout(timer)
        resume(Effect.die(new Error(`${options.what} exited:\n${output}`)))
      }
    })
  })

/** The processes a test started and {@link stopAll} kills, so that none outlives its test. */
const started: Array<ChildProcess> = []

/** Remembers `child` for {@link stopAll}. */
export const track = (child: ChildProcess): ChildProcess => {
  started.push(child)
  return child
}

/** Kills every process {@link track} remembers that still runs. */
export const stopAll = Effect.sync(() => {
  for (const child of started.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
  }
})

/** What `holdout serve` writes once it listens. */
export const sidecarListening = /listening on (http:\/\/[\d.]+:\d+)/

/**
 * Starts `holdout serve` (on Node unless `runtime` is `deno`) and waits until it listens; {@link stopAll}
 * kills it. `timeout` (ms) as for {@link awaitAddress}.
 */
export const serve = (
  args: ReadonlyArray<string>,
  options: {
    readonly cwd?: string
    readonly env?: Record<string, string | undefined>
    readonly runtime?: "node" | "deno"
    readonly timeout?: number
    /** A network namespace to serve from (`ip netns exec`, which keeps the process's pid); needs root. */
    readonly namespace?: string
  } = {}
) =>
  Effect.suspend(() => {
    const [command, prefix] = options.runtime === "deno"
      ? [join(root, "node_modules", ".bin", "deno"), ["run", "-A", "--sloppy-imports", bin]] as const
      : ["node", ["--import", "tsx", bin]] as const
    const [wrapped, wrappedArgs] = within(options.namespace, command, [...prefix, "serve", ...args])
    const child = spawn(wrapped, wrappedArgs, {
      cwd: options.cwd ?? root,
      env: environment(options.env),
      stdio: ["ignore", "pipe", "pipe"]
    })
    return awaitAddress(track(child), {
      pattern: sidecarListening,
      what: "the sidecar",
      ...(options.timeout === undefined ? {} : { timeout: options.timeout })
    })
  })

/** A stack configuration's sources: a SQLite store under `state/`, the fixture's datasets and task. */
export const fixtureSources = (concurrency = 4) =>
  `store: { kind: sqlite, filename: state/holdout.db }
datasets: { kind: jsonl, dir: ${JSON.stringify(join(stackFixture, "data"))} }
strategy: { kind: task, module: ${JSON.stringify(join(stackFixture, "task.ts"))}, concurrency: ${concurrency} }
`

/** {@link fixtureSources} with budgets (5 runs of `train`, `validationRuns` of `validation`) and the policy. */
export const fixtureStack = (validationRuns: number) =>
  `${fixtureSources()}budgets:
  - { datasetId: qa, split: train, runs: 5 }
  - { datasetId: qa, split: validation, runs: ${validationRuns} }
policy: { train: viewable, validation: non_viewable, test: no_access }
`

/** Writes `text` as `holdout.yaml` in a fresh temporary directory (`prefix` names it). */
export const writeConfig = (prefix: string, text: string) => {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  const file = join(dir, "holdout.yaml")
  writeFileSync(file, text)
  return { dir, file }
}

/** A sample of the in-memory datasets: its index, and the answer (twice the index). */
export interface Row {
  readonly index: number
  readonly answer: number
}

/** `count` rows, indexed from 0. */
export const rows = (count: number): ReadonlyArray<Row> =>
  Array.from({ length: count }, (_, index) => ({ index, answer: index * 2 }))

/** Doubles the index; the score misses every fourth sample, so that a mean is neither 0 nor 1. */
export const doubleTask = Task.make<Row, number, "answer">({
  name: "double",
  labelFields: ["answer"],
  infer: (row) => row.index * 2,
  score: (row, stored) => (stored.output === row.answer && row.index % 4 !== 3 ? 1 : 0)
})

/**
 * The local strategy over `doubleTask`, with every plan handed first to `produce`, which may fail,
 * wait or do nothing instead, or pass the plan on to the local strategy (`local.produce(plan)`).
 */
export const aroundLocal = (
  produce: (plan: EvalStrategy.RunPlan, local: EvalStrategy.EvalStrategy["Type"]) => ReturnType<
    EvalStrategy.EvalStrategy["Type"]["produce"]
  >
): Layer.Layer<
  EvalStrategy.EvalStrategy,
  HoldoutError.ConfigError,
  TaskStore.TaskStore | DatasetSource.DatasetSource
> =>
  Layer.effect(
    EvalStrategy.EvalStrategy,
    Effect.map(EvalStrategy.EvalStrategy, (local) => ({ name: local.name, produce: (plan) => produce(plan, local) }))
  ).pipe(Layer.provide(LocalStrategy.layer(doubleTask)))

/**
 * Runs a TypeScript script on Node (`node --import tsx`) from the repository's root to its end, and
 * answers the non-empty lines it printed; an exit code other than 0 fails with `label` and stderr.
 */
export const tsxLines = (script: string, args: ReadonlyArray<string>, label: string) =>
  Effect.async<ReadonlyArray<string>, Error>((resume) => {
    const child = spawn("node", ["--import", "tsx", script, ...args], { cwd: root, stdio: ["ignore", "pipe", "pipe"] })
    let out = ""
    let err = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => out += chunk)
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => err += chunk)
    child.on("exit", (code) => {
      if (code !== 0) return resume(Effect.fail(new Error(`${label} exited with ${code}: ${err}`)))
      resume(Effect.succeed(out.split("\n").filter((line) => line.length > 0)))
    })
  })

/** Runs git in `cwd` as the optimizer (a fixed author), returning its trimmed output. */
export const git = (cwd: string, ...args: Array<string>): string =>
  execFileSync("git", ["-c", "user.name=Optimizer", "-c", "user.email=optimizer@example.com", ...args], {
    cwd,
    encoding: "utf8"
  }).trim()
