/**
 * The `holdout` command line.
 *
 * - For whoever runs the stack: `run` (one evaluation, with progress), `race` (successive halving
 *   over candidates, `Select.race`), `resume`, `serve` (the sidecar), `report` (a terminal table,
 *   and a self-contained HTML file with `--html`).
 * - For the optimizer, clients of the sidecar (`--url`, else `$HOLDOUT_URL`, else
 *   `http://127.0.0.1:8000`): `eval`, `samples` (a viewable run's per-sample results, in pages),
 *   `compare` (two runs of a viewable split, paired by sample), `status`, `submit`. `compare` with
 *   `--config` / `--stack` reads the store instead, as the operator: any split.
 *
 * Means are shown with their 95% interval and standard error (at block level on a `non_viewable`
 * split); a run told through a release mechanism shows the mean it was told, nothing else.
 * - For the verifier: `finalize` (reads the admin token file, writes `reward.json`).
 *
 * Every failure is one line on stderr, `error: …`, and exit code 1: never a stack trace.
 *
 * @since 0.1.0
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as PlatformCommand from "@effect/platform/Command"
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as FileSystem from "@effect/platform/FileSystem"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpServer from "@effect/platform/HttpServer"
import * as Path from "@effect/platform/Path"
import {
  Compare,
  Engine,
  HoldoutError,
  type Model,
  type Release,
  Select,
  type Stack,
  TaskStore,
  View
} from "@holdout/core"
import * as Chunk from "effect/Chunk"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { createServer } from "node:http"
import type * as Config from "./Config.js"
import { importModule } from "./internal/importModule.js"
import * as Progress from "./Progress.js"

const configOption = Options.file("config").pipe(
  Options.withAlias("c"),
  Options.withDescription("The stack's configuration file (JSON or YAML).")
)

const urlOption = Options.text("url").pipe(
  Options.optional,
  Options.withDescription("The sidecar's address (default: $HOLDOUT_URL, else http://127.0.0.1:8000).")
)

const sampleIdsOption = Options.text("sample-ids").pipe(
  Options.optional,
  Options.withDescription("Comma-separated sample ids to evaluate (default: the whole split).")
)

const numSamplesOption = Options.integer("num-samples").pipe(
  Options.optional,
  Options.withDescription("Evaluate the first N samples of the split.")
)

const parseIds = (text: Option.Option<string>) =>
  Option.map(text, (value) => value.split(",").map((part) => Number(part.trim())))

/** What a command failed with, as one line. */
const describe = (error: unknown): string => {
  if (typeof error === "object" && error !== null) {
    const tag = "_tag" in error ? String(error._tag) : "Error"
    const message = "message" in error && typeof error.message === "string" && error.message.length > 0
      ? error.message
      : JSON.stringify(error)
    return `${tag}: ${message}`
  }
  return String(error)
}

/** Runs a command's work: a failure is one line on stderr and exit code 1. */
const handled = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<void, never, R> =>
  Effect.catchAll(Effect.asVoid(effect), (error) =>
    Effect.zipRight(
      Console.error(`error: ${describe(error)}`),
      Effect.sync(() => {
        process.exitCode = 1
      })
    ))

/**
 * The configuration module (its schemas, YAML, and through it the verifier and the stores) loads
 * when a command reads a configuration: `--help` and the sidecar's clients start without it.
 */
const loadConfig: Effect.Effect<typeof Config> = Effect.promise(() => import("./Config.js"))

const stackModuleOption = Options.file("stack").pipe(
  Options.optional,
  Options.withDescription("A module whose default export is the stack's Layer (instead of --config).")
)

