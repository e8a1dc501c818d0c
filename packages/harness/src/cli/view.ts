/**
 * `holdout view`: a read-only web viewer of the stack's runs, scores, budgets and verifier, live.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import { handled } from "./errors.js"
import * as Shared from "./shared.js"

export const command = Command.make(
  "view",
  {
    ...Shared.stackOptions,
    port: Options.integer("port").pipe(
      Options.withDefault(8090),
      Options.withDescription("The port on 127.0.0.1 to serve the viewer on (0 picks a free one).")
    )
  },
  (options) =>
    handled(
      Effect.promise(() => import("../Viewer.js")).pipe(
        Effect.flatMap((Viewer) => Viewer.launch({ port: options.port })),
        Effect.provide(Shared.stackOf(options.config, options.stack))
      )
    )
).pipe(
  Command.withDescription(Shared.describedWith(
    "A read-only web viewer of the stack's runs, scores, budgets and verifier, live; on 127.0.0.1 only.",
    ["view -c holdout.yaml", "view -c holdout.yaml --port 0"]
  ))
)
