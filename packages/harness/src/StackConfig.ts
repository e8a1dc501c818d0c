/**
 * A whole eval stack as a JSON or YAML file, decoded strictly (an unknown or invalid field is a
 * `ConfigError` naming it), and the layers it describes. Relative paths are resolved against the
 * file's directory.
 *
 * ```yaml
 * store: { kind: sqlite, filename: .holdout/holdout.db }    # or { kind: postgres, url }, { kind: fs, dir }, { kind: memory }
 * datasets: { kind: jsonl, dir: data }                       # or { kind: harbor, datasetId, partition }
 * strategy: { kind: task, module: src/task.ts }              # or { kind: harbor, harbor: {…}, dir }
 * workspace: { kind: git, repo: ../agent }                   # or { kind: static, path } (default: .)
 * budgets: [{ datasetId: qa, split: validation, runs: 10, reservedForFinalize: { runs: 4 } }]  # reserve optional
 * policy: { train: viewable, validation: non_viewable, test: no_access }
 * releases: { validation: { kind: thresholdout, reference: train, threshold: 0.04, sigma: 0.01, overfitBudget: 20 } }
 * engine: { statusMaxAge: 100 millis }                       # how old /status's budgets may be (0: always read)
 * verifier: { mode: auto_best, selection: { datasetId: qa, split: validation }, significance: 0.05,
 *             baseline: main, freeBaseline: true, poolTrees: true,
 *             targets: [{ datasetId: qa, split: test, rewardKey: accuracy }] }
 * sidecar: { tokenFile: .holdout/admin.token, resultsDir: results, port: 8000 }
 * ```
 *
 * @since 0.1.0
 */
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import {
  DatasetSource,
  type Engine,
  HoldoutError,
  Ledger,
  LocalStrategy,
  Model,
  Release,
  type SplitAccess,
  Stack,
  Task,
  TaskStore,
  Workspace
} from "@holdout/core"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Yaml from "yaml"
import * as GitWorkspace from "./GitWorkspace.js"
import { importModule } from "./internal/importModule.js"
import * as Verifier from "./Verifier.js"

const Tier = Schema.Literal("viewable", "non_viewable", "no_access")

const Store = Schema.Union(
  Schema.Struct({ kind: Schema.Literal("sqlite"), filename: Schema.NonEmptyString }),
  // one database that many sidecars and workers on many hosts share; `url` defaults to HOLDOUT_PG_URL
  Schema.Struct({ kind: Schema.Literal("postgres"), url: Schema.optional(Schema.NonEmptyString) }),
  Schema.Struct({ kind: Schema.Literal("fs"), dir: Schema.NonEmptyString }),
  Schema.Struct({ kind: Schema.Literal("memory") })
)

const HarborTaskEntry = Schema.Union(
  Schema.NonEmptyString,
  Schema.Struct({ include: Schema.NonEmptyString, resultKey: Schema.NonEmptyString })
)

const Datasets = Schema.Union(
  Schema.Struct({ kind: Schema.Literal("jsonl"), dir: Schema.NonEmptyString }),
  Schema.Struct({
    kind: Schema.Literal("harbor"),
    datasetId: Schema.NonEmptyString,
    partition: Schema.Record({ key: Schema.String, value: Schema.Array(HarborTaskEntry) })
  })
)

const Strategy = Schema.Union(
  Schema.Struct({
    kind: Schema.Literal("task"),
    /** A module whose export (`default` unless `export` says otherwise) is a `Task`. */
    module: Schema.NonEmptyString,
    export: Schema.optional(Schema.NonEmptyString),
    concurrency: Schema.optional(Schema.Int.pipe(Schema.greaterThanOrEqualTo(1))),
    timeoutSeconds: Schema.optional(Schema.Number.pipe(Schema.positive()))
  }),
  Schema.Struct({
    kind: Schema.Literal("harbor"),
    harbor: Schema.Unknown,
    /** Where the nested runs' job directories go. */
    dir: Schema.NonEmptyString
  })
)