/** The stack of a configuration file (with its verifier), or the Layer a module exports. */
const stackOf = (config: Option.Option<string>, module: Option.Option<string>) =>
  Layer.unwrapEffect(Effect.gen(function*() {
    if (Option.isSome(config) && Option.isNone(module)) {
      const Config = yield* loadConfig
      const loaded = yield* Config.load(config.value)
      return Config.stack(loaded)
    }
    if (Option.isSome(config) || Option.isNone(module)) {
      return yield* Effect.fail(
        new HoldoutError.ConfigError({ message: "Give either --config <file> or --stack <module>." })
      )
    }
    const path = yield* Path.Path
    const file = path.resolve(module.value)
    const exported = yield* importModule(file).pipe(
      Effect.mapError((error) =>
        new HoldoutError.ConfigError({ message: `Cannot load the stack module ${file}: ${String(error)}` })
      )
    )
    if (!Layer.isLayer(exported.default)) {
      return yield* Effect.fail(
        new HoldoutError.ConfigError({
          message:
            `${file} must export a Layer of the stack's services as its default export (e.g. Stack.layerWith(…)).`
        })
      )
    }
    // a module's layer is checked when it is built: a missing service is reported then
    return exported.default as Layer.Layer<Stack.Services, unknown>
  }))

const percent = (value: number) => `${(value * 100).toFixed(1)}%`

/** A mean with its uncertainty: `mean 75.0% (95% interval 36.3%–100.0%, SE 16.4%)`, as far as it is known. */
const meanOf = (metrics: Pick<Model.Metrics, "avgFilledScore" | "standardError" | "interval">) =>
  `mean ${percent(metrics.avgFilledScore)}` + (metrics.interval === null
    ? ""
    : ` (95% interval ${percent(metrics.interval.lower)}–${percent(metrics.interval.upper)}` +
      (metrics.standardError === null ? ")" : `, SE ${percent(metrics.standardError)})`))

/** What a release mechanism told of a run: its mean, and nothing else. */
const toldOf = (release: Release.Released) => `${release.mechanism} tells mean ${percent(release.mean)}`

/** The progress bar of a run, on stderr: redrawn in place on a terminal, else a line every 5 s. */
const withProgress = <A, E, R>(runId: string, effect: Effect.Effect<A, E, R>) =>
  Progress.showWhile(runId, effect, {
    tty: process.stderr.isTTY === true,
    write: (text) =>
      Effect.sync(() => {
        process.stderr.write(text)
      })
  })

/** Shows that an evaluation through the sidecar is under way, once it has taken longer than a second. */
const showWaiting = Effect.gen(function*() {
  const tty = process.stderr.isTTY === true
  const started = Date.now()
  yield* Effect.sleep("1 second")
  while (true) {
    const seconds = Math.round((Date.now() - started) / 1000)
    process.stderr.write(tty ? `\revaluating… ${seconds} s ` : `evaluating: ${seconds} s\n`)
    yield* Effect.sleep(tty ? "1 second" : "5 seconds")
  }
})

/** How many samples `run` and `resume` print of a viewable run (the rest are in the store). */
const printedSamples = 20

const printExperiment = (experiment: Model.Experiment, admin: boolean) =>
  Effect.gen(function*() {
    const { metrics, run } = experiment
    const where = `run ${run.runId}: ${run.candidate.id} on ${run.datasetId}/${run.split} ${run.status}`
    // an optimizer's run told through a release mechanism shows what it was told, as the sidecar would
    if (!admin && experiment.release !== undefined) {
      return yield* Console.log(`${where}, ${toldOf(experiment.release)} (the exact mean is withheld)`)
    }
    yield* Console.log(
      `${where}, ${meanOf(metrics)} over ${metrics.numSamples} samples (${metrics.numErrors} errors)`
    )
    const viewable = admin ||
      Option.exists(yield* Effect.option(View.experiment(experiment)), (projected) => projected._tag === "viewable")
    if (!viewable) return
    // one page, a sample more than is printed, to know whether there are more
    const engine = yield* Engine.Engine
    const page = yield* engine.samples(run.runId, { limit: printedSamples + 1 })
    for (const sample of page.slice(0, printedSamples)) {
      yield* Console.log(
        `  ${String(sample.sampleId).padStart(5)}  ${sample.score === undefined ? "-" : sample.score}` +
          `${sample.error === undefined ? "" : `  error: ${sample.error.split("\n")[0]}`}`
      )
    }
    if (metrics.numSamples > printedSamples) {
      yield* Console.log(`  … ${metrics.numSamples - printedSamples} more (holdout samples ${run.runId})`)
    }
  })

