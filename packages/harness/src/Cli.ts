/**
 * The `holdout` command line: the root command and the list of its subcommands, each in a file of
 * its own under `cli/` (options they share are defined once, in `cli/shared.ts`).
 *
 * - For whoever runs the stack: `init` (a project that runs as it is), `run` (one evaluation, with
 *   progress), `race`, `resume`, `runs` (every run), `show <run>` (one run as its tier shows it),
 *   `serve` (the sidecar), `report` (tables, CSV, JSON, a self-contained HTML page), `view` (a live
 *   read-only web viewer on 127.0.0.1).
 * - For the optimizer, clients of the sidecar (`--url`, else `HOLDOUT_URL`, else
 *   `http://127.0.0.1:8000`): `eval` (`--async`: a job, whose result `job <id> --wait` gets), `samples`, `compare`, `status`, `submit`; and `mcp`, the same
 *   operations as MCP tools over stdio for a coding agent (through the sidecar, or in process with `-c`).
 * - For the verifier: `finalize`.
 * - For Harbor: `harbor build` compiles an optimization into a Harbor task, `harbor run` also runs it.
 *
 * Shared options are spelled once but given on each subcommand, not on the root: @effect/cli reads
 * a parent's options only before the subcommand's name (or after all of the subcommand's), so
 * `holdout eval --url … --split …` would fail if `--url` were the root's.
 *
 * Every failure is one line on stderr, `error: …`, and exit code 1: never a stack trace. Logs go to
 * stderr at the level `HOLDOUT_LOG` gives (`debug`, `info`, `warning`, `error`; default `warning`).
 *
 * @since 0.1.0
 */
import * as CliConfig from "@effect/cli/CliConfig"
import * as Command from "@effect/cli/Command"
import * as Descriptor from "@effect/cli/CommandDescriptor"
import * as HelpDoc from "@effect/cli/HelpDoc"
import type * as Span from "@effect/cli/HelpDoc/Span"
import * as Usage from "@effect/cli/Usage"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Compare from "./cli/compare.js"
import * as Eval from "./cli/eval.js"
import * as Finalize from "./cli/finalize.js"
import * as Harbor from "./cli/harbor.js"
import * as Init from "./cli/init.js"
import * as Job from "./cli/job.js"
import * as Mcp from "./cli/mcp.js"
import * as Race from "./cli/race.js"
import * as Report from "./cli/report.js"
import * as Resume from "./cli/resume.js"
import * as Run from "./cli/run.js"
import * as Runs from "./cli/runs.js"
import * as Samples from "./cli/samples.js"
import * as Serve from "./cli/serve.js"
import * as Show from "./cli/show.js"
import * as Status from "./cli/status.js"
import * as Submit from "./cli/submit.js"
import * as View from "./cli/view.js"
import { version } from "./version.js"

/**
 * The subcommands, in the order `holdout --help` lists them. A new command is a file under `cli/`
 * exporting `command`, added here.
 *
 * @since 0.1.0
 * @category commands
 */
export const subcommands = [
  Init.command,
  Run.command,
  Runs.command,
  Show.command,
  Resume.command,
  Race.command,
  Report.command,
  View.command,
  Serve.command,
  Mcp.command,
  Eval.command,
  Job.command,
  Samples.command,
  Compare.command,
  Status.command,
  Submit.command,
  Finalize.command,
  Harbor.command
] as const

/**
 * The `holdout` command.
 *
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make("holdout").pipe(
  Command.withDescription(
    "Metered, visibility-controlled evaluation: every evaluation is charged to its split's budget, and the " +
      "optimizer sees only what each split's tier allows."
  ),
  Command.withSubcommands(subcommands)
)

/** The type descriptions @effect/cli puts before every option's own ("A user-defined piece of text."). */
const typeFiller =
  /^(A user-defined piece of text( that is confidential)?|An? (existing )?(file|directory)( or directory)?( that must (not )?exist)?|An integer|A floating point number|A true or false value|A date|This setting is optional)\.?$/

const spanText = (span: Span.Span): string => {
  switch (span._tag) {
    case "Text":
    case "URI":
      return span.value
    case "Highlight":
    case "Weak":
    case "Strong":
      return spanText(span.value)
    case "Sequence":
      return spanText(span.left) + spanText(span.right)
  }
}

/** A help document without the type filler of its options. */
const withoutFiller = (doc: HelpDoc.HelpDoc): HelpDoc.HelpDoc => {
  switch (doc._tag) {
    case "Sequence": {
      const left = withoutFiller(doc.left)
      const right = withoutFiller(doc.right)
      return HelpDoc.isEmpty(left) ? right : HelpDoc.isEmpty(right) ? left : HelpDoc.sequence(left, right)
    }
    case "Paragraph":
      return typeFiller.test(spanText(doc.value).trim()) ? HelpDoc.empty : doc
    case "DescriptionList":
      return HelpDoc.mapDescriptionList(doc, (span, definition) => [span, withoutFiller(definition)])
    default:
      return doc
  }
}

