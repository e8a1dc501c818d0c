/**
 * `holdout samples`: a viewable run's per-sample results through the sidecar, in pages.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { handled } from "./errors.js"
import { remoteSamples } from "./eval.js"
import * as Shared from "./shared.js"

export const command = Command.make(
  "samples",
  {
    url: Shared.url,
    runId: Args.text({ name: "run-id" }).pipe(Args.withDescription("A run an eval of yours made (its run id).")),
    after: Options.integer("after").pipe(
      Options.optional,
      Options.withDescription("Start after this sample id (the cursor printed after the previous page).")
    ),
    limit: Options.integer("limit").pipe(
      Options.withDefault(100),
      Options.withDescription("Samples per page (1 to 1000).")
    ),
    all: Options.boolean("all").pipe(Options.withDescription("Every page, not only the first."))
  },
  (options) =>
    handled(
      Effect.gen(function*() {
        const api = yield* Shared.client(options.url)
        // one JSON line per sample; without --all, one page and the cursor of the next
        if (options.all) {
          return yield* Stream.runForEach(
            remoteSamples(api, options.runId, options.after, options.limit),
            (sample) => Console.log(JSON.stringify(sample))
          )
        }
        const page = yield* api.agent.samples({
          path: { runId: options.runId },
          urlParams: {
            limit: options.limit,
            ...Option.match(options.after, { onNone: () => ({}), onSome: (after) => ({ after }) })
          }
        })
        for (const sample of page.samples) yield* Console.log(JSON.stringify(sample))
        if (page.next !== null) yield* Console.error(`next page: --after ${page.next}`)
      }).pipe(Effect.provide(Shared.clientLayer))
    )
).pipe(
  Command.withDescription(Shared.describedWith(
    "The per-sample results of a viewable run through the sidecar, one JSON line each, in pages.",
    ["samples cli-2f0c…", "samples cli-2f0c… --limit 20 --after 19", "samples cli-2f0c… --all"]
  ))
)
