/**
 * The Harbor strategy: the samples of a run are Harbor tasks, run by one nested `harbor run` per
 * call and scored by each task's own verifier.
 *
 * For the samples of a run that have no stored non-error record, `produce`:
 *
 * 1. records at once every task whose trials are already in the run's jobs directory (a round cut
 *    short by a crash or a timeout), when it has all its attempts and a score;
 * 2. runs the launcher with the arguments `HarborArgs.runArgs` builds (`run (-p <dir> | -d <ref>)
 *    --agent … [-m <model>] -i <include>… --jobs-dir <run dir>/jobs --job-name holdout-<n> [extra…]`;
 *    on an admin run whose candidate carries the verifier's `EvalStrategy.modelOverrideKey`, a
 *    transfer target's, `-m` is that model instead of the configured one)
 *    in the candidate's checkout (from `Workspace`), with the sidecar's own harbor (`HarborLauncher`:
 *    never one the checkout supplies), with one timeout for the whole nested run; on
 *    timeout the process tree is terminated (SIGTERM, then SIGKILL after a grace period);
 * 3. collates every trial of the jobs directory, also after a timeout or a non-zero exit, and stores
 *    one record per sample: the score by the strict reward rule, or an error (no trial, no verifier
 *    rewards — naming the dead attempts' exception types, `[infra]` for model-API failures);
 * 4. with `infraRetryRounds`, runs again the samples whose every attempt died of an `[infra]` failure
 *    (`<run dir>/jobs-infra-retry-<k>`, after `infraRetryDelaySeconds` × the round), charging nothing.
 *
 * Two levers add per-sample detail, both off by default and shown only where a split's tier shows
 * samples: `feedbackTranscripts` (a failed sample's `feedback` is the end of its agent's transcript,
 * `HarborTranscript`) and `exposeAttemptDetail` (`output.attempts`, one `{ reward, exception }` each).
 *
 * A nested run that leaves no trial at all, or only trials of other tasks (a task-name mismatch),
 * is a `StrategyError`: scoring every sample 0 would charge the budget for nothing. Errored samples
 * are re-run on the next `produce` of the run. The launcher's output goes to
 * `<run dir>/holdout-<n>.log`; progress is logged while the nested run lasts. When the stack has a
 * `RunEvents` hub, a `SampleScored` event is published for every record stored.
 *
 * This module only sequences a run; the pieces it composes each take what they need explicitly:
 * a round (`internal/round`, arguments from `HarborArgs`, process from `HarborProcess`), a sample's
 * record with its levers (`internal/records`), storing records with their events
 * (`internal/sampleStore`) and the infra-retry rounds (`internal/infraRetry`).
 *
 * @since 0.1.0
 */
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { DatasetSource, EvalStrategy, type HoldoutError, Metrics, RunEvents, TaskStore, Workspace } from "@holdout/core"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Collation from "./Collation.js"
import * as HarborConfig from "./HarborConfig.js"
import { HarborTask } from "./HarborDataset.js"
import * as HarborLauncher from "./HarborLauncher.js"
import * as HarborProcess from "./HarborProcess.js"
import { failure, ioFailure, strategyName } from "./internal/failure.js"
import { infraRetry } from "./internal/infraRetry.js"
import * as Records from "./internal/records.js"
import * as HarborRound from "./internal/round.js"
import * as SampleStore from "./internal/sampleStore.js"

/**
 * The options of the strategy.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The Harbor configuration, decoded strictly (an unknown or invalid field is a `ConfigError`). */
  readonly config: HarborConfig.Input
  /** Where the runs' directories go: `<dir>/runs/<run id>/` holds `jobs/` and the launcher's logs. */
  readonly dir: string
  /** How often progress is logged while a nested run lasts (default 30 seconds). */
  readonly progressInterval?: Duration.DurationInput
  /** How long a terminated nested run gets between SIGTERM and SIGKILL (default 5 seconds). */
  readonly killGrace?: Duration.DurationInput
}

