/**
 * `holdout submit`: the optimizer's final candidate.
 */
import * as Command from "@effect/cli/Command"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { handled } from "./errors.js"
import * as Shared from "./shared.js"

export const command = Command.make(
  "submit",
  { url: Shared.url, ...Shared.candidateOptions },
  (options) =>
    handled(
      Effect.gen(function*() {
        const candidate = yield* Shared.candidateOf(options.candidate, options.commit)
        const api = yield* Shared.client(options.url)
        const reply = yield* api.agent.submit({ payload: { candidate } })
        yield* Console.log(`submitted ${reply.submitted.id} (final)`)
      }).pipe(Effect.provide(Shared.clientLayer))
    )
).pipe(
  Command.withDescription(Shared.describedWith(
    "Submit the final candidate; it must have been evaluated, and a submission is final.",
    ["submit --candidate careful", "submit --commit HEAD"]
  ))
)
