/**
 * Test support: Harbor task directories for the fake `harbor` executable, and a stack around the
 * Harbor strategy.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { type EvalStrategy, type HoldoutError, TaskStore, Workspace } from "@holdout/core"
import { type HarborConfig, HarborDataset, HarborStrategy } from "@holdout/strategy-harbor"
import type * as Duration from "effect/Duration"
import * as Layer from "effect/Layer"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

export const fakeHarbor = fileURLToPath(new URL("../testing/fake-harbor.mjs", import.meta.url))

/** The agent logs an attempt leaves in its trial's `agent/` (see testing/fake-harbor.mjs). */
export interface FakeLogs {
  readonly pane?: string
  readonly trajectory?: string
  /** `agent/terminus_2.pane` is a symbolic link to this path. */
  readonly paneLink?: string
  /** `agent/` is a symbolic link to this directory. */
  readonly agentLink?: string
}

/** What one attempt of a fake task yields (see testing/fake-harbor.mjs). */
export type FakeAttempt =
  & FakeLogs
  & (
    | { readonly rewards: Record<string, number>; readonly exception?: string; readonly message?: string }
    | { readonly rewardTxt: string }
    | { readonly exception: string; readonly message?: string }
    | { readonly noResult: true }
  )

export interface FakeTask {
  /** The task directory's name (what `-i` matches). */
  readonly dir: string
  /** `[task].name` in task.toml (what results are keyed by), when the task declares one. */
  readonly name?: string
  readonly attempts?: ReadonlyArray<FakeAttempt>
  /** Instead of `attempts`: the attempts of the task's first nested run, of its second, … (the last repeats). */
  readonly rounds?: ReadonlyArray<ReadonlyArray<FakeAttempt>>
}

export interface Fixture {
  readonly root: string
  readonly tasksDir: string
  readonly candidateDir: string
  readonly strategyDir: string
  readonly stateDir: string
  readonly logFile: string
}

/** The paths of a fixture made under `root`. */
export const fixtureAt = (root: string): Fixture => ({
  root,
  tasksDir: join(root, "tasks"),
  candidateDir: join(root, "candidate"),
  strategyDir: join(root, "holdout"),
  stateDir: join(root, "state"),
  logFile: join(root, "invocations.jsonl")
})

const created: Array<string> = []

/** Removes every fixture made in this process. */
export const removeFixtures = (): void => {
  for (const root of created.splice(0)) rmSync(root, { recursive: true, force: true })
}

export const makeFixture = (tasks: ReadonlyArray<FakeTask>): Fixture => {
  const fixture = fixtureAt(mkdtempSync(join(tmpdir(), "holdout-harbor-")))
  created.push(fixture.root)
  for (const dir of [fixture.tasksDir, fixture.candidateDir, fixture.stateDir]) mkdirSync(dir, { recursive: true })
  for (const task of tasks) {
    const dir = join(fixture.tasksDir, task.dir)
    mkdirSync(dir)
    const header = task.name === undefined ? "" : `[task]\nname = "${task.name}"\n\n`
    writeFileSync(join(dir, "task.toml"), `${header}[agent]\ntimeout_sec = 600\n`)
    writeFileSync(join(dir, "instruction.md"), `Solve ${task.dir}.\n`)
    if (task.attempts !== undefined || task.rounds !== undefined) {
      writeFileSync(join(dir, "fake.json"), JSON.stringify({ attempts: task.attempts, rounds: task.rounds }))
    }
  }
  return fixture
}

export interface Invocation {
  readonly argv: ReadonlyArray<string>
  readonly cwd: string
  readonly pid: number
  /** The path the fake harbor was started as. */
  readonly script: string
}

export const invocations = (fixture: Fixture): ReadonlyArray<Invocation> => {
  let text = ""
  try {
    text = readFileSync(fixture.logFile, "utf8")
  } catch {
    return []
  }
  return text.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line) as Invocation)
}

/** The `-i` values of an invocation. */
export const includes = (invocation: Invocation): ReadonlyArray<string> =>
  invocation.argv.flatMap((arg, index) => arg === "-i" ? [invocation.argv[index + 1]!] : [])

export const datasetId = "tb"

export interface StackOptions {
  readonly partition: HarborDataset.Partition
  readonly config?: Partial<HarborConfig.Input>
  /** Test-only flags for the fake harbor, after `--fake-log`. */
  readonly fake?: ReadonlyArray<string>
  readonly store?: Layer.Layer<TaskStore.TaskStore, HoldoutError.StoreError>
  readonly killGrace?: Duration.DurationInput
  readonly progressInterval?: Duration.DurationInput
}

/** The Harbor strategy over the fixture's tasks, with the fake harbor as its launcher. */
export const stack = (
  fixture: Fixture,
  options: StackOptions
): Layer.Layer<EvalStrategy.EvalStrategy | TaskStore.TaskStore, HoldoutError.ConfigError | HoldoutError.StoreError> => {
  const strategy = HarborStrategy.layer({
    config: {
      taskSource: fixture.tasksDir,
      agent: "candidate.agent:Agent",
      launcher: [fakeHarbor],
      ...options.config,
      extraArgs: [...(options.config?.extraArgs ?? []), "--fake-log", fixture.logFile, ...(options.fake ?? [])]
    },
    dir: fixture.strategyDir,
    killGrace: options.killGrace ?? "1 second",
    ...(options.progressInterval === undefined ? {} : { progressInterval: options.progressInterval })
  })
  return strategy.pipe(
    Layer.provideMerge(options.store ?? TaskStore.layerMemory),
    Layer.provide(HarborDataset.layer({ datasetId, partition: options.partition })),
    Layer.provide(Workspace.layerStatic(fixture.candidateDir)),
    Layer.provide(NodeContext.layer)
  )
}

/** Whether a process has ended (a zombie nobody reaped counts as ended). */
export const isGone = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
  } catch {
    return true
  }
  try {
    return /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"))
  } catch {
    return true
  }
}