/**
 * The services the strategy needs.
 *
 * @since 0.1.0
 * @category models
 */
export type Requirements =
  | TaskStore.TaskStore
  | DatasetSource.DatasetSource
  | Workspace.Workspace
  | CommandExecutor.CommandExecutor
  | FileSystem.FileSystem
  | Path.Path

const decodeTask = Schema.decodeUnknownEither(HarborTask)

/** The samples `ids` of a run, each with the Harbor task its row names; a row that names none fails the run. */
const pendingTasks = (
  source: DatasetSource.DatasetSource["Type"],
  plan: EvalStrategy.RunPlan,
  ids: ReadonlyArray<number>
): Effect.Effect<Array<Records.Pending>, HoldoutError.StrategyError | HoldoutError.StoreError> =>
  Effect.gen(function*() {
    const rows = yield* source.rows(plan.datasetId, plan.split, ids).pipe(
      Effect.catchTags({
        InvalidRequest: (error) => Effect.fail(failure(error.message)),
        UnknownSplit: (error) => Effect.fail(failure(error.message))
      })
    )
    const pending: Array<Records.Pending> = []
    for (const [index, row] of rows.entries()) {
      const task = decodeTask(row)
      if (Either.isLeft(task)) {
        return yield* Effect.fail(failure(
          `Sample ${ids[index]} of ${plan.datasetId}/${plan.split} is not a Harbor task ` +
            `({ include, resultKey }): serve the partition with HarborDataset.layer.`
        ))
      }
      pending.push({ sampleId: ids[index]!, task: task.right })
    }
    return pending
  })

/** A file-name-safe directory name for a run id; ids that needed changing get a hash suffix. */
const runDirName = (runId: string): string => {
  const safe = runId.replace(/[^A-Za-z0-9._-]/g, "_").replace(/^\.+/, "_")
  if (safe === runId && safe.length > 0) return safe
  let hash = 0x811c9dc5
  for (let index = 0; index < runId.length; index++) {
    hash ^= runId.charCodeAt(index)
    hash = Math.imul(hash, 0x01000193) >>> 0
  }
  return `${safe.slice(0, 100)}-${hash.toString(16).padStart(8, "0")}`
}

