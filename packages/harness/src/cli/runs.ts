/**
 * `holdout runs`: every stored run, newest last: status, split, candidate, mean ± interval, errors
 * and whether it was charged.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { type Model, TaskStore } from "@holdout/core"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { handled } from "./errors.js"
import { csv, meanPlusMinus, table } from "./format.js"
import * as Shared from "./shared.js"

/** What `runs` lists of a run. */
export interface Listed {
  readonly runId: string
  readonly status: Model.RunStatus
  readonly datasetId: string
  readonly split: string
  readonly candidate: string
  readonly admin: boolean
  readonly samples: number
  readonly mean: number | null
  readonly interval: Model.Interval | null
  readonly errors: number | null
  /** Whether the run was charged to a budget (the verifier's runs are not). */
  readonly charged: boolean
  readonly createdAt: number
}

/** A run as listed: the operator's view, exact means; a non_viewable run's interval at block level. */
export const listed = (run: Model.RunRecord): Listed => {
  const metrics = run.metrics
  const spread = metrics?.blocks ?? metrics
  return {
    runId: run.runId,
    status: run.status,
    datasetId: run.datasetId,
    split: run.split,
    candidate: run.candidate.id,
    admin: run.admin,
    samples: run.sampleIds.length,
    mean: metrics?.avgFilledScore ?? null,
    interval: spread?.interval ?? null,
    errors: metrics?.numErrors ?? run.progress?.errors ?? null,
    charged: run.reservationId !== undefined,
    createdAt: run.createdAt
  }
}

const statuses = ["pending", "running", "completed", "failed"] as const

export const command = Command.make(
  "runs",
  {
    ...Shared.stackOptions,
    split: Options.text("split").pipe(Options.optional, Options.withDescription("Only the runs of this split.")),
    candidate: Options.text("candidate").pipe(
      Options.optional,
      Options.withDescription("Only the runs of this candidate.")
    ),
    status: Options.choice("status", statuses).pipe(
      Options.optional,
      Options.withDescription("Only the runs of this status (running: the ones `holdout resume` finishes).")
    ),
    ...Shared.formats
  },
  (options) =>
    handled(
      Effect.gen(function*() {
        yield* Shared.oneFormat(options)
        const store = yield* TaskStore.TaskStore
        const keep = (run: Model.RunRecord) =>
          Option.getOrElse(Option.map(options.split, (split) => run.split === split), () => true) &&
          Option.getOrElse(Option.map(options.candidate, (candidate) => run.candidate.id === candidate), () => true) &&
          Option.getOrElse(Option.map(options.status, (status) => run.status === status), () => true)
        const runs = (yield* store.listRuns()).filter(keep).map(listed).sort((a, b) => a.createdAt - b.createdAt)
        if (options.json) return yield* Console.log(JSON.stringify(runs, null, 2))
        if (options.csv) {
          return yield* Console.log(csv(
            [
              "runId",
              "status",
              "datasetId",
              "split",
              "candidate",
              "admin",
              "samples",
              "mean",
              "lower",
              "upper",
              "errors",
              "charged",
              "createdAt"
            ],
            runs.map((run) => [
              run.runId,
              run.status,
              run.datasetId,
              run.split,
              run.candidate,
              run.admin,
              run.samples,
              run.mean,
              run.interval?.lower,
              run.interval?.upper,
              run.errors,
              run.charged,
              new Date(run.createdAt).toISOString()
            ])
          ))
        }
        if (runs.length === 0) return yield* Console.log("(no runs)")
        yield* Console.log(table(
          [
            { header: "run" },
            { header: "status" },
            { header: "split" },
            { header: "candidate" },
            { header: "samples", right: true },
            { header: "mean ± 95%", right: true },
            { header: "errors", right: true },
            { header: "charged" }
          ],
          runs.map((run) => [
            run.runId,
            run.status,
            `${run.datasetId}/${run.split}${run.admin ? " (verifier)" : ""}`,
            run.candidate,
            String(run.samples),
            run.mean === null ? "-" : meanPlusMinus(run.mean, run.interval),
            run.errors === null ? "-" : String(run.errors),
            run.charged ? "yes" : "no"
          ])
        ))
      }).pipe(Effect.provide(Shared.stackOf(options.config, options.stack)))
    )
).pipe(
  Command.withDescription(Shared.describedWith(
    "Every stored run, oldest first: status, split, candidate, mean ± half the 95% interval, errors, charged.",
    ["runs -c holdout.yaml", "runs -c holdout.yaml --status running", "runs -c holdout.yaml --split train --json"]
  ))
)
