/**
 * The `holdout` executable: `tsx packages/harness/src/bin.ts …` on Node,
 * `deno run -A --sloppy-imports packages/harness/src/bin.ts …` on Deno. `NodeRuntime.runMain`
 * turns Ctrl-C into an interrupt, so that finalizers run (a nested process is ended, an interrupted
 * run says how to resume it).
 *
 * @since 0.1.0
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { main } from "./Cli.js"

main(process.argv).pipe(
  Effect.provide(NodeContext.layer),
  // the command line has already said what was wrong (usage errors, with the help)
  Effect.catchAll(() =>
    Effect.sync(() => {
      process.exitCode = 1
    })
  ),
  NodeRuntime.runMain({
    disableErrorReporting: true,
    disablePrettyLogger: true,
    // Ctrl-C ends with 130, as shells expect of an interrupted command (the default would be 0)
    teardown: (exit, onExit) =>
      onExit(
        Exit.isFailure(exit)
          ? Cause.isInterruptedOnly(exit.cause) ? 130 : 1
          : typeof process.exitCode === "number"
          ? process.exitCode
          : 0
      )
  })
)