const WorkspaceConfig = Schema.Union(
  Schema.Struct({
    kind: Schema.Literal("git"),
    repo: Schema.NonEmptyString,
    dir: Schema.optional(Schema.NonEmptyString)
  }),
  Schema.Struct({ kind: Schema.Literal("static"), path: Schema.NonEmptyString })
)

const Target = Schema.Struct({
  datasetId: Schema.NonEmptyString,
  split: Schema.NonEmptyString,
  rewardKey: Schema.NonEmptyString,
  sampleIds: Schema.optionalWith(Schema.Array(Schema.Int), { exact: true }),
  /** A transfer target: the model its evaluation uses instead of the strategy's (`Verifier.Target.model`). */
  model: Schema.optionalWith(Schema.NonEmptyString, { exact: true })
})

const VerifierConfig = Schema.Struct({
  mode: Schema.Literal("submit", "auto_best"),
  selection: Schema.optional(Schema.Struct({ datasetId: Schema.NonEmptyString, split: Schema.NonEmptyString })),
  targets: Schema.Array(Target),
  baseline: Schema.optional(Schema.NonEmptyString),
  topK: Schema.optional(Schema.Int.pipe(Schema.greaterThanOrEqualTo(1))),
  /** `auto_best` ships a candidate only if it beats the baseline with a one-sided paired test at this level. */
  significance: Schema.optional(Schema.Number.pipe(Schema.greaterThan(0), Schema.lessThan(1))),
  /** How α is shared among the candidates the winner was chosen from (`Verifier.Options.correction`). */
  correction: Schema.optional(Schema.Literal("bonferroni", "none")),
  /** `auto_best` pools re-commits of one git tree as one candidate (needs a git workspace). */
  poolTrees: Schema.optional(Schema.Boolean),
  /** The optimizer's first evaluation of `baseline` on each budgeted split is free. */
  freeBaseline: Schema.optional(Schema.Boolean)
})

/**
 * A split's release mechanism as the configuration writes it (`kind`, like every other section);
 * the fields are those of `Release.Mechanism`.
 */
const ReleaseConfig = Schema.Union(
  Schema.Struct({ kind: Schema.Literal("exact") }),
  Schema.Struct({
    kind: Schema.Literal("thresholdout"),
    reference: Release.Thresholdout.fields.reference,
    threshold: Release.Thresholdout.fields.threshold,
    sigma: Release.Thresholdout.fields.sigma,
    overfitBudget: Release.Thresholdout.fields.overfitBudget
  }),
  Schema.Struct({ kind: Schema.Literal("ladder"), eta: Release.Ladder.fields.eta })
)

/** How a release is written, for the messages of a malformed one. */
const releaseShapes = "a release is { kind: exact }, { kind: thresholdout, reference: <split>, threshold: T, " +
  "sigma: σ, overfitBudget: B } or { kind: ladder, eta: η }"

/**
 * The engine's options a file may set: how old the budgets `status` shows may be, as a duration
 * ("250 millis") or milliseconds (default 100; 0 reads the store for every status). Checked when the
 * engine is built.
 */
const EngineConfig = Schema.Struct({
  statusMaxAge: Schema.optional(Schema.Union(Schema.NonNegative, Schema.NonEmptyString))
})

const SidecarConfig = Schema.Struct({
  tokenFile: Schema.NonEmptyString,
  resultsDir: Schema.optional(Schema.NonEmptyString),
  host: Schema.optionalWith(Schema.NonEmptyString, { default: () => "127.0.0.1" }),
  port: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 65535)), { default: () => 8000 }),
  maxBodyBytes: Schema.optional(Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)))
})

/**
 * The configuration file's schema.
 *
 * @since 0.1.0
 * @category models
 */
