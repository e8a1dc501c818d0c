/**
 * The infra-retry rounds (`infraRetryRounds`): round after round, the samples whose every attempt
 * died of an `[infra]` failure run again, after `infraRetryDelaySeconds` × the round, each round into
 * a sibling jobs directory of its own, `<run dir>/jobs-infra-retry-<k>` (so that the run's own jobs
 * directory, which a resume pools, never sees them). A round that leaves no trial for a sample keeps
 * its error; a sample that recovers is stamped with the round and the dead attempts of the rounds it
 * discarded (`output.infraRetry`). Nothing is charged: the run was charged once.
 *
 * @internal
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { type HoldoutError, Metrics, type Model } from "@holdout/core"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Collation from "../Collation.js"
import type * as HarborConfig from "../HarborConfig.js"
import { ioFailure } from "./failure.js"
import type { Found, Pending } from "./records.js"

/** What the rounds are run with: the run's configuration and place, and what they do in it. */
export interface Retry<R> {
  readonly config: HarborConfig.HarborConfig
  readonly runId: string
  /** The run's directory, where the rounds' jobs directories and logs go. */
  readonly runDir: string
  readonly startedAt: number
  /** Runs a nested round of `tasks` into `jobsDir` as the job `jobName`. */
  readonly runRound: (
    tasks: ReadonlyArray<Pending>,
    jobsDir: string,
    jobName: string
  ) => Effect.Effect<unknown, HoldoutError.StrategyError, R>
  /** The outcomes of the samples named by `keys`, from the trials under `jobsDir`. */
  readonly collate: (
    jobsDir: string,
    keys: ReadonlyArray<string>
  ) => Effect.Effect<ReadonlyMap<string, Collation.Outcome>, never, R>
  /** The record of a sample from its outcome. */
  readonly record: (
    pending: Pending,
    outcome: Collation.Outcome,
    found: Found
  ) => Effect.Effect<Model.SampleRecord, never, R>
  /** Stores a round's records, which replace error records. */
  readonly store: (records: ReadonlyArray<Model.SampleRecord>) => Effect.Effect<void, HoldoutError.StoreError, R>
}

/**
 * The number of the next infra-retry round's directory: the rounds already in `runDir`, plus one
 * (or the first free number after it, should a directory have been removed in between).
 */
const nextRetryDir = (fs: FileSystem.FileSystem, runDir: string) =>
  Effect.map(
    fs.readDirectory(runDir).pipe(Effect.orElseSucceed(() => [])),
    (entries) => {
      const rounds = new Set(entries.filter((entry) => /^jobs-infra-retry-\d+$/.test(entry)))
      let number = rounds.size + 1
      while (rounds.has(`jobs-infra-retry-${number}`)) number++
      return number
    }
  )

/** Runs the infra-retry rounds of `entries`, whose outcomes in the run's own round were `first`. */
export const infraRetry = <R>(
  retry: Retry<R>,
  entries: ReadonlyArray<Pending>,
  first: ReadonlyMap<string, Collation.Outcome>
): Effect.Effect<void, HoldoutError.StrategyError | HoldoutError.StoreError, R | FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const { config, runId } = retry
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const current = new Map(first)
    const discarded = new Map<string, ReadonlyArray<ReadonlyArray<string>>>()
    for (let round = 1; round <= config.infraRetryRounds; round++) {
      const again = entries.filter((entry) =>
        Collation.diedOfInfra(current.get(entry.task.resultKey)!, config.rewardKey)
      )
      if (again.length === 0) return
      const wait = config.infraRetryDelaySeconds * round
      yield* Effect.logInfo(
        `Harbor: ${again.length} sample(s) of run ${runId} died of infrastructure failures only; ` +
          `infra-retry round ${round} of ${config.infraRetryRounds} in ${wait} s`
      )
      yield* Effect.sleep(Duration.seconds(wait))
      const number = yield* nextRetryDir(fs, retry.runDir)
      const retryDir = path.join(retry.runDir, `jobs-infra-retry-${number}`)
      yield* fs.makeDirectory(retryDir, { recursive: true }).pipe(Effect.mapError(ioFailure(`create ${retryDir}`)))
      const ran = yield* Effect.either(retry.runRound(again, retryDir, `infra-retry-${number}`))
      if (Either.isLeft(ran)) {
        yield* Effect.logWarning(
          `Harbor infra-retry round ${round} of run ${runId} could not run; the samples keep their errors: ` +
            ran.left.message
        )
        return
      }
      const outcomes = yield* retry.collate(retryDir, again.map((entry) => entry.task.resultKey))
      // a sample this round left without a trial keeps its error (and may be retried again)
      const answered = again.filter((entry) => outcomes.get(entry.task.resultKey)!.trials > 0)
      if (answered.length === 0) {
        yield* Effect.logWarning(
          `Harbor infra-retry round ${round} of run ${runId} produced no trial for its ` +
            `${again.length} sample(s); they keep their errors`
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
        return retry.record(entry, outcome, {
          jobsDir: retryDir,
          startedAt: retry.startedAt,
          finishedAt,
          ...(outcome.error === undefined
            ? { extra: { infraRetry: { recoveredRound: round, discardedRounds: rounds } } }
            : {})
        })
      }, { concurrency: 16 })
      yield* retry.store(records)
      yield* Effect.logInfo(
        `Harbor infra-retry round ${round} of run ${runId}: ` +
          `${records.filter((sample) => !Metrics.isError(sample)).length} of ${again.length} sample(s) recovered`
      )
    }
  })
