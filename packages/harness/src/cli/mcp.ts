/**
 * `holdout mcp`: the optimizer's operations as MCP tools over stdio, for a coding agent.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { handled } from "./errors.js"
import * as Shared from "./shared.js"

export const command = Command.make(
  "mcp",
  { config: Options.optional(Shared.config), url: Shared.url },
  (options) =>
    handled(Effect.gen(function*() {
      // the MCP server and @effect/ai load with this command only
      const Mcp = yield* Effect.promise(() => import("../Mcp.js"))
      // in process over the stack of -c, else a client of the sidecar at --url (or $HOLDOUT_URL)
      return Option.isSome(options.config)
        ? yield* Mcp.serve(options.config.value)
        : yield* Mcp.serveRemote(options.url)
    }))
).pipe(
  Command.withDescription(Shared.describedWith(
    "Serve a coding agent MCP tools over stdio (eval, status, submit, runs, show): through the sidecar at --url " +
      "(default $HOLDOUT_URL), or in process over the stack of -c holdout.yaml.",
    ["mcp", "mcp --url http://127.0.0.1:8000", "mcp -c holdout.yaml"]
  ))
)
