/**
 * What the commands share: their options (defined once here, so that every command spells and
 * documents them alike), the stack of a configuration file or module, the sidecar's client, the
 * candidate of a client command and the progress of a run.
 */
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as PlatformCommand from "@effect/platform/Command"
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Path from "@effect/platform/Path"
import { DatasetSource, HoldoutError, type Model, type Stack } from "@holdout/core"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { importModule } from "../internal/importModule.js"
import * as Progress from "../Progress.js"
import type * as StackConfig from "../StackConfig.js"
import { didYouMean, UsageError } from "./errors.js"

/**
 * The configuration module (its schemas, YAML, and through it the verifier, the stores and Harbor),
 * loaded when a command reads a configuration: `--help` and the sidecar's clients start without it.
 *
 * @since 0.1.0
 */
export const loadStackConfig: Effect.Effect<typeof StackConfig> = Effect.promise(() => import("../StackConfig.js"))

/** A command's description followed by examples, one `$ holdout …` line each. */
export const describedWith = (description: string, examples: ReadonlyArray<string>): HelpDoc.HelpDoc =>
  HelpDoc.blocks([
    HelpDoc.p(description),
    HelpDoc.h1("EXAMPLES"),
    ...examples.map((example) => HelpDoc.p(`  $ holdout ${example}`))
  ])

/** `-c, --config`: the stack's configuration file. */
export const config = Options.file("config", { exists: "yes" }).pipe(
  Options.withAlias("c"),
  Options.withDescription("The stack's configuration file (holdout.yaml, JSON or YAML).")
)

/** `--stack`: a module exporting the stack's Layer, instead of a configuration file. */
export const stackModule = Options.file("stack", { exists: "yes" }).pipe(
  Options.optional,
  Options.withDescription("A module whose default export is the stack's Layer (instead of --config).")
)

/** `-c` and `--stack`, either of which gives a command the stack. */
export const stackOptions = { config: Options.optional(config), stack: stackModule }

/** The sidecar's address: `--url`, else `HOLDOUT_URL`, else the default port on this machine. */
export const url = Options.text("url").pipe(
  Options.withFallbackConfig(Config.string("HOLDOUT_URL")),
  Options.withDefault("http://127.0.0.1:8000"),
  Options.withDescription("The sidecar's address (default: $HOLDOUT_URL, else http://127.0.0.1:8000).")
)

/** `--json`: the command's output as JSON, for programs. */
export const json = Options.boolean("json").pipe(Options.withDescription("Print JSON instead of a table."))

/** `--csv`: the command's rows as CSV. */
export const csvOption = Options.boolean("csv").pipe(Options.withDescription("Print CSV instead of a table."))

/** `--json` and `--csv`, for a command that prints a table, JSON or CSV. */
export const formats = { json, csv: csvOption }

/** `--json` with `--csv` is a usage error: a command prints one format. */
export const oneFormat = (
  options: { readonly json: boolean; readonly csv: boolean }
): Effect.Effect<void, UsageError> =>
  options.json && options.csv ? Effect.fail(new UsageError({ message: "--json and --csv: give one." })) : Effect.void

export const dataset = Options.text("dataset").pipe(Options.withDescription("The dataset id."))

export const split = Options.text("split").pipe(Options.withDescription("The split (e.g. train, validation)."))

export const sampleIds = Options.text("sample-ids").pipe(
  Options.optional,
  Options.withDescription("Comma-separated sample ids to evaluate, e.g. 0,3,7 (default: the whole split).")
)

export const numSamples = Options.integer("num-samples").pipe(
  Options.optional,
  Options.withDescription("Evaluate the first N samples of the split (whole blocks on a non_viewable split).")
)

/** `--candidate` and `--commit`, the candidate of an optimizer's command. */
export const candidateOptions = {
  candidate: Options.text("candidate").pipe(Options.optional, Options.withDescription("The candidate's id, as is.")),
  commit: Options.text("commit").pipe(
    Options.optional,
    Options.withDescription("A commit of the git repository here (HEAD, a branch, a hash), sent as its full hash.")
  )
}

/**
 * The sample ids of `--sample-ids`, each an integer: `1,2,x` is a `UsageError` naming `x`.
 *
 * @since 0.1.0
 */
export const parseSampleIds = (text: string): Either.Either<ReadonlyArray<number>, UsageError> => {
  const ids: Array<number> = []
  for (const part of text.split(",")) {
    const trimmed = part.trim()
    if (!/^\d+$/.test(trimmed)) {
      return Either.left(
        new UsageError({
          message: trimmed.length === 0
            ? `--sample-ids "${text}" has an empty entry: give integers, comma separated (e.g. 0,3,7).`
            : `\`${trimmed}\` is not a sample id (integers, comma separated, e.g. 0,3,7).`
        })
      )
    }
    ids.push(Number(trimmed))
  }
  return Either.right(ids)
}

/** The sample fields of a request from `--sample-ids` and `--num-samples`. */
export const sampleSelection = (
  ids: Option.Option<string>,
  count: Option.Option<number>
): Effect.Effect<{ readonly sampleIds?: ReadonlyArray<number>; readonly numSamples?: number }, UsageError> =>
  Effect.map(
    Option.match(ids, {
      onNone: () => Effect.succeed({}),
      onSome: (text) => Effect.map(parseSampleIds(text), (sampleIds) => ({ sampleIds }))
    }),
    (selection) =>
      Option.match(count, { onNone: () => selection, onSome: (numSamples) => ({ ...selection, numSamples }) })
  )

/**
 * The stack of a configuration file (with its verifier's needs), or the Layer a module exports.
 *
 * @since 0.1.0
 */
