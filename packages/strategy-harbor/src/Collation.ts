/**
 * Collation: from the trial results under a jobs directory to one outcome per planned task. Every
 * `result.json` with a `task_name` is a trial; trials of earlier runs in the same directory are
 * pooled. A file that does not decode is reported, never fatal.
 *
 * Rewards come from the trial's `verifier_result.rewards`. A clean trial (no exception) whose
 * `result.json` carries no rewards is read from its verifier's own reward file instead:
 * `verifier/reward.json` (an object of numbers), else `verifier/reward.txt` (one number, read as
 * `{ reward: n }`), the two forms Harbor's verifiers write.
 *
 * @since 0.1.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Metric from "effect/Metric"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { JobResult, RewardJson, RewardTxt, TrialResult } from "./HarborResult.js"

/**
 * A trial and the file it came from.
 *
 * @since 0.1.0
 * @category models
 */
export interface Trial extends TrialResult {
  readonly file: string
}

/**
 * What a jobs directory holds: its trials, how many job summaries, and the files that did not decode.
 *
 * @since 0.1.0
 * @category models
 */
export interface Loaded {
  readonly trials: ReadonlyArray<Trial>
  readonly jobs: number
  readonly invalid: ReadonlyArray<{ readonly file: string; readonly reason: string }>
}

/**
 * Harbor result and reward files that did not decode (each is also logged as a warning).
 *
 * @since 0.1.0
 * @category metrics
 */
export const invalidFiles = Metric.counter("holdout_harbor_invalid_files_total", {
  description: "Harbor result or reward files skipped because they did not decode",
  incremental: true
})

const decodeTrial = Schema.decodeUnknownEither(TrialResult)
const decodeJob = Schema.decodeUnknownEither(JobResult)
const decodeRewardJson = Schema.decodeUnknownEither(RewardJson)
const decodeRewardTxt = Schema.decodeUnknownEither(RewardTxt)

const parseJson = (text: string): Either.Either<unknown, string> => {
  try {
    return Either.right(JSON.parse(text))
  } catch (error) {
    return Either.left(`not JSON: ${String(error)}`)
  }
}

/**
 * The rewards a verifier wrote into `<trialDir>/verifier/`: `reward.json` if present, else
 * `reward.txt`; `undefined` when neither exists; a reason when the file does not decode.
 */
const readRewardFile = (trialDir: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    for (const [name, decode] of [["reward.json", decodeRewardJsonText], ["reward.txt", decodeRewardTxt]] as const) {
      const file = path.join(trialDir, "verifier", name)
      const text = yield* Effect.option(fs.readFileString(file))
      if (text._tag === "None") continue
      const rewards = decode(text.value)
      return Either.isRight(rewards)
        ? { file, rewards: rewards.right }
        : {
          file,
          reason: typeof rewards.left === "string"
            ? rewards.left
            : ParseResult.TreeFormatter.formatErrorSync(rewards.left)
        }
    }
    return undefined
  })

const decodeRewardJsonText = (text: string) => Either.flatMap(parseJson(text), (json) => decodeRewardJson(json))

/**
 * Reads every `result.json` under `jobsDir` (absent directory: nothing).
 *
 * @since 0.1.0
 * @category constructors
 */
export const load = (jobsDir: string): Effect.Effect<Loaded, never, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const names = yield* fs.readDirectory(jobsDir, { recursive: true }).pipe(Effect.orElseSucceed(() => []))
    const trials: Array<Trial> = []
    const invalid: Array<{ file: string; reason: string }> = []
    let jobs = 0
    for (const name of names.filter((name) => path.basename(name) === "result.json").sort()) {
      const file = path.join(jobsDir, name)
      const text = yield* Effect.either(fs.readFileString(file))
      if (Either.isLeft(text)) {
        invalid.push({ file, reason: text.left.message })
        continue
      }
      const parsed = parseJson(text.right)
      if (Either.isLeft(parsed)) {
        invalid.push({ file, reason: parsed.left })
        continue
      }
      const json = parsed.right
      const isTrial = typeof json === "object" && json !== null && "task_name" in json
      if (!isTrial) {
        const job = decodeJob(json)
        if (Either.isRight(job)) jobs++
        else invalid.push({ file, reason: ParseResult.TreeFormatter.formatErrorSync(job.left) })
        continue
      }
      const trial = decodeTrial(json)
      if (Either.isLeft(trial)) {
        invalid.push({ file, reason: ParseResult.TreeFormatter.formatErrorSync(trial.left) })
        continue
      }
      const recorded = trial.right.verifier_result?.rewards
      const clean = trial.right.exception_info === null || trial.right.exception_info === undefined
      if ((recorded === null || recorded === undefined) && clean) {
        const fromFile = yield* readRewardFile(path.dirname(file))
        if (fromFile !== undefined && "reason" in fromFile) {
          invalid.push({ file: fromFile.file, reason: fromFile.reason })
        }
        if (fromFile !== undefined && "rewards" in fromFile) {
          trials.push({ ...trial.right, verifier_result: { rewards: fromFile.rewards }, file })
          continue
        }
      }
      trials.push({ ...trial.right, file })
    }
    for (const entry of invalid) {
      yield* Effect.logWarning(`Harbor result ${entry.file} was skipped: ${entry.reason}`)
    }
    if (invalid.length > 0) yield* Metric.incrementBy(invalidFiles, invalid.length)
    return { trials, jobs, invalid }
  })