export const HoldoutConfig = Schema.Struct({
  store: Store,
  datasets: Datasets,
  strategy: Strategy,
  workspace: Schema.optional(WorkspaceConfig),
  budgets: Schema.Array(Model.SplitBudget),
  policy: Schema.Record({ key: Schema.String, value: Tier }),
  /** Release mechanisms of `non_viewable` splits, by split name (unlisted splits are `exact`). */
  releases: Schema.optional(Schema.Record({ key: Schema.String, value: ReleaseConfig })),
  engine: Schema.optional(EngineConfig),
  verifier: Schema.optional(VerifierConfig),
  sidecar: Schema.optional(SidecarConfig)
})

/**
 * @since 0.1.0
 * @category models
 */
export type HoldoutConfig = typeof HoldoutConfig.Type

/**
 * A decoded configuration and the directory its relative paths are resolved against.
 *
 * @since 0.1.0
 * @category models
 */
export interface Loaded {
  readonly config: HoldoutConfig
  readonly baseDir: string
  readonly file: string
}

const decode = Schema.decodeUnknownEither(HoldoutConfig, { onExcessProperty: "error", errors: "all" })

/**
 * Parses and decodes a configuration (`.yaml` / `.yml` as YAML, anything else as JSON).
 *
 * @since 0.1.0
 * @category constructors
 */
export const parse = (file: string, text: string): Either.Either<HoldoutConfig, HoldoutError.ConfigError> => {
  let document: unknown
  try {
    document = /\.ya?ml$/i.test(file) ? Yaml.parse(text) : JSON.parse(text)
  } catch (error) {
    return Either.left(new HoldoutError.ConfigError({ message: `${file} does not parse: ${String(error)}` }))
  }
  return Either.mapLeft(decode(document), (error) =>
    new HoldoutError.ConfigError({
      message: `${file} is not a valid Holdout configuration: ${
        describeIssues(ParseResult.ArrayFormatter.formatErrorSync(error))
      }. Fix the file and run again.`
    }))
}

/**
 * One clause per offending field, by its dotted path: unknown fields by name with the closest known
 * field ("did you mean"), missing and invalid ones with the schema's message. The "expected
 * undefined" alternative of an optional field is left out when the field has another issue; the
 * alternatives of a union at one path are joined into one clause; a section of the wrong type says
 * so (and which kinds there are) instead of printing the schema's signature. Also used for other
 * strictly decoded files (`HarborBuild`'s build.yaml).
 *
 * @since 0.1.0
 * @category utils
 */