export const stackOf = (configFile: Option.Option<string>, module: Option.Option<string>) =>
  Layer.unwrapEffect(Effect.gen(function*() {
    if (Option.isSome(configFile) && Option.isNone(module)) {
      const StackConfig = yield* loadStackConfig
      return StackConfig.stack(yield* StackConfig.load(configFile.value))
    }
    if (Option.isSome(configFile) || Option.isNone(module)) {
      return yield* new UsageError({
        message: Option.isSome(configFile)
          ? "--config and --stack both given: give one of them."
          : "no stack given: pass -c holdout.yaml (or --stack <module>); `holdout init` writes a holdout.yaml."
      })
    }
    const path = yield* Path.Path
    const file = path.resolve(module.value)
    const exported = yield* importModule(file).pipe(
      Effect.mapError((error) =>
        new HoldoutError.ConfigError({ message: `Cannot load the stack module ${file}: ${String(error)}` })
      )
    )
    if (!Layer.isLayer(exported.default)) {
      return yield* new HoldoutError.ConfigError({
        message: `${file} must export a Layer of the stack's services as its default export (e.g. Stack.layerWith(…)).`
      })
    }
    // a module's layer is checked when it is built: a missing service is reported then
    return exported.default as Layer.Layer<Stack.Services, unknown>
  }))

/**
 * Checks, as the operator, that a dataset and split exist before anything is evaluated: a typo is
 * `UnknownSplit` (or an unknown dataset) with the closest name, not the tier gate's `AccessDenied`.
 *
 * @since 0.1.0
 */
export const checkSplit = (datasetId: string, splitName: string) =>
  Effect.gen(function*() {
    const source = yield* DatasetSource.DatasetSource
    const info = yield* source.info(datasetId).pipe(
      Effect.catchTag("InvalidRequest", (error) =>
        Effect.fail(new HoldoutError.InvalidRequest({ message: suggestDataset(error.message, datasetId) })))
    )
    const known = Object.keys(info.splits)
    if (!known.includes(splitName)) {
      return yield* new HoldoutError.UnknownSplit({ datasetId, split: splitName, known })
    }
  })

/**
 * An unknown dataset's error with the closest known name added.
 *
 * @since 0.1.0
 */
export const suggestDataset = (message: string, datasetId: string): string => {
  const known = /Known datasets: (.*)\.$/.exec(message)?.[1]?.split(", ") ?? []
  return message + didYouMean(datasetId, known)
}

/**
 * The HTTP client of the sidecar's clients: Node's `http` module, ready at start, where the global
 * `fetch` of Node 20 costs its first call some 100 ms of loading.
 *
 * @since 0.1.0
 */
export const clientLayer = NodeHttpClient.layer

/**
 * The sidecar's typed client (its API's schemas load with the first client).
 *
 * @since 0.1.0
 */
export const client = (baseUrl: string, token?: string) =>
  Effect.flatMap(Effect.promise(() => import("../SidecarApi.js")), ({ Api }) =>
    HttpApiClient.make(Api, {
      baseUrl,
      ...(token === undefined
        ? {}
        : { transformClient: HttpClient.mapRequest(HttpClientRequest.bearerToken(token)) })
    }))

/** A commit of the repository in the working directory, as a full hash. */
const resolveCommit = (ref: string) =>
  PlatformCommand.string(PlatformCommand.make("git", "rev-parse", "--verify", "--end-of-options", `${ref}^{commit}`))
    .pipe(
      Effect.map((text) => text.trim()),
      Effect.filterOrFail(
        (sha) => /^[0-9a-f]{40,64}$/.test(sha),
        () => new UsageError({ message: `"${ref}" is not a commit of the git repository here; pass --candidate <id>.` })
      ),
      Effect.catchIf(
        (error) => !(error instanceof UsageError),
        () => new UsageError({ message: `"${ref}" is not a commit of the git repository here; pass --candidate <id>.` })
      )
    )

/**
 * The candidate of an optimizer's command: `--candidate` as given, else `--commit` resolved by git.
 * One of them is required: an evaluation is charged, so it never guesses what to evaluate.
 *
 * @since 0.1.0
 */
export const candidateOf = (
  candidate: Option.Option<string>,
  commit: Option.Option<string>
): Effect.Effect<Model.Candidate, UsageError, CommandExecutor.CommandExecutor> => {
  if (Option.isSome(candidate) && Option.isSome(commit)) {
    return Effect.fail(new UsageError({ message: "--candidate and --commit both given: give one of them." }))
  }
  if (Option.isSome(candidate)) return Effect.succeed({ id: candidate.value })
  if (Option.isSome(commit)) return Effect.map(resolveCommit(commit.value), (id) => ({ id }))
  return Effect.fail(
    new UsageError({
      message: "no candidate given: pass --candidate <id>, or --commit <ref> (e.g. --commit HEAD) for a commit of " +
        "the git repository here. Evaluations are charged, so nothing is evaluated by default."
    })
  )
}

/**
 * The progress bar of a run, on stderr: redrawn in place on a terminal, else a line every 5 s.
 *
 * @since 0.1.0
 */
export const withProgress = <A, E, R>(runId: string, effect: Effect.Effect<A, E, R>) =>
  Progress.showWhile(runId, effect, {
    tty: process.stderr.isTTY === true,
    write: (text) =>
      Effect.sync(() => {
        process.stderr.write(text)
      })
  })

/**
 * On Ctrl-C (an interrupt), says on stderr which run was cut short and the command that finishes it.
 *
 * @since 0.1.0
 */
export const sayOnInterrupt = (lines: () => ReadonlyArray<string>) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.onInterrupt(
    effect,
    () =>
      Effect.forEach(lines(), (line) => Console.error(line), { discard: true }).pipe(
        Effect.zipRight(Effect.sync(() => {
          process.exitCode = 130
        }))
      )
  )