/**
 * The score of a rewards record, strictly: the configured key (or nothing); without one, `pass`,
 * then `reward`, then the only key. Several unknown keys are refused, never averaged.
 *
 * @since 0.1.0
 * @category combinators
 */
export const extractReward = (
  rewards: Readonly<Record<string, number>> | null | undefined,
  rewardKey?: string
): number | undefined => {
  if (rewards === null || rewards === undefined) return undefined
  if (rewardKey !== undefined) return rewards[rewardKey]
  if (rewards["pass"] !== undefined) return rewards["pass"]
  if (rewards["reward"] !== undefined) return rewards["reward"]
  const keys = Object.keys(rewards)
  return keys.length === 1 ? rewards[keys[0]!] : undefined
}

const infraTypes = new Set([
  "APIConnectionError",
  "APITimeoutError",
  "ConnectTimeout",
  "ConnectionError",
  "InternalServerError",
  "RateLimitError",
  "ReadTimeout",
  "ServiceUnavailableError",
  "Timeout",
  "TimeoutError"
])

/**
 * Why an attempt produced no score, for reports: its exception type (`[infra]` when the cause is
 * the model API, `[infra:llm-key-budget]` when the key's budget ran out), or `no_rewards_recorded`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const deadLabel = (trial: TrialResult): string => {
  const info = trial.exception_info
  if (info === null || info === undefined) return "no_rewards_recorded"
  const type = info.exception_type.replace(/\[/g, "(").replace(/\]/g, ")")
  if (type === "BadRequestError" && /budget has been exceeded/i.test(info.exception_message ?? "")) {
    return `${type}[infra:llm-key-budget]`
  }
  return infraTypes.has(info.exception_type) ? `${type}[infra]` : type
}

/**
 * Whether a label marks an infrastructure failure rather than a failure of the candidate.
 *
 * @since 0.1.0
 * @category combinators
 */
export const isInfra = (label: string): boolean => label.includes("[infra")

const rankOf = (trial: TrialResult, rewardKey: string | undefined) => {
  const reward = extractReward(trial.verifier_result?.rewards, rewardKey)
  const clean = reward !== undefined && (trial.exception_info === null || trial.exception_info === undefined)
  return [clean ? 1 : 0, reward === undefined ? 0 : 1, reward ?? -1, trial.finished_at ?? ""] as const
}

const better = (left: TrialResult, right: TrialResult, rewardKey: string | undefined): boolean => {
  const a = rankOf(left, rewardKey)
  const b = rankOf(right, rewardKey)
  for (let index = 0; index < a.length; index++) {
    if (a[index]! > b[index]!) return true
    if (a[index]! < b[index]!) return false
  }
  return false
}

/**
 * The outcome of one task: a score with its metrics, or an error; `output` says what was found.
 *
 * @since 0.1.0
 * @category models
 */
export interface Outcome {
  readonly score?: number
  readonly error?: string
  /** For an error: the traceback of the best dead attempt, when Harbor recorded one. */
  readonly trace?: string
  readonly metrics: Record<string, number>
  readonly output: Record<string, unknown>
  /** The trials the outcome was made of. */
  readonly trials: number
  /** Those trials, in the order they finished (unfinished last, then by trial name). */
  readonly attempts: ReadonlyArray<Trial>
}

/**
 * How attempts become a score: the best one, or the mean over all (dead attempts count 0).
 *
 * @since 0.1.0
 * @category models
 */
export interface CollateOptions {
  readonly aggregate: "best" | "mean"
  readonly rewardKey?: string
}

/**
 * The dead attempts among `trials` (those without a reward by the strict rule), as `"<label> x<count>"`
 * per label in the order first seen, e.g. `["RateLimitError[infra] x2"]`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const deadSummary = (trials: ReadonlyArray<TrialResult>, rewardKey: string | undefined): Array<string> => {
  const counts = new Map<string, number>()
  for (const trial of trials) {
    if (extractReward(trial.verifier_result?.rewards, rewardKey) !== undefined) continue
    const label = deadLabel(trial)
    counts.set(label, (counts.get(label) ?? 0) + 1)
  }
  return [...counts].map(([label, count]) => `${label} x${count}`)
}

/**
 * The outcome of every planned task (keyed by the name Harbor writes as `task_name`).
 *
 * @since 0.1.0
 * @category combinators
 */