const run = Command.make(
  "run",
  {
    config: Options.optional(configOption),
    stack: stackModuleOption,
    dataset: Options.text("dataset").pipe(Options.withDescription("The dataset id.")),
    split: Options.text("split").pipe(Options.withDescription("The split to evaluate.")),
    candidate: Options.text("candidate").pipe(
      Options.withDescription("The candidate's id (a commit for git workspaces).")
    ),
    sampleIds: sampleIdsOption,
    numSamples: numSamplesOption,
    key: Options.text("key").pipe(
      Options.optional,
      Options.withDescription("An idempotency key: the same key returns the same run, charged once.")
    ),
    admin: Options.boolean("admin").pipe(Options.withDescription("Evaluate as the verifier: no tier gate, no charge."))
  },
  (options) =>
    handled(
      Effect.gen(function*() {
        const engine = yield* Engine.Engine
        const key = Option.getOrElse(options.key, () => `cli-${crypto.randomUUID()}`)
        const evaluated = engine.evaluate({
          datasetId: options.dataset,
          split: options.split,
          candidate: { id: options.candidate },
          idempotencyKey: key,
          ...Option.match(parseIds(options.sampleIds), { onNone: () => ({}), onSome: (sampleIds) => ({ sampleIds }) }),
          ...Option.match(options.numSamples, { onNone: () => ({}), onSome: (numSamples) => ({ numSamples }) })
        }, { admin: options.admin })
        const experiment = yield* withProgress(Engine.runIdForKey(key, { admin: options.admin }), evaluated)
        yield* printExperiment(experiment, options.admin)
      }).pipe(Effect.provide(stackOf(options.config, options.stack)))
    )
).pipe(Command.withDescription("Evaluate a candidate on a split of the configured stack, charging its budget."))

const resume = Command.make(
  "resume",
  {
    config: Options.optional(configOption),
    stack: stackModuleOption,
    runId: Args.text({ name: "run-id" }).pipe(Args.withDescription("The run to finish."))
  },
  (options) =>
    handled(
      Effect.gen(function*() {
        const engine = yield* Engine.Engine
        const experiment = yield* withProgress(options.runId, engine.resume(options.runId))
        yield* printExperiment(experiment, false)
      }).pipe(Effect.provide(stackOf(options.config, options.stack)))
    )
).pipe(Command.withDescription("Finish an interrupted run without a new charge."))

/** What `serve` needs beyond the command line, loaded when it runs (start-up does without it). */
const serverModules = async () => ({
  NodeHttpServer: await import("@effect/platform-node/NodeHttpServer"),
  Sidecar: await import("./Sidecar.js"),
  createServer
})

