/**
 * `holdout resume`: finishes an interrupted run without a new charge.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import { Engine } from "@holdout/core"
import * as Effect from "effect/Effect"
import { handled } from "./errors.js"
import { printExperiment } from "./print.js"
import * as Shared from "./shared.js"

export const command = Command.make(
  "resume",
  {
    ...Shared.stackOptions,
    runId: Args.text({ name: "run-id" }).pipe(Args.withDescription("The run to finish (`holdout runs` lists them)."))
  },
  (options) =>
    handled(
      Effect.gen(function*() {
        const engine = yield* Engine.Engine
        const experiment = yield* Shared.withProgress(options.runId, engine.resume(options.runId))
        yield* printExperiment(experiment, false)
      }).pipe(Effect.provide(Shared.stackOf(options.config, options.stack)))
    )
).pipe(
  Command.withDescription(Shared.describedWith(
    "Finish an interrupted run without a new charge.",
    ["runs -c holdout.yaml --status running", "resume -c holdout.yaml cli-2f0c…"]
  ))
)
