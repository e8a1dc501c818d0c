/**
 * The `holdout` executable: `tsx packages/harness/src/bin.ts …` on Node,
 * `deno run -A --sloppy-imports packages/harness/src/bin.ts …` on Deno.
 *
 * @since 0.1.0
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { main } from "./Cli.js"

/** `HOLDOUT_LOG=debug|info|warning|error` (default warning). */
const logLevel = (name: string | undefined): LogLevel.LogLevel =>
  name === "debug"
    ? LogLevel.Debug
    : name === "info"
    ? LogLevel.Info
    : name === "error"
    ? LogLevel.Error
    : LogLevel.Warning

Effect.runPromise(
  main(process.argv).pipe(
    Effect.provide(NodeContext.layer),
    Effect.provide(Logger.minimumLogLevel(logLevel(process.env["HOLDOUT_LOG"]))),
    // logs go to stderr: stdout is the commands' output (`--json` is parsed by programs)
    Effect.provide(Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger)))
  )
).catch(() => {
  // the command line has already said what was wrong (usage errors, with the help)
  process.exitCode = 1
})
