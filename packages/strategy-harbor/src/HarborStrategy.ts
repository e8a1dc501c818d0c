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
 * @since 0.1.0
 */
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import {
  DatasetSource,
  EvalStrategy,
  HoldoutError,
  Metrics,
  type Model,
  RunEvents,
  TaskStore,
  Workspace
} from "@holdout/core"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Collation from "./Collation.js"
import * as HarborArgs from "./HarborArgs.js"
import * as HarborConfig from "./HarborConfig.js"
import { HarborTask } from "./HarborDataset.js"
import * as HarborLauncher from "./HarborLauncher.js"
import * as HarborProcess from "./HarborProcess.js"
import * as HarborTranscript from "./HarborTranscript.js"

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

const strategyName = "harbor"

/** The running counts of a run, for `SampleScored` events. */
interface Counts {
  scored: number
  errors: number
}

const failure = (message: string) => new HoldoutError.StrategyError({ strategy: strategyName, message })

interface Pending {
  readonly sampleId: number
  readonly task: HarborTask
}

interface Round {
  readonly jobDir: string
  readonly logFile: string
  readonly ended: HarborProcess.Ended
  readonly outputTail: string
}

const decodeTask = Schema.decodeUnknownEither(HarborTask)

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
    // the nested harbor is the sidecar's own: fixed now, checked against each checkout before a run
    const launcher = yield* HarborLauncher.resolve(config)
    const store = yield* TaskStore.TaskStore
    const source = yield* DatasetSource.DatasetSource
    const events = yield* Effect.serviceOption(RunEvents.RunEvents)
    const workspace = yield* Workspace.Workspace
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const context = yield* Effect.context<CommandExecutor.CommandExecutor | FileSystem.FileSystem | Path.Path>()
    const progressInterval = Duration.decode(options.progressInterval ?? "30 seconds")
    const killGrace = Duration.decode(options.killGrace ?? "5 seconds")
    const collateOptions: Collation.CollateOptions = {
      aggregate: config.aggregate,
      ...(config.rewardKey === undefined ? {} : { rewardKey: config.rewardKey })
    }
    const runsDir = path.resolve(options.dir, "runs")

    const ioFailure = (what: string) => (error: { readonly message: string }) =>
      failure(`Could not ${what}: ${error.message}`)

    const loadTrials = (jobsDir: string) => Collation.load(jobsDir).pipe(Effect.provide(context))

    /**
     * The record of a sample from its outcome, with what the levers add: the detail of its attempts
     * (`exposeAttemptDetail`) and, for a failed sample, its transcript's end as feedback
     * (`feedbackTranscripts`, read from the trials under `jobsDir`). `extra` joins the output.
     */
    const record = (
      plan: EvalStrategy.RunPlan,
      pending: Pending,
      outcome: Collation.Outcome,
      found: {
        readonly jobsDir: string
        readonly startedAt: number
        readonly finishedAt: number
        readonly note?: string
        readonly extra?: Record<string, unknown>
      }
    ): Effect.Effect<Model.SampleRecord> =>
      Effect.map(
        config.feedbackTranscripts
          ? HarborTranscript.feedback({
            outcome,
            jobsDir: found.jobsDir,
            maxBytes: config.feedbackMaxBytes,
            rewardKey: config.rewardKey
          }).pipe(Effect.provide(context))
          : Effect.succeedNone,
        (feedback) =>
          EvalStrategy.sampleRecord(plan, pending.sampleId, {
            input: pending.task,
            output: {
              ...outcome.output,
              ...(config.exposeAttemptDetail
                ? { attempts: Collation.attemptDetail(outcome.attempts, config.rewardKey) }
                : {}),
              ...found.extra
            },
            ...(outcome.error === undefined ? {} : { error: outcome.error + (found.note ?? "") }),
            ...(outcome.trace === undefined ? {} : { errorTrace: outcome.trace }),
            ...(outcome.score === undefined ? {} : { score: outcome.score }),
            ...(Option.isSome(feedback) ? { feedback: feedback.value } : {}),
            metrics: outcome.metrics,
            attempts: outcome.trials,
            startedAt: found.startedAt,
            finishedAt: found.finishedAt
          })
      )

    /** Stores records, publishing `SampleScored` for each when the stack has an event hub. */
    const putAll = (records: ReadonlyArray<Model.SampleRecord>, counts: Counts) =>
      Effect.forEach(records, (sample) =>
        Effect.zipRight(
          store.putSample(sample),
          Option.isNone(events) ? Effect.void : Effect.suspend(() => {
            const error = Metrics.isError(sample)
            counts.scored++
            if (error) counts.errors++
            return events.value.publish(
              new RunEvents.SampleScored({
                runId: sample.runId,
                sampleId: sample.sampleId,
                error,
                scored: counts.scored,
                errors: counts.errors
              }, true)
            )
          })
        ), { concurrency: 16, discard: true })

    /**
     * Stores the records of an infra-retry round, which replace error records already counted: a
     * recovered sample publishes `SampleScored` with one error less; one still failing publishes nothing.
     */
    const putRetried = (records: ReadonlyArray<Model.SampleRecord>, counts: Counts) =>
      Effect.forEach(records, (sample) =>
        Effect.zipRight(
          store.putSample(sample),
          Option.isNone(events) || Metrics.isError(sample) ? Effect.void : Effect.suspend(() => {
            counts.errors--
            return events.value.publish(
              new RunEvents.SampleScored({
                runId: sample.runId,
                sampleId: sample.sampleId,
                error: false,
                scored: counts.scored,
                errors: counts.errors
              }, true)
            )
          })
        ), { concurrency: 16, discard: true })

    /** The task source: a local directory (made absolute) when one exists, else a registry reference. */
    const taskSource = Effect.map(
      fs.exists(config.taskSource).pipe(Effect.orElseSucceed(() => false)),
      (local): HarborArgs.Source =>
        local ? { _tag: "Local", path: path.resolve(config.taskSource) } : { _tag: "Registry", ref: config.taskSource }
    )

    const nextJobName = (jobsDir: string) =>
      Effect.map(fs.readDirectory(jobsDir).pipe(Effect.orElseSucceed(() => [])), (entries) => {
        let last = 0
        for (const entry of entries) {
          const match = /^holdout-(\d+)$/.exec(entry)
          if (match !== null) last = Math.max(last, Number(match[1]))
        }
        return `holdout-${last + 1}`
      })

    /** Trial directories of a job that hold a `result.json` (for progress lines). */
    const finishedTrials = (jobDir: string) =>
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
    const modelOf = (plan: EvalStrategy.RunPlan) =>
      Effect.map(store.getRun(plan.runId).pipe(Effect.orElseSucceed(() => Option.none())), (run) => {
        const override = plan.candidate.metadata?.[EvalStrategy.modelOverrideKey]
        return Option.isSome(run) && run.value.admin && typeof override === "string" && override !== ""
          ? { model: override }
          : {}
      })

    const runHarbor = (
      plan: EvalStrategy.RunPlan,
      candidatePath: string,
      tasks: ReadonlyArray<Pending>,
      runDir: string,
      jobsDir: string,
      named?: string
    ): Effect.Effect<Round, HoldoutError.StrategyError, Scope.Scope> =>
      Effect.gen(function*() {
        const jobName = named ?? (yield* nextJobName(jobsDir))
        const jobDir = path.join(jobsDir, jobName)
        const logFile = path.join(runDir, `${jobName}.log`)
        const args = HarborArgs.runArgs({
          ...config,
          launcher: yield* launcher.forRun(candidatePath),
          ...(yield* modelOf(plan))
        }, {
          source: yield* taskSource,
          candidatePath,
          includes: tasks.map((pending) => pending.task.include),
          jobsDir,
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
          killGrace,
          progressInterval,
          progress: (elapsed) =>
            Effect.flatMap(
              finishedTrials(jobDir),
              (done) => Effect.logInfo(`Harbor job ${jobName}: ${done}/${total} trial(s) finished after ${elapsed} s`)
            )
        }).pipe(Effect.provide(context))
        if (!(ended._tag === "Exited" && ended.code === 0)) {
          yield* Effect.logWarning(
            `Harbor job ${jobName} ${HarborProcess.describeEnd(ended)}; collating the trials that finished.` +
              (outputTail === "" ? "" : `\nLast error output:\n${outputTail.slice(-500)}`)
          )
        }
        return { jobDir, logFile, ended, outputTail }
      })

    /**
     * The number of the next infra-retry round's directory: the rounds already in `runDir`, plus one
     * (or the first free number after it, should a directory have been removed in between).
     */
    const nextRetryDir = (runDir: string) =>
      Effect.map(
        fs.readDirectory(runDir).pipe(Effect.orElseSucceed(() => [])),
        (entries) => {
          const rounds = new Set(entries.filter((entry) => /^jobs-infra-retry-\d+$/.test(entry)))
          let number = rounds.size + 1
          while (rounds.has(`jobs-infra-retry-${number}`)) number++
          return number
        }
      )

    /**
     * `infraRetryRounds`: runs again, round after round, the samples whose every attempt died of an
     * infrastructure failure, each round into a sibling jobs directory of its own (so that the run's
     * own jobs directory, which a resume pools, never sees them). A round that leaves no trial for a
     * sample keeps its error; a sample that recovers is stamped with the round and the dead attempts
     * of the rounds it discarded. Nothing is charged: the run was charged once.
     */
    const infraRetry = (
      plan: EvalStrategy.RunPlan,
      entries: ReadonlyArray<Pending>,
      first: ReadonlyMap<string, Collation.Outcome>,
      run: { readonly runDir: string; readonly startedAt: number; readonly counts: Counts }
    ) =>
      Effect.gen(function*() {
        const current = new Map(first)
        const discarded = new Map<string, ReadonlyArray<ReadonlyArray<string>>>()
        for (let round = 1; round <= config.infraRetryRounds; round++) {
          const retry = entries.filter((entry) =>
            Collation.diedOfInfra(current.get(entry.task.resultKey)!, config.rewardKey)
          )
          if (retry.length === 0) return
          const wait = config.infraRetryDelaySeconds * round
          yield* Effect.logInfo(
            `Harbor: ${retry.length} sample(s) of run ${plan.runId} died of infrastructure failures only; ` +
              `infra-retry round ${round} of ${config.infraRetryRounds} in ${wait} s`
          )
          yield* Effect.sleep(Duration.seconds(wait))
          const number = yield* nextRetryDir(run.runDir)
          const retryDir = path.join(run.runDir, `jobs-infra-retry-${number}`)
          yield* fs.makeDirectory(retryDir, { recursive: true }).pipe(Effect.mapError(ioFailure(`create ${retryDir}`)))
          const ran = yield* Effect.either(Effect.scoped(
            Effect.flatMap(
              workspace.checkout(plan.candidate),
              (candidatePath) => runHarbor(plan, candidatePath, retry, run.runDir, retryDir, `infra-retry-${number}`)
            )
          ))
          if (Either.isLeft(ran)) {
            yield* Effect.logWarning(
              `Harbor infra-retry round ${round} of run ${plan.runId} could not run; the samples keep their errors: ` +
                ran.left.message
            )
            return
          }
          const outcomes = Collation.collate(
            (yield* loadTrials(retryDir)).trials,
            retry.map((entry) => entry.task.resultKey),
            collateOptions
          )
          // a sample this round left without a trial keeps its error (and may be retried again)
          const answered = retry.filter((entry) => outcomes.get(entry.task.resultKey)!.trials > 0)
          if (answered.length === 0) {
            yield* Effect.logWarning(
              `Harbor infra-retry round ${round} of run ${plan.runId} produced no trial for its ` +
                `${retry.length} sample(s); they keep their errors`
            )
            continue
          }
          const finishedAt = yield* Clock.currentTimeMillis
          const records = yield* Effect.forEach(answered, (entry) => {
            const key = entry.task.resultKey
            const rounds = [
              ...(discarded.get(key) ?? []),
              Collation.deadSummary(current.get(key)!.attempts, config.rewardKey)
            ]
            discarded.set(key, rounds)
            const outcome = outcomes.get(key)!
            current.set(key, outcome)
            return record(plan, entry, outcome, {
              jobsDir: retryDir,
              startedAt: run.startedAt,
              finishedAt,
              ...(outcome.error === undefined
                ? { extra: { infraRetry: { recoveredRound: round, discardedRounds: rounds } } }
                : {})
            })
          }, { concurrency: 16 })
          yield* putRetried(records, run.counts)
          yield* Effect.logInfo(
            `Harbor infra-retry round ${round} of run ${plan.runId}: ` +
              `${records.filter((sample) => !Metrics.isError(sample)).length} of ${retry.length} sample(s) recovered`
          )
        }
      })

    const produce = (plan: EvalStrategy.RunPlan) =>
      Effect.gen(function*() {
        // samples with an error are run again, so only a record without one is final
        const ids = yield* EvalStrategy.pendingSampleIds(store, plan, { isFinal: (sample) => !Metrics.isError(sample) })
        if (ids.length === 0) return
        // the run's counts for events: the samples already done, none of them an error
        const counts: Counts = { scored: new Set(plan.sampleIds).size - ids.length, errors: 0 }

        const rows = yield* source.rows(plan.datasetId, plan.split, ids).pipe(
          Effect.catchTags({
            InvalidRequest: (error) => Effect.fail(failure(error.message)),
            UnknownSplit: (error) => Effect.fail(failure(error.message))
          })
        )
        const pending: Array<Pending> = []
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

        const runDir = path.join(runsDir, runDirName(plan.runId))
        const jobsDir = path.join(runDir, "jobs")
        yield* fs.makeDirectory(jobsDir, { recursive: true }).pipe(Effect.mapError(ioFailure(`create ${jobsDir}`)))
        const startedAt = yield* Clock.currentTimeMillis

        // trials left by an earlier round of this run (cut short by a crash or a timeout)
        const earlier = Collation.collate(
          (yield* loadTrials(jobsDir)).trials,
          pending.map((entry) => entry.task.resultKey),
          collateOptions
        )
        const salvaged = pending.filter((entry) => {
          const outcome = earlier.get(entry.task.resultKey)!
          return outcome.error === undefined && outcome.trials >= config.attempts
        })
        if (salvaged.length > 0) {
          const finishedAt = yield* Clock.currentTimeMillis
          yield* putAll(
            yield* Effect.forEach(
              salvaged,
              (entry) => record(plan, entry, earlier.get(entry.task.resultKey)!, { jobsDir, startedAt, finishedAt }),
              { concurrency: 16 }
            ),
            counts
          )
          yield* Effect.logInfo(
            `Harbor: ${salvaged.length} task(s) of run ${plan.runId} already had their trials; recorded without running again`
          )
        }
        const toRun = pending.filter((entry) => !salvaged.includes(entry))
        if (toRun.length === 0) return

        const round = yield* Effect.scoped(
          Effect.flatMap(
            workspace.checkout(plan.candidate),
            (candidatePath) => runHarbor(plan, candidatePath, toRun, runDir, jobsDir)
          )
        )

        const loaded = yield* loadTrials(jobsDir)
        const fresh = loaded.trials.filter((trial) => trial.file.startsWith(round.jobDir + path.sep))
        const ending = `The nested run ${HarborProcess.describeEnd(round.ended)}` +
          (round.outputTail === "" ? "" : `; its last error output:\n${round.outputTail.slice(-500)}`)
        if (fresh.length === 0) {
          return yield* Effect.fail(failure(
            `The nested \`harbor run\` produced no trial results for ${toRun.length} task(s); refusing to score ` +
              `all samples 0. ${ending}\n(full output: ${round.logFile})`
          ))
        }
        const wanted = new Set(toRun.map((entry) => entry.task.resultKey))
        if (!fresh.some((trial) => wanted.has(trial.task_name))) {
          return yield* Effect.fail(failure(
            `The nested \`harbor run\` recorded trials only for tasks that were not asked for: requested ` +
              `"${toRun[0]!.task.resultKey}", recorded "${fresh[0]!.task_name}". A task's result key must be the ` +
              `task_name Harbor writes ("org/name" for registry and named tasks); when the -i pattern differs, ` +
              `list the task as { include, resultKey }. Refusing to score all samples 0.`
          ))
        }
        const outcomes = Collation.collate(loaded.trials, toRun.map((entry) => entry.task.resultKey), collateOptions)
        const finishedAt = yield* Clock.currentTimeMillis
        const cut = round.ended._tag === "Exited" && round.ended.code === 0
          ? ""
          : ` The nested run ${HarborProcess.describeEnd(round.ended)}.`
        yield* putAll(
          yield* Effect.forEach(toRun, (entry) => {
            const outcome = outcomes.get(entry.task.resultKey)!
            return record(plan, entry, outcome, {
              jobsDir,
              startedAt,
              finishedAt,
              note: outcome.trials === 0 ? cut : ""
            })
          }, { concurrency: 16 }),
          counts
        )
        if (config.infraRetryRounds > 0) yield* infraRetry(plan, toRun, outcomes, { runDir, startedAt, counts })
      })

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
