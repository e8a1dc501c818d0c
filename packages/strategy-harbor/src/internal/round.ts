/**
 * One round of a run: a nested `harbor run` of some of its tasks, in a checkout of its candidate, into
 * a jobs directory. The round's arguments come from `HarborArgs` (with the sidecar's own harbor from
 * `HarborLauncher`, the task source as a local directory or a registry reference, and the verifier's
 * model on an admin run); the process is supervised by `HarborProcess`, which logs progress as trials
 * finish. A round that ends other than by exiting 0 is logged; its trials are still collated, unless
 * it left none at all, or only trials of tasks it was not asked for (a task-name mismatch): scoring
 * every sample 0 would charge the budget for nothing.
 *
 * @internal
 */
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { EvalStrategy, type HoldoutError, type TaskStore, type Workspace } from "@holdout/core"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Collation from "../Collation.js"
import * as HarborArgs from "../HarborArgs.js"
import type * as HarborConfig from "../HarborConfig.js"
import type * as HarborLauncher from "../HarborLauncher.js"
import * as HarborProcess from "../HarborProcess.js"
import type { Pending } from "./records.js"

/** What every round of the strategy is run with. */
export interface Setup {
  readonly config: HarborConfig.HarborConfig
  readonly launcher: HarborLauncher.Launcher
  readonly store: TaskStore.TaskStore["Type"]
  readonly workspace: Workspace.Workspace["Type"]
  readonly killGrace: Duration.Duration
  readonly progressInterval: Duration.Duration
}

/** Where a round goes: its log in `runDir`, its trials in `jobsDir/<jobName>` (default the next `holdout-<n>`). */
export interface Target {
  readonly runDir: string
  readonly jobsDir: string
  readonly jobName?: string | undefined
}

/** A round that ran: where its trials and its output are, and how it ended. */
export interface Round {
  readonly jobDir: string
  readonly logFile: string
  readonly ended: HarborProcess.Ended
  readonly outputTail: string
}

/** Whether a round ended by exiting 0. */
export const exitedCleanly = (ended: HarborProcess.Ended): boolean => ended._tag === "Exited" && ended.code === 0

/** The task source: a local directory (made absolute) when one exists, else a registry reference. */
const taskSource = (fs: FileSystem.FileSystem, path: Path.Path, config: HarborConfig.HarborConfig) =>
  Effect.map(
    fs.exists(config.taskSource).pipe(Effect.orElseSucceed(() => false)),
    (local): HarborArgs.Source =>
      local ? { _tag: "Local", path: path.resolve(config.taskSource) } : { _tag: "Registry", ref: config.taskSource }
  )

/** The next free `holdout-<n>` job name of a jobs directory. */
const nextJobName = (fs: FileSystem.FileSystem, jobsDir: string) =>
  Effect.map(fs.readDirectory(jobsDir).pipe(Effect.orElseSucceed(() => [])), (entries) => {
    let last = 0
    for (const entry of entries) {
      const match = /^holdout-(\d+)$/.exec(entry)
      if (match !== null) last = Math.max(last, Number(match[1]))
    }
    return `holdout-${last + 1}`
  })

/** Trial directories of a job that hold a `result.json` (for progress lines). */
const finishedTrials = (fs: FileSystem.FileSystem, path: Path.Path, jobDir: string) =>
  Effect.gen(function*() {
    const entries = yield* fs.readDirectory(jobDir).pipe(Effect.orElseSucceed(() => []))
    let count = 0
    for (const entry of entries) {
      if (yield* fs.exists(path.join(jobDir, entry, "result.json")).pipe(Effect.orElseSucceed(() => false))) {
        count++
      }
    }
    return count
  })

/**
 * The model of a run's nested runs: the verifier's (`EvalStrategy.modelOverrideKey`, a transfer
 * target's) on an admin run, else the configured one; an optimizer's run never chooses it.
 */
const modelOf = (store: TaskStore.TaskStore["Type"], plan: EvalStrategy.RunPlan) =>
  Effect.map(store.getRun(plan.runId).pipe(Effect.orElseSucceed(() => Option.none())), (run) => {
    const override = plan.candidate.metadata?.[EvalStrategy.modelOverrideKey]
    return Option.isSome(run) && run.value.admin && typeof override === "string" && override !== ""
      ? { model: override }
      : {}
  })

