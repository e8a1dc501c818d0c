/**
 * How `run` and `resume` print an experiment: its summary line and, when the split is viewable, the
 * first page of its samples.
 */
import { Engine, type HoldoutError, type Model, type SplitAccess, View } from "@holdout/core"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { meanOf, plural, toldOf } from "./format.js"

/** How many samples `run` and `resume` print of a viewable run (the rest are in the store). */
const printedSamples = 20

export const printExperiment = (
  experiment: Model.Experiment,
  admin: boolean
): Effect.Effect<
  void,
  HoldoutError.InvalidRequest | HoldoutError.StoreError,
  Engine.Engine | SplitAccess.SplitAccess
> =>
  Effect.gen(function*() {
    const { metrics, run } = experiment
    const where = `run ${run.runId}: ${run.candidate.id} on ${run.datasetId}/${run.split} ${run.status}`
    // an optimizer's run told through a release mechanism shows what it was told, as the sidecar would
    if (!admin && experiment.release !== undefined) {
      return yield* Console.log(`${where}, ${toldOf(experiment.release)} (the exact mean is withheld)`)
    }
    yield* Console.log(
      `${where}, ${meanOf(metrics)} over ${plural(metrics.numSamples, "sample")} (${
        plural(metrics.numErrors, "error")
      })`
    )
    const viewable = admin ||
      Option.exists(yield* Effect.option(View.experiment(experiment)), (projected) => projected._tag === "viewable")
    if (!viewable) return
    // one page, a sample more than is printed, to know whether there are more
    const engine = yield* Engine.Engine
    const page = yield* engine.samples(run.runId, { limit: printedSamples + 1 })
    for (const sample of page.slice(0, printedSamples)) {
      yield* Console.log(
        `  ${String(sample.sampleId).padStart(5)}  ${sample.score === undefined ? "-" : sample.score}` +
          `${sample.error === undefined ? "" : `  error: ${sample.error.split("\n")[0]}`}`
      )
    }
    if (metrics.numSamples > printedSamples) {
      yield* Console.log(`  … ${metrics.numSamples - printedSamples} more (holdout show ${run.runId} -c …)`)
    }
  })