const serve = Command.make(
  "serve",
  {
    config: configOption,
    port: Options.integer("port").pipe(Options.optional, Options.withDescription("Overrides sidecar.port.")),
    host: Options.text("host").pipe(Options.optional, Options.withDescription("Overrides sidecar.host."))
  },
  (options) =>
    handled(Effect.gen(function*() {
      const Config = yield* loadConfig
      const loaded = yield* Config.load(options.config)
      const sidecar = loaded.config.sidecar
      if (sidecar === undefined) {
        return yield* Effect.fail(new Error(`${options.config} has no "sidecar" section (tokenFile, port, …).`))
      }
      const path = yield* Path.Path
      const host = Option.getOrElse(options.host, () => sidecar.host)
      const port = Option.getOrElse(options.port, () => sidecar.port)
      const announce = Layer.effectDiscard(
        HttpServer.addressFormattedWith((address) => Console.log(`holdout sidecar listening on ${address}`))
      )
      const { NodeHttpServer, Sidecar, createServer } = yield* Effect.promise(serverModules)
      const server = Sidecar.layer({
        tokenFile: path.resolve(loaded.baseDir, sidecar.tokenFile),
        ...(sidecar.resultsDir === undefined ? {} : { resultsDir: path.resolve(loaded.baseDir, sidecar.resultsDir) }),
        ...(sidecar.maxBodyBytes === undefined ? {} : { maxBodyBytes: sidecar.maxBodyBytes })
      }).pipe(
        Layer.provideMerge(NodeHttpServer.layer(createServer, { port, host })),
        Layer.provide(Config.verifier(loaded).pipe(Layer.provideMerge(Config.stack(loaded))))
      )
      // announced once the routes are installed: a client that waits for this line is never early
      yield* Layer.launch(announce.pipe(Layer.provide(server)))
    }))
).pipe(Command.withDescription("Serve the stack to an optimizer over HTTP (the sidecar)."))

/**
 * The HTTP client of the sidecar's clients: Node's `http` module, ready at start, where the global
 * `fetch` of Node 20 costs its first call some 100 ms of loading.
 */
const clientLayer = NodeHttpClient.layer

/** The sidecar's typed client (its API's schemas load with the first client). */
const client = (url: Option.Option<string>, token?: string) =>
  Effect.flatMap(Effect.promise(() => import("./SidecarApi.js")), ({ Api }) =>
    HttpApiClient.make(Api, {
      baseUrl: Option.getOrElse(url, () => process.env["HOLDOUT_URL"] ?? "http://127.0.0.1:8000"),
      ...(token === undefined
        ? {}
        : { transformClient: HttpClient.mapRequest(HttpClientRequest.bearerToken(token)) })
    }))

type Client = Effect.Effect.Success<ReturnType<typeof client>>

/** One page of a `viewable` run's samples from the sidecar (`GET /runs/{runId}/samples`). */
const samplePage = (api: Client, runId: string, after: Option.Option<number>, limit?: number) =>
  api.agent.samples({
    path: { runId },
    urlParams: {
      ...Option.match(after, { onNone: () => ({}), onSome: (value) => ({ after: value }) }),
      ...(limit === undefined ? {} : { limit })
    }
  })

/** Every sample of a `viewable` run from the sidecar, page by page, after sample id `after` when given. */
const remoteSamples = (api: Client, runId: string, after: Option.Option<number> = Option.none(), limit?: number) =>
  Stream.paginateChunkEffect(after, (cursor) =>
    Effect.map(
      samplePage(api, runId, cursor, limit),
      (page) =>
        [
          Chunk.unsafeFromArray(page.samples.slice()),
          page.next === null ? Option.none() : Option.some(Option.some(page.next))
        ] as const
    ))

/** How many ids of samples not fully right `eval` prints (the rest are counted). */
const printedWrong = 50

/** A commit of the repository in the working directory, as a full hash. */
const resolveCommit = (ref: string) =>
  PlatformCommand.string(PlatformCommand.make("git", "rev-parse", "--verify", "--end-of-options", `${ref}^{commit}`))
    .pipe(
      Effect.map((text) => text.trim()),
      Effect.filterOrFail(
        (sha) => /^[0-9a-f]{40,64}$/.test(sha),
        () => new Error(`"${ref}" is not a commit of the repository here; pass --candidate <id> instead.`)
      )
    )

/** The candidate of a client command: `--candidate` as given, else `--commit` (default HEAD) resolved by git. */
const candidateOf = (
  candidate: Option.Option<string>,
  commit: Option.Option<string>
): Effect.Effect<Model.Candidate, unknown, CommandExecutor.CommandExecutor> =>
  Option.match(candidate, {
    onSome: (id) => Effect.succeed({ id }),
    onNone: () => Effect.map(resolveCommit(Option.getOrElse(commit, () => "HEAD")), (id) => ({ id }))
  })

