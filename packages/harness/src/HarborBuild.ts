/**
 * The Harbor task compiler: one optimization, described by a `build.yaml`, rendered as one Harbor
 * task that `harbor run` races coding agents on (`holdout harbor build`, `holdout harbor run`).
 *
 * The task runs as a compose stack of two services. `main` is the optimizer's workbench: the agent
 * repository at `/app/agent` (seeded from a baseline commit), the `holdout` CLI, and the sidecar's
 * address in `HOLDOUT_URL`. `eval-sidecar` runs `holdout serve` from the rendered
 * `environment/sidecar/holdout.yaml`, with the Harbor strategy over the tasks baked into its image
 * (`inner-task/`), the store, the nested jobs and the admin token on volumes `main` cannot read
 * (the token volume is mounted in `main` read-only and the token file is root's, mode 0600, so only
 * the verifier, which runs as root, reads it). Secrets are named only: the compose file passes each
 * from the host to the sidecar, and the build fails when one is not set.
 *
 * ```yaml
 * name: holdout-examples/optimize-agent       # Harbor's org/name
 * agentRepo: ../agent                          # the optimizer's starting point (git HEAD, or a directory)
 * packages: ../packs                           # `npm pack` tarballs of the Holdout packages
 * innerTask: ../harbor/tasks                   # tasks baked into the sidecar (else harbor.taskSource is a registry ref)
 * harbor: { agent: oracle, attempts: 1, timeoutSeconds: 1800 }
 * partition: { train: [hello-file], validation: [reverse-words] }
 * policy: { train: viewable, validation: non_viewable }
 * budgets: [{ split: train, runs: 5 }, { split: validation, runs: 2 }]
 * verifier: { mode: auto_best, selection: validation, targets: [{ split: validation, rewardKey: reward }] }
 * secrets: [OPENAI_API_KEY]
 * readOnlyPaths: [tests]
 * ```
 *
 * The nested runs use the sidecar image's own harbor: the rendered stack names it as the strategy's
 * `trustedHarbor` (`/opt/harbor/bin/harbor`, where the sidecar's Dockerfile installs it; `harbor.trustedHarbor`
 * in the file overrides it, as an absolute path of the image).
 *
 * Paths in the file are relative to it. The rendered scripts read their locations from the
 * environment, with the container's paths as defaults (`HOLDOUT_URL`, `HOLDOUT_TOKEN_FILE`,
 * `HOLDOUT_LOGS_DIR`, `HOLDOUT_AGENT_REPO`), so the task can also be exercised outside Docker.
 *
 * @since 0.1.0
 */
import * as Command from "@effect/platform/Command"
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { HoldoutError, Model } from "@holdout/core"
import { HarborConfig } from "@holdout/strategy-harbor"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Yaml from "yaml"
import {
  composeFile,
  imageHarbor,
  instruction,
  mainDockerfile,
  packageNames,
  seedScript,
  sidecarConfig,
  sidecarDockerfile,
  solveScript,
  taskToml,
  testScript
} from "./internal/harborTask.js"
import { describeIssues } from "./StackConfig.js"

const Tier = Schema.Literal("viewable", "non_viewable", "no_access")
const Count = Schema.Int.pipe(Schema.greaterThanOrEqualTo(0))
const Positive = Schema.Int.pipe(Schema.greaterThanOrEqualTo(1))
const EnvName = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: () => "a secret is an environment variable's name" })
)
const RelativePath = Schema.String.pipe(
  Schema.pattern(/^(?!\/)(?!.*(^|\/)\.\.(\/|$)).+$/, {
    message: () => "a read-only path is relative to the agent repository and stays inside it"
  })
)

const TaskEntry = Schema.Union(
  Schema.NonEmptyString,
  Schema.Struct({ include: Schema.NonEmptyString, resultKey: Schema.NonEmptyString })
)

/**
 * The schema of `build.yaml`, decoded strictly: an unknown field is an error naming it.
 *
 * @since 0.1.0
 * @category models
 */