const plainText = (text: string) =>
  // eslint-disable-next-line no-control-regex
  process.stdout.isTTY === true ? text : text.replace(/\u001b\[[0-9;]*m/g, "")

/** A command's usage line: its name, then its options and arguments. */
const usageOf = (subcommand: Described): string =>
  spanText(HelpDoc.getSpan(Usage.getHelp(Descriptor.getUsage(subcommand.descriptor))))

/** What the help needs of a command: its descriptor. */
interface Described {
  readonly descriptor: Descriptor.Command<unknown>
}

/** A command's help document. */
const helpDocOf = (subcommand: Described): HelpDoc.HelpDoc =>
  Descriptor.getHelp(subcommand.descriptor, { ...CliConfig.defaultConfig, showBuiltIns: false })

/** `holdout <command> --help`: usage with the executable's name, the description, examples, options. */
const helpOf = (name: string, child?: string): string | undefined => {
  const named = (candidates: ReadonlyArray<Described>, wanted: string) =>
    candidates.find((candidate) => usageOf(candidate).split(" ")[0] === wanted)
  const parent = named(subcommands as ReadonlyArray<Described>, name)
  if (parent === undefined) return undefined
  // `holdout harbor build --help`: the help of a command's own subcommand
  const nested = child === undefined ? undefined : named(nestedCommands[name] ?? [], child)
  const subcommand = nested ?? parent
  const usage = nested === undefined ? usageOf(parent) : `${name} ${usageOf(nested)}`
  const help = withoutFiller(helpDocOf(subcommand))
  return HelpDoc.toAnsiText(HelpDoc.blocks([HelpDoc.h1("USAGE"), HelpDoc.p(`$ holdout ${usage}`), help]))
}

/** The subcommands of commands that have some, by the command's name. */
const nestedCommands: Readonly<Record<string, ReadonlyArray<Described>>> = { harbor: Harbor.subcommands }

/** `holdout --help`: what it is, and each command in a line. */
const rootHelp = (): string => {
  const rows = (subcommands as ReadonlyArray<Described>).map((subcommand) => {
    const name = usageOf(subcommand).split(" ")[0] ?? ""
    return [name, summaryOf(helpDocOf(subcommand))] as const
  })
  const width = Math.max(...rows.map(([name]) => name.length))
  return [
    `holdout ${version}`,
    "",
    "Metered, visibility-controlled evaluation: every evaluation is charged to its split's budget, and the",
    "optimizer sees only what each split's tier allows.",
    "",
    "USAGE",
    "  $ holdout <command> [options]      holdout <command> --help shows a command's options and examples",
    "",
    "COMMANDS",
    ...rows.map(([name, summary]) => `  ${name.padEnd(width)}  ${summary}`),
    "",
    "EXAMPLES",
    "  $ holdout init",
    "  $ holdout run -c holdout.yaml --dataset sums --split train --candidate careful",
    "  $ holdout serve -c holdout.yaml",
    "  $ holdout eval --dataset sums --split validation --candidate careful",
    "",
    "ENVIRONMENT",
    "  HOLDOUT_URL   the sidecar's address for eval, samples, compare, status, submit, finalize, mcp",
    "  HOLDOUT_LOG   debug, info, warning (default) or error: what is logged on stderr",
    ""
  ].join("\n")
}

/** The first sentence-paragraph of a command's description. */
const summaryOf = (doc: HelpDoc.HelpDoc): string => {
  const paragraphs: Array<string> = []
  const walk = (node: HelpDoc.HelpDoc): void => {
    if (node._tag === "Sequence") {
      walk(node.left)
      walk(node.right)
    } else if (node._tag === "Paragraph") paragraphs.push(spanText(node.value))
  }
  walk(doc)
  const first = paragraphs.find((text) => text.trim().length > 0 && !text.trim().startsWith("$"))?.trim() ?? ""
  // its first sentence or clause, for a line of the command list
  return first.split(/(?<=[.;:])\s/)[0]!.replace(/[;:]$/, ".")
}

/** `HOLDOUT_LOG`: the least level logged (default warning); an unknown level is a one-line error. */
const logLevel = Config.literal("debug", "info", "warning", "error")("HOLDOUT_LOG").pipe(
  Config.withDefault("warning" as const),
  Config.map((name) =>
    name === "debug" ? LogLevel.Debug : name === "info" ? LogLevel.Info : name === "error" ?
      LogLevel.Error
      : LogLevel.Warning
  )
)

/**
 * Logging for the command line: on stderr (stdout is the commands' output, which programs parse),
 * as logfmt, from the level `HOLDOUT_LOG` gives.
 *
 * @since 0.1.0
 * @category layers
 */
export const logging = Layer.unwrapEffect(
  Effect.map(
    logLevel,
    (level) =>
      Layer.merge(
        Logger.minimumLogLevel(level),
        Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger))
      )
  )
)

const run = Command.run(command, { name: "holdout", version })

/**
 * Runs the command line on the given arguments (`process.argv`).
 *
 * @since 0.1.0
 * @category commands
 */
export const main = (argv: ReadonlyArray<string>) => {
  const args = argv.slice(2)
  const wantsHelp = args.includes("--help") || args.includes("-h")
  if (wantsHelp || args.length === 0) {
    const [name, child] = args.filter((arg) => !arg.startsWith("-"))
    const text = name === undefined ? rootHelp() : helpOf(name, child)
    if (text !== undefined) return Console.log(plainText(text))
  }
  return run(argv).pipe(
    Effect.provide(logging),
    Effect.catchIf(ConfigError.isConfigError, (error) =>
      Effect.zipRight(
        Console.error(`error: ${String(error).split("\n")[0]} (HOLDOUT_LOG is debug, info, warning or error)`),
        Effect.sync(() => {
          process.exitCode = 1
        })
      ))
  )
}