const candidateOptions = {
  candidate: Options.text("candidate").pipe(Options.optional, Options.withDescription("The candidate's id, as is.")),
  commit: Options.text("commit").pipe(
    Options.optional,
    Options.withDescription("A commit of the repository here (default HEAD), sent as its full hash.")
  )
}

const evalCommand = Command.make(
  "eval",
  {
    url: urlOption,
    dataset: Options.text("dataset").pipe(Options.withDescription("The dataset id.")),
    split: Options.text("split").pipe(Options.withDescription("The split to evaluate.")),
    sampleIds: sampleIdsOption,
    numSamples: numSamplesOption,
    ...candidateOptions
  },
  (options) =>
    handled(
      Effect.gen(function*() {
        const api = yield* client(options.url)
        const candidate = yield* candidateOf(options.candidate, options.commit)
        const waiting = yield* Effect.fork(showWaiting)
        const reply = yield* api.agent.eval({
          payload: {
            datasetId: options.dataset,
            split: options.split,
            candidate,
            ...Option.match(parseIds(options.sampleIds), {
              onNone: () => ({}),
              onSome: (sampleIds) => ({ sampleIds })
            }),
            ...Option.match(options.numSamples, { onNone: () => ({}), onSome: (numSamples) => ({ numSamples }) })
          }
        }).pipe(Effect.ensuring(Fiber.interrupt(waiting)))
        if (process.stderr.isTTY === true) process.stderr.write("\n")
        const { summary } = reply.experiment
        const where = `${summary.candidateId} on ${summary.datasetId}/${summary.split} (${reply.experiment._tag})`
        yield* Console.log(
          "release" in summary
            ? `${where}: ${toldOf(summary.release)}`
            : `${where}: ${meanOf(summary.metrics)} over ${summary.metrics.numSamples} samples, ` +
              `${summary.metrics.numErrors} errors`
        )
        if (reply.experiment._tag === "viewable") {
          // read page by page; the first ids are printed, the rest counted
          const wrong = yield* Stream.runFold(
            remoteSamples(api, summary.runId),
            { ids: [] as Array<number>, count: 0 },
            (wrong, sample) => {
              if (sample.score === 1) return wrong
              if (wrong.ids.length < printedWrong) wrong.ids.push(sample.sampleId)
              return { ids: wrong.ids, count: wrong.count + 1 }
            }
          )
          const more = wrong.count > wrong.ids.length ? ` … and ${wrong.count - wrong.ids.length} more` : ""
          yield* Console.log(`  samples not fully right: ${wrong.count === 0 ? "none" : wrong.ids.join(", ") + more}`)
          yield* Console.log(`  per-sample results: holdout samples ${summary.runId}`)
        }
        if (reply.remaining !== null) {
          yield* Console.log(
            `  budget left: ${reply.remaining.runs ?? "unlimited"} runs, ${
              reply.remaining.samples ?? "unlimited"
            } samples`
          )
        }
        if (reply.resultPath !== null) yield* Console.log(`  results: ${reply.resultPath}`)
      }).pipe(Effect.provide(clientLayer))
    )
).pipe(Command.withDescription("Evaluate a candidate through the sidecar (charges the split's budget)."))

const samples = Command.make(
  "samples",
  {
    url: urlOption,
    runId: Args.text({ name: "run-id" }).pipe(Args.withDescription("A run an eval of yours made (its runId).")),
    after: Options.integer("after").pipe(
      Options.optional,
      Options.withDescription("Start after this sample id (the `next` cursor of the previous page).")
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
        const api = yield* client(options.url)
        const pages = remoteSamples(api, options.runId, options.after, options.limit)
        // one JSON line per sample; without --all, one page and the cursor of the next
        if (options.all) return yield* Stream.runForEach(pages, (sample) => Console.log(JSON.stringify(sample)))
        const page = yield* samplePage(api, options.runId, options.after, options.limit)
        for (const sample of page.samples) yield* Console.log(JSON.stringify(sample))
        if (page.next !== null) yield* Console.error(`next page: --after ${page.next}`)
      }).pipe(Effect.provide(clientLayer))
    )
).pipe(
  Command.withDescription("The per-sample results of a viewable run, one JSON line each, in pages (--after, --limit).")
)