export const BuildConfig = Schema.Struct({
  /** The outer task's Harbor name, `org/name`. */
  name: Schema.String.pipe(
    Schema.pattern(/^[a-z0-9][a-z0-9._-]*\/[a-z0-9][a-z0-9._-]*$/, { message: () => "a task name is org/name" })
  ),
  description: Schema.optionalWith(Schema.String, { default: () => "" }),
  /** The optimizer's starting point: a git repository (its HEAD is taken) or a plain directory. */
  agentRepo: Schema.NonEmptyString,
  /** A directory of the Holdout packages packed with `npm pack` (installed into both images). */
  packages: Schema.optional(Schema.NonEmptyString),
  /** The Harbor strategy's configuration (`taskSource` defaults to the baked `innerTask`). */
  harbor: Schema.Record({ key: Schema.String, value: Schema.Unknown }),
  /** A local task or dataset directory, baked into the sidecar's image only. */
  innerTask: Schema.optional(Schema.NonEmptyString),
  datasetId: Schema.optionalWith(Schema.NonEmptyString, { default: () => "tasks" }),
  partition: Schema.Record({ key: Schema.String, value: Schema.Array(TaskEntry) }),
  policy: Schema.Record({ key: Schema.String, value: Tier }),
  budgets: Schema.Array(Schema.Struct({
    split: Schema.NonEmptyString,
    runs: Schema.optional(Count),
    samples: Schema.optional(Count),
    maxSamplesPerRun: Schema.optional(Positive),
    /** Runs and samples of the split only the verifier may spend (the final re-scores). */
    reservedForFinalize: Model.SplitBudget.fields.reservedForFinalize
  })),
  verifier: Schema.Struct({
    mode: Schema.optionalWith(Schema.Literal("auto_best", "submit"), { default: () => "auto_best" as const }),
    /** The split `auto_best` selects on. */
    selection: Schema.optionalWith(Schema.NonEmptyString, { default: () => "validation" }),
    targets: Schema.NonEmptyArray(Schema.Struct({
      split: Schema.NonEmptyString,
      rewardKey: Schema.optionalWith(Schema.NonEmptyString, { default: () => "reward" }),
      sampleIds: Schema.optional(Schema.Array(Schema.Int)),
      /** A transfer target: the nested runs of its scoring use this model (`-m`) instead of `harbor.model`. */
      model: Schema.optional(Schema.NonEmptyString)
    })),
    topK: Schema.optionalWith(Positive, { default: () => 3 }),
    significance: Schema.optional(Schema.Number.pipe(Schema.greaterThan(0), Schema.lessThan(1))),
    /** The optimizer's first evaluation of the starting commit on each split is free (still tiered). */
    freeBaseline: Schema.optionalWith(Schema.Boolean, { default: () => false }),
    /** `auto_best` pools commits with the same git tree into one candidate, so re-commits cannot stuff the shortlist. */
    poolTrees: Schema.optionalWith(Schema.Boolean, { default: () => false })
  }),
  /** Paths of the agent repository made root-owned and read-only in `main` (advisory: commits can still change them). */
  readOnlyPaths: Schema.optionalWith(Schema.Array(RelativePath), { default: () => [] }),
  /** Names of environment variables passed from the host to the sidecar only; each must be set at build. */
  secrets: Schema.optionalWith(Schema.Array(EnvName), { default: () => [] }),
  /** The optimizer's time, in seconds. */
  timeoutSeconds: Schema.optionalWith(Positive, { default: () => 1800 }),
  /** The verifier's time, in seconds (default: the whole finalize battery, see `verifierTimeout`). */
  verifierTimeoutSeconds: Schema.optional(Positive),
  /** The base image of both services. */
  nodeImage: Schema.optionalWith(Schema.NonEmptyString, { default: () => "node:20-bookworm" }),
  /** The pip requirement of the sidecar's own `harbor` (the nested runs never use the candidate's). */
  harborRequirement: Schema.optionalWith(Schema.NonEmptyString, { default: () => "harbor" })
})

/**
 * @since 0.1.0
 * @category models
 */
export type BuildConfig = typeof BuildConfig.Type

const decodeBuild = Schema.decodeUnknownEither(BuildConfig, { onExcessProperty: "error", errors: "all" })

const configError = (message: string) => new HoldoutError.ConfigError({ message })