/** Runs a round of `tasks` of a run in a checkout of its candidate (released when the round ends). */
export const run = (
  setup: Setup,
  plan: EvalStrategy.RunPlan,
  tasks: ReadonlyArray<Pending>,
  target: Target
): Effect.Effect<
  Round,
  HoldoutError.StrategyError,
  CommandExecutor.CommandExecutor | FileSystem.FileSystem | Path.Path
> =>
  Effect.scoped(Effect.gen(function*() {
    const candidatePath = yield* setup.workspace.checkout(plan.candidate)
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const { config } = setup
    const jobName = target.jobName ?? (yield* nextJobName(fs, target.jobsDir))
    const jobDir = path.join(target.jobsDir, jobName)
    const logFile = path.join(target.runDir, `${jobName}.log`)
    const args = HarborArgs.runArgs({
      ...config,
      launcher: yield* setup.launcher.forRun(candidatePath),
      ...(yield* modelOf(setup.store, plan))
    }, {
      source: yield* taskSource(fs, path, config),
      candidatePath,
      includes: tasks.map((pending) => pending.task.include),
      jobsDir: target.jobsDir,
      jobName
    })
    const total = tasks.length * config.attempts
    yield* Effect.logInfo(
      `Harbor: running ${tasks.length} task(s) x ${config.attempts} attempt(s) of run ${plan.runId} ` +
        `for candidate ${plan.candidate.id} (job ${jobName}, output in ${logFile})`
    )
    yield* Effect.logDebug(`Harbor command: ${args.map((arg) => JSON.stringify(arg)).join(" ")}`)
    const { ended, outputTail } = yield* HarborProcess.supervise({
      args,
      cwd: candidatePath,
      logFile,
      timeoutSeconds: config.timeoutSeconds,
      killGrace: setup.killGrace,
      progressInterval: setup.progressInterval,
      progress: (elapsed) =>
        Effect.flatMap(
          finishedTrials(fs, path, jobDir),
          (done) => Effect.logInfo(`Harbor job ${jobName}: ${done}/${total} trial(s) finished after ${elapsed} s`)
        )
    })
    if (!exitedCleanly(ended)) {
      yield* Effect.logWarning(
        `Harbor job ${jobName} ${HarborProcess.describeEnd(ended)}; collating the trials that finished.` +
          (outputTail === "" ? "" : `\nLast error output:\n${outputTail.slice(-500)}`)
      )
    }
    return { jobDir, logFile, ended, outputTail }
  }))

/**
 * Why a round's trials cannot be scored, if they cannot: the round (whose job is under `jobDir`, `sep`
 * the platform's path separator) left no trial among `trials`, or only trials of tasks other than `tasks`.
 */
export const refusal = (
  round: Round,
  tasks: ReadonlyArray<Pending>,
  trials: ReadonlyArray<Collation.Trial>,
  sep: string
): Option.Option<string> => {
  const fresh = trials.filter((trial) => trial.file.startsWith(round.jobDir + sep))
  const ending = `The nested run ${HarborProcess.describeEnd(round.ended)}` +
    (round.outputTail === "" ? "" : `; its last error output:\n${round.outputTail.slice(-500)}`)
  if (fresh.length === 0) {
    return Option.some(
      `The nested \`harbor run\` produced no trial results for ${tasks.length} task(s); refusing to score ` +
        `all samples 0. ${ending}\n(full output: ${round.logFile})`
    )
  }
  const wanted = new Set(tasks.map((entry) => entry.task.resultKey))
  if (!fresh.some((trial) => wanted.has(trial.task_name))) {
    return Option.some(
      `The nested \`harbor run\` recorded trials only for tasks that were not asked for: requested ` +
        `"${tasks[0]!.task.resultKey}", recorded "${fresh[0]!.task_name}". A task's result key must be the ` +
        `task_name Harbor writes ("org/name" for registry and named tasks); when the -i pattern differs, ` +
        `list the task as { include, resultKey }. Refusing to score all samples 0.`
    )
  }
  return Option.none()
}