export const collate = (
  trials: ReadonlyArray<Trial>,
  taskNames: ReadonlyArray<string>,
  options: CollateOptions
): Map<string, Outcome> => {
  const byTask = new Map<string, Array<Trial>>()
  for (const trial of trials) {
    const list = byTask.get(trial.task_name)
    if (list === undefined) byTask.set(trial.task_name, [trial])
    else list.push(trial)
  }
  // attempts in the order they finished (unfinished last), then by trial name
  const order = (trial: Trial) =>
    [
      trial.finished_at === null || trial.finished_at === undefined ? 1 : 0,
      trial.finished_at ?? "",
      trial.trial_name ?? ""
    ] as const
  for (const list of byTask.values()) {
    list.sort((left, right) => {
      const a = order(left)
      const b = order(right)
      for (let index = 0; index < a.length; index++) {
        if (a[index]! < b[index]!) return -1
        if (a[index]! > b[index]!) return 1
      }
      return 0
    })
  }
  const outcomes = new Map<string, Outcome>()
  for (const taskName of taskNames) {
    const attempts = byTask.get(taskName) ?? []
    if (attempts.length === 0) {
      outcomes.set(taskName, {
        error: `No Harbor trial result for task "${taskName}".`,
        metrics: {},
        output: { taskName },
        trials: 0,
        attempts: []
      })
      continue
    }
    const dead = deadSummary(attempts, options.rewardKey)
    const deadTypes = dead.length === 0 ? {} : { deadAttempts: dead }
    const scores = attempts.map((trial) => extractReward(trial.verifier_result?.rewards, options.rewardKey))
    const scored = scores.filter((score): score is number => score !== undefined)
    if (scored.length === 0) {
      const best = attempts.reduce((left, right) => better(right, left, options.rewardKey) ? right : left)
      const rewards = best.verifier_result?.rewards
      const error = rewards !== null && rewards !== undefined && Object.keys(rewards).length > 0
        ? `Rewards for task "${taskName}" carry no usable metric (rewardKey ${options.rewardKey ?? "unset"}, keys ` +
          `${Object.keys(rewards).join(", ")}).`
        : `No verifier rewards for task "${taskName}"${
          dead.length === 0 ? "" : ` (attempts died: ${dead.join(", ")})`
        }.`
      const traceback = best.exception_info?.exception_traceback
      outcomes.set(taskName, {
        error,
        ...(traceback === null || traceback === undefined ? {} : { trace: traceback }),
        metrics: {},
        output: { taskName, trialName: best.trial_name ?? null, infra: dead.some(isInfra), ...deadTypes },
        trials: attempts.length,
        attempts
      })
      continue
    }
    if (options.aggregate === "mean") {
      const total = scores.reduce<number>((sum, score) => sum + (score ?? 0), 0)
      outcomes.set(taskName, {
        score: total / attempts.length,
        metrics: {
          rewardMean: total / attempts.length,
          attempts: attempts.length,
          scored: scored.length,
          dead: attempts.length - scored.length,
          deadInfra: dead.filter(isInfra).length
        },
        output: { taskName, attemptScores: scores.map((score) => score ?? 0), aggregate: "mean", ...deadTypes },
        trials: attempts.length,
        attempts
      })
      continue
    }
    const best = attempts.reduce((left, right) => better(right, left, options.rewardKey) ? right : left)
    const rewards = best.verifier_result!.rewards!
    outcomes.set(taskName, {
      score: extractReward(rewards, options.rewardKey)!,
      metrics: { ...rewards },
      output: { taskName, trialName: best.trial_name ?? null, rewards, ...deadTypes },
      trials: attempts.length,
      attempts
    })
  }
  return outcomes
}

/**
 * One attempt as `exposeAttemptDetail` shows it: its reward by the strict rule and its exception
 * type, each `null` when absent.
 *
 * @since 0.1.0
 * @category models
 */
export interface AttemptDetail {
  readonly reward: number | null
  readonly exception: string | null
}

/**
 * The detail of every attempt of an outcome, in the order they finished.
 *
 * @since 0.1.0
 * @category combinators
 */
export const attemptDetail = (
  attempts: ReadonlyArray<TrialResult>,
  rewardKey?: string
): ReadonlyArray<AttemptDetail> =>
  attempts.map((trial) => ({
    reward: extractReward(trial.verifier_result?.rewards, rewardKey) ?? null,
    exception: trial.exception_info?.exception_type ?? null
  }))

/**
 * Whether an attempt failed: it has no reward by the strict rule, or its reward is 0 or less.
 *
 * @since 0.1.0
 * @category combinators
 */
export const attemptFailed = (trial: TrialResult, rewardKey?: string): boolean => {
  const reward = extractReward(trial.verifier_result?.rewards, rewardKey)
  return reward === undefined || reward <= 0
}

/**
 * Whether an outcome is an error whose every attempt died of an infrastructure failure (an
 * `[infra]` label): what an infra-retry round may run again. A key-budget death
 * (`[infra:llm-key-budget]`), a crash of the candidate, a missing trial or an attempt with a reward
 * never qualifies.
 *
 * @since 0.1.0
 * @category combinators
 */
export const diedOfInfra = (outcome: Outcome, rewardKey?: string): boolean =>
  outcome.error !== undefined && outcome.attempts.length > 0 &&
  outcome.attempts.every((trial) =>
    extractReward(trial.verifier_result?.rewards, rewardKey) === undefined && deadLabel(trial).endsWith("[infra]")
  )