/**
 * Parses and decodes a `build.yaml` (YAML, or JSON for a `.json` file).
 *
 * @since 0.1.0
 * @category constructors
 */
export const parse = (file: string, text: string): Either.Either<BuildConfig, HoldoutError.ConfigError> => {
  let document: unknown
  try {
    document = /\.json$/i.test(file) ? JSON.parse(text) : Yaml.parse(text)
  } catch (error) {
    return Either.left(configError(`${file} does not parse: ${String(error).split("\n")[0]}`))
  }
  return Either.mapLeft(decodeBuild(document), (error) =>
    configError(
      `${file} is not a valid Harbor build: ${
        describeIssues(ParseResult.ArrayFormatter.formatErrorSync(error))
      }. Fix the file and run again.`
    ))
}

/**
 * How many nested runs a finalize may make: under `auto_best` the top K re-scored and the baseline,
 * then every target, each tried twice at most.
 */
const batteryRuns = (config: BuildConfig): number =>
  (config.verifier.mode === "auto_best" ? config.verifier.topK + 1 : 0) + 2 * config.verifier.targets.length

/**
 * The verifier's timeout: the configured one, else one nested run's timeout for every run of the
 * finalize battery (`topK` re-scores and the baseline under `auto_best`, then each target's two
 * attempts), plus ten minutes for the rest.
 *
 * @since 0.1.0
 * @category utils
 */
export const verifierTimeout = (config: BuildConfig, harbor: HarborConfig.HarborConfig): number =>
  config.verifierTimeoutSeconds ?? Math.ceil(batteryRuns(config) * harbor.timeoutSeconds + 600)

/**
 * What a build produced.
 *
 * @since 0.1.0
 * @category models
 */
export interface Built {
  readonly dir: string
  /** The baseline commit of the agent repository (the verifier's baseline). */
  readonly baseCommit: string
  readonly files: ReadonlyArray<string>
}

/**
 * Options of {@link build}.
 *
 * @since 0.1.0
 * @category models
 */
export interface BuildOptions {
  /** The environment the secrets are checked in (default: this process's). */
  readonly env?: Readonly<Record<string, string | undefined>>
  /** The packed packages' directory, over the file's `packages`. */
  readonly packages?: string
}

/**
 * Reads `build.yaml` and renders the task into `out`, which must be new, empty, or a task rendered
 * before (it is emptied first).
 *
 * @since 0.1.0
 * @category constructors
 */
export const build = (
  file: string,
  out: string,
  options: BuildOptions = {}
): Effect.Effect<
  Built,
  HoldoutError.ConfigError,
  FileSystem.FileSystem | Path.Path | CommandExecutor.CommandExecutor
> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const ioError = (what: string) => (error: { readonly message: string }) =>
      configError(`Could not ${what}: ${error.message.split("\n")[0]}`)
    const absolute = path.resolve(file)
    const baseDir = path.dirname(absolute)
    const at = (relative: string) => path.resolve(baseDir, relative)
    const text = yield* fs.readFileString(absolute).pipe(Effect.mapError(ioError(`read ${file}`)))
    const config = yield* parse(file, text)

    // every split named must be one the partition has, with a tier
    const splits = new Set(Object.keys(config.partition))
    const named = [
      ...Object.keys(config.policy).map((split) => ["policy", split] as const),
      ...config.budgets.map((budget) => ["budgets", budget.split] as const),
      ["verifier.selection", config.verifier.selection] as const,
      ...config.verifier.targets.map((target) => ["verifier.targets", target.split] as const)
    ]
    for (const [where, split] of named) {
      if (!splits.has(split)) {
        return yield* configError(
          `${file}: ${where} names the split "${split}", which the partition does not have (it has ${
            [...splits].join(", ")
          }): fix the split's name.`
        )
      }
    }
    for (const split of splits) {
      if (config.policy[split] === undefined) {
        return yield* configError(`${file}: the split "${split}" has no tier: add it to policy.`)
      }
    }

    const missing = config.secrets.filter((name) => (options.env ?? process.env)[name] === undefined)
    if (missing.length > 0) {
      return yield* configError(
        `The secret(s) ${missing.join(", ")} named in ${file} are not set: export them before building ` +
          `(only their names are written into the task).`
      )
    }

    // the nested runs' tasks: baked into the sidecar, or a registry reference
    if (config.innerTask === undefined && typeof config.harbor.taskSource !== "string") {
      return yield* configError(
        `${file} has neither innerTask nor harbor.taskSource: set innerTask to a local task directory, ` +
          `or harbor.taskSource to a registry reference.`
      )
    }
    const harborInput = {
      ...config.harbor,
      ...(config.innerTask === undefined ? {} : { taskSource: "inner-task" })
    }
    const harbor = yield* HarborConfig.decode(harborInput).pipe(
      Effect.mapError((error) => configError(`${file}: ${error.message.replace("strategy.harbor", "harbor")}`))
    )
    // the nested runs start in the candidate's checkout: a relative program, or a runner such as
    // `uv run`, would let the candidate choose the harbor that scores it
    const [program, ...launcherArgs] = harbor.launcher
    if (launcherArgs.length > 0 || (program.includes("/") && !path.isAbsolute(program))) {
      return yield* configError(
        `${file}: harbor.launcher must be one executable of the sidecar's image (a name on PATH or an absolute ` +
          `path), not ${
            JSON.stringify(harbor.launcher)
          }: the nested harbor is the sidecar's own, never the candidate's.`
      )
    }

    // the nested runs use the image's own harbor, by absolute path (never a PATH lookup, never the candidate's)
    const trustedHarbor = harbor.trustedHarbor ?? imageHarbor
    if (!path.isAbsolute(trustedHarbor)) {
      return yield* configError(
        `${file}: harbor.trustedHarbor must be an absolute path of the sidecar's image, not ${
          JSON.stringify(trustedHarbor)
        } (the default is ${imageHarbor}, where the sidecar's Dockerfile installs harbor).`
      )
    }

    // the packed packages, one tarball each
    const packages = options.packages ?? config.packages
    if (packages === undefined) {
      return yield* configError(
        `${file} names no packages directory: set packages in it, or pass --packages <dir of npm pack tarballs>.`
      )
    }
    const packagesDir = options.packages === undefined ? at(packages) : path.resolve(packages)
    const packed = yield* fs.readDirectory(packagesDir).pipe(
      Effect.mapError(ioError(`read the packages directory ${packages}`))
    )
    const tarballs = packageNames.map((name) =>
      [name, packed.find((entry) => entry.startsWith(`holdout-${name}-`) && entry.endsWith(".tgz"))] as const
    )
    const absent = tarballs.filter(([, entry]) => entry === undefined).map(([name]) => `@holdout/${name}`)
    if (absent.length > 0) {
      return yield* configError(
        `${packages} has no tarball of ${absent.join(", ")}: run \`npm run build\` and ` +
          `\`npm pack -w packages --pack-destination ${packages}\` in the Holdout repository.`
      )
    }

    // the output is emptied first: only when it is empty or holds a task rendered before
    const output = path.resolve(out)
    const existing: ReadonlyArray<string> = yield* fs.readDirectory(output).pipe(
      Effect.orElseSucceed((): ReadonlyArray<string> => [])
    )
    if (existing.length > 0 && !existing.includes("task.toml")) {
      return yield* configError(
        `Refusing to empty ${out}: it is not empty and holds no task.toml. Give a new or empty directory with -o.`
      )
    }
    yield* fs.remove(output, { recursive: true }).pipe(Effect.catchAll(() => Effect.void))
    const write = (relative: string, content: string, mode?: number) =>
      Effect.gen(function*() {
        const target = path.join(output, relative)
        yield* fs.makeDirectory(path.dirname(target), { recursive: true })
        yield* fs.writeFileString(target, content)
        if (mode !== undefined) yield* fs.chmod(target, mode)
      }).pipe(Effect.mapError(ioError(`write ${relative}`)))

    // the agent repository's baseline: its HEAD (or the directory), committed afresh
    const seed = path.join(output, "environment", "main", "agent-seed")
    yield* fs.makeDirectory(seed, { recursive: true }).pipe(Effect.mapError(ioError(`create ${seed}`)))
    const agentRepo = at(config.agentRepo)
    const git = (cwd: string, ...args: ReadonlyArray<string>) =>
      Command.string(
        Command.make("git", "-c", "core.hooksPath=/dev/null", ...args).pipe(
          Command.workingDirectory(cwd),
          Command.env({
            GIT_AUTHOR_NAME: "holdout",
            GIT_AUTHOR_EMAIL: "holdout@localhost",
            GIT_COMMITTER_NAME: "holdout",
            GIT_COMMITTER_EMAIL: "holdout@localhost",
            GIT_AUTHOR_DATE: "2000-01-01T00:00:00Z",
            GIT_COMMITTER_DATE: "2000-01-01T00:00:00Z"
          })
        )
      ).pipe(Effect.mapError(ioError(`run git ${args[0]} in ${cwd}`)))
    const isRepo = yield* fs.exists(path.join(agentRepo, ".git")).pipe(Effect.orElseSucceed(() => false))
    if (isRepo) {
      const archive = path.join(output, "agent-seed.tar")
      const code = yield* Command.exitCode(
        Command.make("git", "-C", agentRepo, "archive", "--format=tar", "-o", archive, "HEAD")
      ).pipe(Effect.orElseSucceed(() => 1))
      if (code !== 0) {
        return yield* configError(
          `Could not archive HEAD of ${config.agentRepo}: commit something there first, or point agentRepo at a directory.`
        )
      }
      yield* Command.exitCode(Command.make("tar", "-xf", archive, "-C", seed)).pipe(
        Effect.mapError(ioError("unpack the agent repository")),
        Effect.filterOrFail((code) => code === 0, () => configError("Could not unpack the agent repository's archive."))
      )
      yield* fs.remove(archive).pipe(Effect.ignore)
    } else {
      yield* fs.copy(agentRepo, seed).pipe(Effect.mapError(ioError(`copy ${config.agentRepo}`)))
    }
    yield* git(seed, "init", "--quiet", "--initial-branch=main")
    yield* git(seed, "add", "--all")
    yield* git(seed, "commit", "--quiet", "--allow-empty", "-m", "baseline")
    const baseCommit = (yield* git(seed, "rev-parse", "HEAD")).trim()

    const sidecar = sidecarConfig(config, { ...harborInput, trustedHarbor } as HarborConfig.Input, baseCommit)
    yield* write("task.toml", taskToml(config, verifierTimeout(config, harbor)))
    yield* write("instruction.md", instruction(config))
    yield* write("environment/docker-compose.yaml", Yaml.stringify(composeFile(config)))
    yield* write("environment/Dockerfile", mainDockerfile(config))
    yield* write("environment/sidecar/Dockerfile", sidecarDockerfile(config))
    yield* write("environment/sidecar/holdout.yaml", Yaml.stringify(sidecar))
    yield* write("environment/main/seed.sh", seedScript(config), 0o755)
    yield* write("tests/test.sh", testScript(), 0o755)
    yield* write("solution/solve.sh", solveScript(config), 0o755)
    if (config.innerTask !== undefined) {
      yield* fs.copy(at(config.innerTask), path.join(output, "environment", "sidecar", "inner-task")).pipe(
        Effect.mapError(ioError(`copy the inner task ${config.innerTask}`))
      )
    }
    yield* fs.makeDirectory(path.join(output, "environment", "holdout-packages"), { recursive: true }).pipe(
      Effect.mapError(ioError("create environment/holdout-packages"))
    )
    for (const [, entry] of tarballs) {
      yield* fs.copyFile(path.join(packagesDir, entry!), path.join(output, "environment", "holdout-packages", entry!))
        .pipe(Effect.mapError(ioError(`copy ${entry}`)))
    }
    return {
      dir: output,
      baseCommit,
      files: [
        "task.toml",
        "instruction.md",
        "environment/docker-compose.yaml",
        "environment/Dockerfile",
        "environment/sidecar/Dockerfile",
        "environment/sidecar/holdout.yaml",
        "environment/main/seed.sh",
        "tests/test.sh",
        "solution/solve.sh"
      ]
    }
  })