export const describeIssues = (issues: ReadonlyArray<ParseResult.ArrayFormatterIssue>): string => {
  const pathOf = (issue: ParseResult.ArrayFormatterIssue) => issue.path.map(String).join(".")
  const paths = issues.map(pathOf)
  const expected = new Map<string, { alternatives: Array<string>; actual: string }>()
  const clauses: Array<string> = []
  issues.forEach((issue, index) => {
    const path = paths[index]!
    const where = path === "" ? "the file" : `"${path}"`
    const others = paths.some((other, otherIndex) =>
      otherIndex !== index && (other === path || other.startsWith(path === "" ? "" : `${path}.`))
    )
    if (issue._tag === "Type" && issue.message.startsWith("Expected undefined") && others) return
    if (issue._tag === "Unexpected") {
      const known = [...issue.message.matchAll(/"([^"]+)"/g)].map((match) => match[1]!)
      const name = String(issue.path[issue.path.length - 1] ?? "")
      const close = closestName(name, known)
      clauses.push(
        `unknown field ${where}` +
          (close === undefined
            ? ` (${issue.message.replace(/^is unexpected, e/, "e")})`
            : ` (did you mean "${close}"?)`)
      )
      return
    }
    const typed = /^Expected (.*), actual (.*)$/s.exec(issue.message)
    if (issue._tag === "Type" && typed !== null) {
      const [, alternative, actual] = typed
      const kinds = [...alternative!.matchAll(/kind: "([^"]+)"/g)].map((match) => match[1]!)
      const shown = alternative!.startsWith("{")
        ? kinds.length > 0 ? `a mapping with kind ${kinds.join(" | ")}` : "a mapping"
        : alternative!
      const entry = expected.get(path) ?? { alternatives: [], actual: actual! }
      if (!entry.alternatives.includes(shown)) entry.alternatives.push(shown)
      if (!expected.has(path)) clauses.push(`\u0000${path}`)
      expected.set(path, entry)
      return
    }
    clauses.push(`${where} ${issue.message.split("\n")[0]!.replace(/^E/, "e")}`)
  })
  const text = [
    ...new Set(clauses.map((clause) => {
      if (!clause.startsWith("\u0000")) return clause
      const path = clause.slice(1)
      const entry = expected.get(path)!
      const literals = entry.alternatives.flatMap((alternative) => alternative.split(" | "))
      const known = literals.every((literal) => /^"[^"]*"$/.test(literal))
        ? closestName(entry.actual.replace(/^"|"$/g, ""), literals.map((literal) => literal.slice(1, -1)))
        : undefined
      return `${path === "" ? "the file" : `"${path}"`} expected ${
        entry.alternatives.join(" | ")
      }, actual ${entry.actual}${known === undefined ? "" : ` (did you mean "${known}"?)`}`
    }))
  ]
  const shown = text.length > 4 ? [...text.slice(0, 4), `and ${text.length - 4} more`] : text
  const hint = paths.some((path) => path === "releases" || path.startsWith("releases.")) ? ` (${releaseShapes})` : ""
  return shown.join("; ") + hint
}

/** The known name closest to `name` (case counts, as in YAML), when close enough to be a typo of it. */
const closestName = (name: string, known: ReadonlyArray<string>): string | undefined =>
  Stack.closestName(name, known, { ignoreCase: false })

/**
 * The release mechanisms a configuration gives, as `EngineOptions.releases` takes them.
 *
 * @since 0.1.0
 * @category constructors
 */
export const releases = (config: HoldoutConfig): Release.Releases =>
  Object.fromEntries(
    Object.entries(config.releases ?? {}).map(([split, release]): [string, Release.Mechanism] => {
      switch (release.kind) {
        case "exact":
          return [split, { _tag: "exact" }]
        case "thresholdout":
          return [split, {
            _tag: "thresholdout",
            reference: release.reference,
            threshold: release.threshold,
            sigma: release.sigma,
            overfitBudget: release.overfitBudget
          }]
        case "ladder":
          return [split, { _tag: "ladder", eta: release.eta }]
      }
    })
  )

/**
 * Reads and decodes a configuration file.
 *
 * @since 0.1.0
 * @category constructors
 */
export const load = (
  file: string
): Effect.Effect<Loaded, HoldoutError.ConfigError, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const absolute = path.resolve(file)
    const text = yield* fs.readFileString(absolute).pipe(
      Effect.mapError((error) =>
        new HoldoutError.ConfigError({ message: `Cannot read the configuration ${file}: ${error.message}` })
      )
    )
    const config = yield* parse(file, text)
    return { config, baseDir: path.dirname(absolute), file: absolute }
  })

/** A package a configuration may ask for, loaded only then (start-up does without the stores and Harbor). */
const loadPackage = <A>(name: string, module: () => Promise<A>) =>
  Effect.tryPromise({
    try: module,
    catch: (error) => new HoldoutError.ConfigError({ message: `Cannot load ${name}: ${String(error)}` })
  })

const loadFsStore = loadPackage("@holdout/store-fs", () => import("@holdout/store-fs"))
const loadSqliteStore = loadPackage("@holdout/store-sqlite", () => import("@holdout/store-sqlite"))
const loadPgStore = loadPackage("@holdout/store-pg", () => import("@holdout/store-pg"))
const loadHarbor = loadPackage("@holdout/strategy-harbor", () => import("@holdout/strategy-harbor"))