const status = Command.make("status", { url: urlOption }, (options) =>
  handled(
    Effect.gen(function*() {
      const api = yield* client(options.url)
      const reply = yield* api.agent.status()
      for (const split of reply.splits) {
        yield* Console.log(
          `${split.datasetId}/${split.split}  ${split.tier.padEnd(12)}  ` +
            `${split.remaining.runs ?? "unlimited"} runs, ${split.remaining.samples ?? "unlimited"} samples left` +
            (split.overfit === undefined
              ? ""
              : `, overfitting budget ${split.overfit.remaining ?? "unlimited"} of ${
                split.overfit.limit ?? "unlimited"
              } left`)
        )
      }
      yield* Console.log(`submissions ${reply.submitEnabled ? "enabled" : "disabled"}`)
    }).pipe(Effect.provide(clientLayer))
  )).pipe(
    Command.withDescription(
      "The splits the optimizer may evaluate, with their budgets left (and a thresholdout split's overfitting budget)."
    )
  )

const submit = Command.make(
  "submit",
  { url: urlOption, ...candidateOptions },
  (options) =>
    handled(
      Effect.gen(function*() {
        const api = yield* client(options.url)
        const candidate = yield* candidateOf(options.candidate, options.commit)
        const reply = yield* api.agent.submit({ payload: { candidate } })
        yield* Console.log(`submitted ${reply.submitted.id} (final)`)
      }).pipe(Effect.provide(clientLayer))
    )
).pipe(
  Command.withDescription("Submit the final candidate (it must have been evaluated; a submission is final).")
)

const finalize = Command.make(
  "finalize",
  {
    url: urlOption,
    tokenFile: Options.file("token-file").pipe(Options.withDescription("The admin token file the sidecar wrote.")),
    output: Options.file("output").pipe(Options.optional, Options.withDescription("Where to write reward.json."))
  },
  (options) =>
    handled(
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const token = (yield* fs.readFileString(options.tokenFile)).trim()
        const api = yield* client(options.url, token)
        const answer = yield* api.admin.finalize()
        yield* Console.log(JSON.stringify(answer, null, 2))
        if (Option.isSome(options.output)) {
          const Verifier = yield* Effect.promise(() => import("./Verifier.js"))
          yield* Verifier.writeRewards(options.output.value, answer.rewards)
        }
      }).pipe(Effect.provide(clientLayer))
    )
).pipe(Command.withDescription("Choose and score the final candidate (verifier); the same answer on every call."))

const signed = (value: number) => `${value > 0 ? "+" : value < 0 ? "−" : "±"}${percent(Math.abs(value))}`

const pValueOf = (value: number | null) =>
  value === null ? "not measured" : value < 1e-4 ? "< 0.0001" : value.toFixed(4)

/** A paired comparison in words, a line a figure. */
const comparisonLines = (
  runA: string,
  runB: string,
  where: string,
  comparison: Compare.PairedComparison
): ReadonlyArray<string> => [
  `A ${runA}`,
  `B ${runB}`,
  `on ${where}, ${comparison.shared} shared samples`,
  `mean A ${percent(comparison.meanA)}, mean B ${percent(comparison.meanB)}`,
  `difference A − B ${signed(comparison.difference)}` + (comparison.interval === null
    ? ""
    : `, 95% bootstrap interval [${signed(comparison.interval.lower)}, ${signed(comparison.interval.upper)}]` +
      ` (${comparison.resamples} resamples, seed ${comparison.seed})`),
  `p-value, two-sided (no difference): ${pValueOf(comparison.pValue)}; one-sided (A no better than B): ${
    pValueOf(comparison.pValueGreater)
  } (permutation, ${comparison.exact ? "exact" : `${comparison.permutations} sign patterns`})`,
  ...(comparison.t === null ? [] : [`paired t ${comparison.t.toFixed(3)}, p ${pValueOf(comparison.tPValue)}`])
]

