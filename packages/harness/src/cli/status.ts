/**
 * `holdout status`: the splits the optimizer may evaluate, with their budgets left.
 */
import * as Command from "@effect/cli/Command"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { handled } from "./errors.js"
import { plural, table } from "./format.js"
import * as Shared from "./shared.js"

const left = (remaining: number | null, unit: string) => remaining === null ? "unlimited" : plural(remaining, unit)

export const command = Command.make("status", { url: Shared.url, json: Shared.json }, (options) =>
  handled(
    Effect.gen(function*() {
      const api = yield* Shared.client(options.url)
      const reply = yield* api.agent.status()
      if (options.json) return yield* Console.log(JSON.stringify(reply, null, 2))
      yield* Console.log(table(
        [{ header: "split" }, { header: "tier" }, { header: "runs left", right: true }, {
          header: "samples left",
          right: true
        }, { header: "overfitting budget left" }],
        reply.splits.map((split) => [
          `${split.datasetId}/${split.split}`,
          split.tier,
          left(split.remaining.runs, "run"),
          left(split.remaining.samples, "sample"),
          split.overfit === undefined
            ? ""
            : `${split.overfit.remaining ?? "unlimited"} of ${split.overfit.limit ?? "unlimited"}`
        ])
      ))
      for (const split of reply.splits) {
        if (split.reserved === undefined) continue
        yield* Console.log(
          `\n${split.datasetId}/${split.split}: ${plural(split.reserved.runs, "run")} and ` +
            `${plural(split.reserved.samples, "sample")} left in reserve for the verifier's finalize`
        )
      }
      const free = reply.splits.filter((split) => split.freeBaseline !== undefined)
      if (free.length > 0) {
        const open = free.filter((split) => split.freeBaseline === true)
        yield* Console.log(
          `\nfree baseline evaluation ${
            open.length === 0
              ? "used on every split"
              : `left on ${open.map((split) => `${split.datasetId}/${split.split}`).join(", ")}`
          }`
        )
      }
      yield* Console.log(`\nsubmissions ${reply.submitEnabled ? "enabled" : "disabled"}`)
    }).pipe(Effect.provide(Shared.clientLayer))
  )).pipe(
    Command.withDescription(Shared.describedWith(
      "The splits the optimizer may evaluate, with their budgets left (and a thresholdout split's overfitting budget, " +
        "the reserve held for the verifier, and whether the baseline's free evaluation is left).",
      ["status", "status --json"]
    ))
  )