/**
 * Builds the strategy.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<EvalStrategy.EvalStrategy["Type"], HoldoutError.ConfigError, Requirements> =>
  Effect.gen(function*() {
    const config = yield* HarborConfig.decode(options.config)
    const store = yield* TaskStore.TaskStore
    const source = yield* DatasetSource.DatasetSource
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const context = yield* Effect.context<CommandExecutor.CommandExecutor | FileSystem.FileSystem | Path.Path>()
    const setup: HarborRound.Setup = {
      config,
      // the nested harbor is the sidecar's own: fixed now, checked against each checkout before a run
      launcher: yield* HarborLauncher.resolve(config),
      store,
      workspace: yield* Workspace.Workspace,
      killGrace: Duration.decode(options.killGrace ?? "5 seconds"),
      progressInterval: Duration.decode(options.progressInterval ?? "30 seconds")
    }
    const samples = SampleStore.make(store, yield* Effect.serviceOption(RunEvents.RunEvents))
    const collateOptions: Collation.CollateOptions = {
      aggregate: config.aggregate,
      ...(config.rewardKey === undefined ? {} : { rewardKey: config.rewardKey })
    }
    const runsDir = path.resolve(options.dir, "runs")

    /** The outcomes of the samples named by `keys`, from every trial under `jobsDir`. */
    const collate = (jobsDir: string, keys: ReadonlyArray<string>) =>
      Effect.map(Collation.load(jobsDir), (loaded) => Collation.collate(loaded.trials, keys, collateOptions))

    /** The records of `entries`, each from its outcome in `outcomes`. */
    const records = (
      plan: EvalStrategy.RunPlan,
      entries: ReadonlyArray<Records.Pending>,
      outcomes: ReadonlyMap<string, Collation.Outcome>,
      found: (outcome: Collation.Outcome) => Records.Found
    ) =>
      Effect.forEach(entries, (entry) => {
        const outcome = outcomes.get(entry.task.resultKey)!
        return Records.record(config, plan, entry, outcome, found(outcome))
      }, { concurrency: 16 })

    const produce = (plan: EvalStrategy.RunPlan) =>
      Effect.gen(function*() {
        // samples with an error are run again, so only a record without one is final
        const ids = yield* EvalStrategy.pendingSampleIds(store, plan, { isFinal: (sample) => !Metrics.isError(sample) })
        if (ids.length === 0) return
        // the run's counts for events: the samples already done, none of them an error
        const counts: SampleStore.Counts = { scored: plan.sampleIds.length - ids.length, errors: 0 }

        const pending = yield* pendingTasks(source, plan, ids)

        const runDir = path.join(runsDir, runDirName(plan.runId))
        const jobsDir = path.join(runDir, "jobs")
        yield* fs.makeDirectory(jobsDir, { recursive: true }).pipe(Effect.mapError(ioFailure(`create ${jobsDir}`)))
        const startedAt = yield* Clock.currentTimeMillis

        // trials left by an earlier round of this run (cut short by a crash or a timeout)
        const earlier = yield* collate(jobsDir, pending.map((entry) => entry.task.resultKey))
        const salvaged = pending.filter((entry) => {
          const outcome = earlier.get(entry.task.resultKey)!
          return outcome.error === undefined && outcome.trials >= config.attempts
        })
        if (salvaged.length > 0) {
          const finishedAt = yield* Clock.currentTimeMillis
          yield* samples.putAll(
            yield* records(plan, salvaged, earlier, () => ({ jobsDir, startedAt, finishedAt })),
            counts
          )
          yield* Effect.logInfo(
            `Harbor: ${salvaged.length} task(s) of run ${plan.runId} already had their trials; recorded without running again`
          )
        }
        const toRun = pending.filter((entry) => !salvaged.includes(entry))
        if (toRun.length === 0) return

        const round = yield* HarborRound.run(setup, plan, toRun, { runDir, jobsDir })

        const loaded = yield* Collation.load(jobsDir)
        const refused = HarborRound.refusal(round, toRun, loaded.trials, path.sep)
        if (Option.isSome(refused)) return yield* Effect.fail(failure(refused.value))
        const outcomes = Collation.collate(loaded.trials, toRun.map((entry) => entry.task.resultKey), collateOptions)
        const finishedAt = yield* Clock.currentTimeMillis
        const cut = HarborRound.exitedCleanly(round.ended)
          ? ""
          : ` The nested run ${HarborProcess.describeEnd(round.ended)}.`
        yield* samples.putAll(
          yield* records(plan, toRun, outcomes, (outcome) => ({
            jobsDir,
            startedAt,
            finishedAt,
            note: outcome.trials === 0 ? cut : ""
          })),
          counts
        )
        if (config.infraRetryRounds > 0) {
          yield* infraRetry(
            {
              config,
              runId: plan.runId,
              runDir,
              startedAt,
              runRound: (tasks, retryDir, jobName) =>
                HarborRound.run(setup, plan, tasks, { runDir, jobsDir: retryDir, jobName }),
              collate,
              record: (entry, outcome, found) => Records.record(config, plan, entry, outcome, found),
              store: (retried) => samples.putRetried(retried, counts)
            },
            toRun,
            outcomes
          )
        }
      }).pipe(Effect.provide(context))

    return { name: strategyName, produce }
  })

/**
 * The strategy as a layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<EvalStrategy.EvalStrategy, HoldoutError.ConfigError, Requirements> =>
  Layer.effect(EvalStrategy.EvalStrategy, make(options))