/** Two stored runs compared as the operator (admin: any split), from the stack's store. */
const compareLocally = (runA: string, runB: string) =>
  Effect.gen(function*() {
    const store = yield* TaskStore.TaskStore
    const get = (runId: string) =>
      Effect.flatMap(
        store.getRun(runId),
        Option.match({
          onNone: () =>
            Effect.fail(
              new HoldoutError.InvalidRequest({
                message: `No run "${runId}" is stored; \`holdout report\` lists runs.`
              })
            ),
          onSome: Effect.succeed
        })
      )
    const a = yield* get(runA)
    const b = yield* get(runB)
    const comparison = yield* Compare.runs(a, b, { admin: true })
    return { runA, runB, datasetId: a.datasetId, split: a.split, comparison }
  })

const compare = Command.make(
  "compare",
  {
    runA: Args.text({ name: "run-a" }).pipe(Args.withDescription("Run A (differences are A − B).")),
    runB: Args.text({ name: "run-b" }).pipe(Args.withDescription("Run B, of the same split.")),
    url: urlOption,
    config: Options.optional(configOption),
    stack: stackModuleOption,
    json: Options.boolean("json").pipe(Options.withDescription("Print the comparison as JSON."))
  },
  (options) =>
    handled(
      Effect.gen(function*() {
        const local = Option.isSome(options.config) || Option.isSome(options.stack)
        const compared = local
          ? yield* compareLocally(options.runA, options.runB).pipe(
            Effect.provide(stackOf(options.config, options.stack))
          )
          : yield* Effect.flatMap(
            client(options.url),
            (api) => api.agent.compare({ urlParams: { runA: options.runA, runB: options.runB } })
          ).pipe(Effect.provide(clientLayer))
        if (options.json) return yield* Console.log(JSON.stringify(compared, null, 2))
        for (
          const line of comparisonLines(
            compared.runA,
            compared.runB,
            `${compared.datasetId}/${compared.split}`,
            compared.comparison
          )
        ) yield* Console.log(line)
      })
    )
).pipe(
  Command.withDescription(
    "Compare two runs of one split paired by sample: mean difference, bootstrap interval, p-values. Through the " +
      "sidecar (viewable splits only), or from the store with --config/--stack (any split)."
  )
)

const intervalOf = (interval: Model.Interval | null) =>
  interval === null ? "" : ` (95% interval ${percent(interval.lower)}–${percent(interval.upper)})`

/** A race's outcome in words: its rounds, the winner and what was spent. */
const raceLines = (result: Select.Result): ReadonlyArray<string> => [
  ...result.rounds.map((round, index) =>
    `round ${index + 1}: ${round.candidates.length} candidates on ${round.size} samples` +
    (round.dropped.length === 0 ? "" : `, dropped ${round.dropped.join(", ")}`)
  ),
  `winner ${result.winner.candidate.id}: mean ${percent(result.winner.mean)}${
    intervalOf(result.winner.interval)
  } over ${result.winner.samples} samples`,
  ...(result.lead === null
    ? []
    : [`lead over the runner-up: [${signed(result.lead.lower)}, ${signed(result.lead.upper)}] (paired)`]),
  `spent ${result.samplesSpent} samples in ${result.runsSpent} runs`
]

