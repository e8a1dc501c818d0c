#!/usr/bin/env node
/**
 * The `holdout` executable: `holdout …` once installed (`dist/bin.js`), `npm run holdout -- …` from
 * the sources on Node, `deno run -A --sloppy-imports --conditions @holdout/source
 * packages/harness/src/bin.ts …` on Deno.
 *
 * Ctrl-C (or SIGTERM) interrupts the command, so its finalizers run (a strategy's nested processes
 * are stopped) before the process exits with code 130.
 *
 * @since 0.1.0
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
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

/**
 * A defect (what no command expected, e.g. a native module that does not load) as one line, with
 * what to do when it is known.
 */
const defectLine = (cause: Cause.Cause<unknown>): string => {
  const defect = Cause.squash(cause)
  const text = defect instanceof Error ? `${defect.name}: ${defect.message}` : String(defect)
  const line = text.split("\n")[0]!
  return /bindings file/.test(line) && /better_sqlite3/.test(text)
    ? "better-sqlite3 is not built (its bindings file is missing): allow its install script, " +
      "`npm install-scripts approve better-sqlite3 && npm rebuild better-sqlite3`, or use another store kind"
    : line
}

NodeRuntime.runMain(
  main(process.argv).pipe(
    Effect.tapDefect((cause) => Console.error(`error: ${defectLine(cause)}`)),
    Effect.provide(NodeContext.layer),
    Effect.provide(Logger.minimumLogLevel(logLevel(process.env["HOLDOUT_LOG"]))),
    // logs go to stderr: stdout is the commands' output (`--json` is parsed by programs)
    Effect.provide(Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger)))
  ),
  {
    // the command line has already said what was wrong (usage errors, with the help)
    disableErrorReporting: true,
    disablePrettyLogger: true,
    teardown: (exit, onExit) => onExit(Exit.isSuccess(exit) ? 0 : Cause.isInterruptedOnly(exit.cause) ? 130 : 1)
  }
)
