/**
 * A sample's record from the collated outcome of its trials, with what the levers add: the detail of
 * its attempts (`exposeAttemptDetail`, `output.attempts`) and, for a failed sample, the end of its
 * agent's transcript as its feedback (`feedbackTranscripts`, read by `HarborTranscript`). Both levers
 * are off by default.
 *
 * @internal
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import { EvalStrategy, type Model } from "@holdout/core"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Collation from "../Collation.js"
import type * as HarborConfig from "../HarborConfig.js"
import type { HarborTask } from "../HarborDataset.js"
import * as HarborTranscript from "../HarborTranscript.js"

/** A sample the strategy still has to produce, with the Harbor task its dataset row names. */
export interface Pending {
  readonly sampleId: number
  readonly task: HarborTask
}

/** Where and when a sample's outcome was found, and what its record adds to it. */
export interface Found {
  /** The jobs directory the outcome's trials are in (where its transcripts are read from). */
  readonly jobsDir: string
  readonly startedAt: number
  readonly finishedAt: number
  /** Appended to the outcome's error, if it has one. */
  readonly note?: string
  /** Joins the record's output. */
  readonly extra?: Record<string, unknown>
}

/** The record of a sample from its outcome, with what the levers of `config` add. */
export const record = (
  config: HarborConfig.HarborConfig,
  plan: EvalStrategy.RunPlan,
  pending: Pending,
  outcome: Collation.Outcome,
  found: Found
): Effect.Effect<Model.SampleRecord, never, FileSystem.FileSystem | Path.Path> =>
  Effect.map(
    config.feedbackTranscripts
      ? HarborTranscript.feedback({
        outcome,
        jobsDir: found.jobsDir,
        maxBytes: config.feedbackMaxBytes,
        rewardKey: config.rewardKey
      })
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
