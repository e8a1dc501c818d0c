#!/usr/bin/env node
/**
 * The `holdout` executable: `holdout …` once installed (`dist/bin.js`), `npm run holdout -- …` from
 * the sources on Node, `deno run -A --sloppy-imports --conditions @holdout/source
 * packages/harness/src/bin.ts …` on Deno.
 *
 * `NodeRuntime.runMain` turns Ctrl-C (or SIGTERM) into an interrupt, so that the command's
 * finalizers run (a strategy's nested processes are stopped, an interrupted run says how to resume
 * it) before the process exits with code 130.
 *
 * @since 0.1.0
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { main } from "./Cli.js"

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

main(process.argv).pipe(
  Effect.tapDefect((cause) => Console.error(`error: ${defectLine(cause)}`)),
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