const isTask = (value: unknown): value is Task.Task<unknown, unknown, unknown> =>
  typeof value === "object" && value !== null && Task.TypeId in value

/** Loads the `Task` a module exports. */
const loadTask = (file: string, name: string) =>
  importModule(file).pipe(
    Effect.mapError((error) =>
      new HoldoutError.ConfigError({ message: `Cannot load the task module ${file}: ${String(error)}` })
    ),
    Effect.flatMap((module) =>
      isTask(module[name])
        ? Effect.succeed(module[name])
        : Effect.fail(
          new HoldoutError.ConfigError({
            message: `${file} has no Task export "${name}" (made with Task.make); it exports: ${
              Object.keys(module).join(", ") || "nothing"
            }.`
          })
        )
    )
  )

/**
 * What building a configuration's stack can fail with.
 *
 * @since 0.1.0
 * @category models
 */
export type StackError =
  | HoldoutError.ConfigError
  | HoldoutError.StoreError
  | HoldoutError.StrategyError
  | HoldoutError.LedgerCorrupt
  | HoldoutError.LedgerLocked

/**
 * The services a configuration's stack needs from the runtime.
 *
 * @since 0.1.0
 * @category models
 */
export type Requirements = FileSystem.FileSystem | Path.Path | CommandExecutor.CommandExecutor

/**
 * The stack a configuration describes (engine, ledger, store, datasets, strategy, workspace).
 *
 * @since 0.1.0
 * @category layers
 */