const race = Command.make(
  "race",
  {
    config: Options.optional(configOption),
    stack: stackModuleOption,
    dataset: Options.text("dataset").pipe(Options.withDescription("The dataset id.")),
    split: Options.text("split").pipe(Options.withDescription("The split to race on (viewable, unless --admin).")),
    candidates: Options.text("candidates").pipe(
      Options.withDescription("Comma-separated candidate ids (at least two).")
    ),
    seed: Options.integer("seed").pipe(
      Options.withDefault(0),
      Options.withDescription("Seed of the order samples are taken in.")
    ),
    startSize: Options.integer("start-size").pipe(
      Options.optional,
      Options.withDescription("Samples a candidate in the first round (default: so that one is left at the end).")
    ),
    growth: Options.float("growth").pipe(
      Options.optional,
      Options.withDescription("How much the subset grows per round, and 1/growth of the rest go on (default 2).")
    ),
    confidence: Options.float("confidence").pipe(
      Options.optional,
      Options.withDescription("Joint level of a round's paired intervals against the leader (default 0.95).")
    ),
    delta: Options.float("delta").pipe(
      Options.optional,
      Options.withDescription("Drop a candidate once it cannot beat the leader by delta (default 0).")
    ),
    concurrency: Options.integer("concurrency").pipe(
      Options.withDefault(1),
      Options.withDescription("Evaluations of a round at once.")
    ),
    admin: Options.boolean("admin").pipe(Options.withDescription("Race as the verifier: any split, no charge.")),
    json: Options.boolean("json").pipe(Options.withDescription("Print the result as JSON."))
  },
  (options) =>
    handled(
      Effect.gen(function*() {
        const optional = <A, K extends string>(key: K, value: Option.Option<A>) =>
          Option.match(value, { onNone: () => ({}), onSome: (some) => ({ [key]: some }) as Record<K, A> })
        const result = yield* Select.race({
          datasetId: options.dataset,
          split: options.split,
          candidates: options.candidates.split(",").map((id) => id.trim()).filter((id) => id.length > 0).map((id) => ({
            id
          })),
          seed: options.seed,
          concurrency: options.concurrency,
          admin: options.admin,
          ...optional("startSize", options.startSize),
          ...optional("growth", options.growth),
          ...optional("confidence", options.confidence),
          ...optional("delta", options.delta)
        })
        if (options.json) return yield* Console.log(JSON.stringify(result, null, 2))
        for (const line of raceLines(result)) yield* Console.log(line)
      }).pipe(Effect.provide(stackOf(options.config, options.stack)))
    )
).pipe(
  Command.withDescription(
    "Choose among candidates by successive halving on growing subsets of a split, each round charged (Select.race)."
  )
)

const report = Command.make(
  "report",
  {
    config: Options.optional(configOption),
    stack: stackModuleOption,
    html: Options.file("html").pipe(
      Options.optional,
      Options.withDescription("Also write a self-contained HTML report.")
    )
  },
  (options) =>
    handled(
      Effect.gen(function*() {
        const Report = yield* Effect.promise(() => import("./Report.js"))
        const data = yield* Report.collect
        yield* Console.log(Report.text(data))
        if (Option.isSome(options.html)) {
          const fs = yield* FileSystem.FileSystem
          yield* fs.writeFileString(options.html.value, Report.html(data))
          yield* Console.log(`\nHTML report: ${options.html.value}`)
        }
      }).pipe(Effect.provide(stackOf(options.config, options.stack)))
    )
).pipe(Command.withDescription("Scores per candidate and split, and the budgets left: a table, and optionally HTML."))

/**
 * The `holdout` command.
 *
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make("holdout").pipe(
  Command.withDescription("Metered, visibility-controlled evaluation of agents and models."),
  Command.withSubcommands([
    run,
    race,
    resume,
    serve,
    evalCommand,
    samples,
    compare,
    status,
    submit,
    finalize,
    report
  ])
)

/**
 * Runs the command line on the given arguments (`process.argv`).
 *
 * @since 0.1.0
 * @category commands
 */
export const main = Command.run(command, { name: "holdout", version: "0.1.0" })
