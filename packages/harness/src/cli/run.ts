/**
 * `holdout run`: one evaluation of the configured stack, charged, with a progress bar.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Engine } from "@holdout/core"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { handled } from "./errors.js"
import { printExperiment } from "./print.js"
import * as Shared from "./shared.js"

export const command = Command.make(
  "run",
  {
    ...Shared.stackOptions,
    dataset: Shared.dataset,
    split: Shared.split,
    candidate: Options.text("candidate").pipe(
      Options.withDescription("The candidate's id (a commit for git workspaces).")
    ),
    sampleIds: Shared.sampleIds,
    numSamples: Shared.numSamples,
    key: Options.text("key").pipe(
      Options.optional,
      Options.withDescription("An idempotency key: the same key returns the same run, charged once.")
    ),
    admin: Options.boolean("admin").pipe(Options.withDescription("Evaluate as the verifier: no tier gate, no charge."))
  },
  (options) =>
    handled(
      Effect.gen(function*() {
        const selection = yield* Shared.sampleSelection(options.sampleIds, options.numSamples)
        yield* Shared.checkSplit(options.dataset, options.split)
        const engine = yield* Engine.Engine
        const key = Option.getOrElse(options.key, () => `cli-${crypto.randomUUID()}`)
        const runId = Engine.runIdForKey(key, { admin: options.admin })
        const evaluated = engine.evaluate({
          datasetId: options.dataset,
          split: options.split,
          candidate: { id: options.candidate },
          idempotencyKey: key,
          ...selection
        }, { admin: options.admin })
        const experiment = yield* Shared.withProgress(runId, evaluated).pipe(
          Shared.sayOnInterrupt(() => [
            `\ninterrupted: run ${runId} is unfinished (its charge stands).`,
            `finish it without a new charge: holdout resume ${
              Option.match(options.config, { onNone: () => "--stack …", onSome: (file) => `-c ${file}` })
            } ${runId}`
          ])
        )
        yield* printExperiment(experiment, options.admin)
      }).pipe(Effect.provide(Shared.stackOf(options.config, options.stack)))
    )
).pipe(
  Command.withDescription(Shared.describedWith(
    "Evaluate a candidate on a split of the configured stack, charging its budget; a progress bar shows both " +
      "stages. Ctrl-C prints the run id and the command that finishes the run.",
    [
      "run -c holdout.yaml --dataset sums --split train --candidate careful",
      "run -c holdout.yaml --dataset sums --split train --candidate careful --sample-ids 0,3,7",
      "run -c holdout.yaml --dataset sums --split test --candidate careful --admin"
    ]
  ))
)
