/**
 * `holdout job`: where an evaluation started with `holdout eval --async` is; with `--wait`, waits for
 * its end and prints its result as `eval` does.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { handled } from "./errors.js"
import { printReply } from "./eval.js"
import * as Shared from "./shared.js"

export const command = Command.make(
  "job",
  {
    url: Shared.url,
    jobId: Args.text({ name: "job-id" }).pipe(Args.withDescription("The job id `holdout eval --async` printed.")),
    wait: Options.boolean("wait").pipe(
      Options.withDescription("Wait until the job is over, then print its result (or fail with its error).")
    )
  },
  (options) =>
    handled(
      Effect.gen(function*() {
        const api = yield* Shared.client(options.url)
        const poll = api.agent.job({ path: { jobId: options.jobId } })
        let state = yield* poll
        // polled more slowly as the job lasts: every 200 ms at first, every 5 s at most
        for (let delay = 200; options.wait && state.status === "running"; delay = Math.min(delay * 1.5, 5000)) {
          yield* Effect.sleep(delay)
          state = yield* poll
        }
        if (state.status === "running") return yield* Console.log(`job ${state.jobId} running`)
        // the error the evaluation would have failed with, as `eval` prints it
        if (state.error !== undefined) return yield* Effect.fail(state.error)
        if (state.result === undefined) return yield* Console.log(`job ${state.jobId} ${state.status}`)
        yield* printReply(api, state.result)
      }).pipe(Effect.provide(Shared.clientLayer))
    )
).pipe(
  Command.withDescription(Shared.describedWith(
    "Where an evaluation started with `holdout eval --async` is; --wait waits for its result.",
    ["job key:job-1f0c… --wait", "job key:cli-5b2e…"]
  ))
)