export const stack = (
  loaded: Loaded
): Layer.Layer<Stack.Services | Workspace.Workspace, StackError, Requirements> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const path = yield* Path.Path
    const { config } = loaded
    const at = (relative: string) => path.resolve(loaded.baseDir, relative)
    const budgets = config.budgets
    const releaseConfig = releases(config)
    // the ledger meters the overfitting budgets of thresholdout splits beside the splits' own budgets,
    // as `Stack.layerWith` would give them (the stores serve both tags, so they are built here once)
    const ledgerBudgets = [...budgets, ...Release.overfitBudgets(releaseConfig, budgets)]

    const dir = at(config.store.kind === "fs" ? config.store.dir : "")
    const stores: Layer.Layer<Ledger.Ledger | TaskStore.TaskStore, StackError, Requirements> =
      config.store.kind === "sqlite"
        ? Layer.unwrapEffect(Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          const filename = at(config.store.kind === "sqlite" ? config.store.filename : "")
          yield* fs.makeDirectory(path.dirname(filename), { recursive: true }).pipe(Effect.ignore)
          const { SqliteStore } = yield* loadSqliteStore
          // better-sqlite3 is the embedded default on Node; it does not load under Deno, libsql does
          return "Deno" in globalThis
            ? SqliteStore.layerLibsql({ filename, budgets: ledgerBudgets })
            : SqliteStore.layer({ filename, budgets: ledgerBudgets })
        }))
        : config.store.kind === "postgres"
        ? Layer.unwrapEffect(Effect.map(
          loadPgStore,
          ({ PgStore }) =>
            PgStore.layer({
              url: config.store.kind === "postgres" ? config.store.url : undefined,
              budgets: ledgerBudgets
            })
        ))
        : config.store.kind === "fs"
        ? Layer.unwrapEffect(Effect.map(loadFsStore, ({ FsStore }) => FsStore.layer({ dir, budgets: ledgerBudgets })))
        : Layer.merge(Ledger.layerMemory(ledgerBudgets), TaskStore.layerMemory)

    const datasetsConfig = config.datasets
    const datasets: Layer.Layer<DatasetSource.DatasetSource, HoldoutError.ConfigError, Requirements> =
      datasetsConfig.kind === "jsonl"
        ? DatasetSource.layerJsonlDir({ dir: at(datasetsConfig.dir) })
        : Layer.unwrapEffect(
          Effect.map(
            loadHarbor,
            ({ HarborDataset }) =>
              HarborDataset.layer({ datasetId: datasetsConfig.datasetId, partition: datasetsConfig.partition })
          )
        )

    const workspace: Layer.Layer<Workspace.Workspace, HoldoutError.StrategyError, Requirements> =
      config.workspace?.kind === "git"
        ? GitWorkspace.layer({
          repo: at(config.workspace.repo),
          ...(config.workspace.dir === undefined ? {} : { dir: at(config.workspace.dir) })
        })
        : Workspace.layerStatic(at(config.workspace?.kind === "static" ? config.workspace.path : "."))

    const strategyConfig = config.strategy
    const strategy = strategyConfig.kind === "task"
      ? Layer.unwrapEffect(Effect.map(
        loadTask(at(strategyConfig.module), strategyConfig.export ?? "default"),
        (task) =>
          LocalStrategy.layer(task, {
            ...(strategyConfig.concurrency === undefined ? {} : { concurrency: strategyConfig.concurrency }),
            ...(strategyConfig.timeoutSeconds === undefined
              ? {}
              : { timeout: `${strategyConfig.timeoutSeconds} seconds` as const })
          })
      ))
      : Layer.unwrapEffect(Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const { HarborConfig, HarborStrategy } = yield* loadHarbor
        const harbor = yield* HarborConfig.decode(strategyConfig.harbor)
        // a local task directory is relative to the configuration; anything else is a registry reference
        const local = yield* fs.exists(at(harbor.taskSource)).pipe(Effect.orElseSucceed(() => false))
        const taskSource = local ? at(harbor.taskSource) : harbor.taskSource
        return HarborStrategy.layer({ config: { ...harbor, taskSource }, dir: at(strategyConfig.dir) })
      }))

    return Stack.layerWith({
      budgets,
      policy: config.policy,
      ledger: () => stores,
      store: stores,
      datasets,
      strategy: strategy.pipe(Layer.provide(workspace)),
      engine: {
        releases: releaseConfig,
        // a string that is not a duration is the engine's ConfigError, naming the field
        ...(config.engine?.statusMaxAge === undefined
          ? {}
          : { statusMaxAge: config.engine.statusMaxAge as Duration.DurationInput })
      }
    }).pipe(Layer.provideMerge(workspace))
  }))

/**
 * The verifier a configuration describes; without a `verifier` section, `auto_best` is not
 * possible and the verifier only accepts submissions.
 *
 * @since 0.1.0
 * @category layers
 */
export const verifier = (
  loaded: Loaded
): Layer.Layer<
  Verifier.Verifier,
  HoldoutError.ConfigError,
  Engine.Engine | TaskStore.TaskStore | DatasetSource.DatasetSource | SplitAccess.SplitAccess
> =>
  Verifier.layer({
    mode: loaded.config.verifier?.mode ?? "submit",
    targets: loaded.config.verifier?.targets ?? [],
    ...(loaded.config.verifier?.selection === undefined ? {} : { selection: loaded.config.verifier.selection }),
    ...(loaded.config.verifier?.baseline === undefined ? {} : { baseline: { id: loaded.config.verifier.baseline } }),
    ...(loaded.config.verifier?.topK === undefined ? {} : { topK: loaded.config.verifier.topK }),
    ...(loaded.config.verifier?.significance === undefined
      ? {}
      : { significance: loaded.config.verifier.significance }),
    ...(loaded.config.verifier?.correction === undefined ? {} : { correction: loaded.config.verifier.correction }),
    ...(loaded.config.verifier?.poolTrees === undefined ? {} : { poolTrees: loaded.config.verifier.poolTrees }),
    ...(loaded.config.verifier?.freeBaseline === undefined ? {} : { freeBaseline: loaded.config.verifier.freeBaseline })
  })
