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
import { HoldoutError } from "@holdout/core"
import { HarborConfig } from "@holdout/strategy-harbor"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Yaml from "yaml"
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
    maxSamplesPerRun: Schema.optional(Positive)
  })),
  verifier: Schema.Struct({
    mode: Schema.optionalWith(Schema.Literal("auto_best", "submit"), { default: () => "auto_best" as const }),
    /** The split `auto_best` selects on. */
    selection: Schema.optionalWith(Schema.NonEmptyString, { default: () => "validation" }),
    targets: Schema.NonEmptyArray(Schema.Struct({
      split: Schema.NonEmptyString,
      rewardKey: Schema.optionalWith(Schema.NonEmptyString, { default: () => "reward" }),
      sampleIds: Schema.optional(Schema.Array(Schema.Int))
    })),
    topK: Schema.optionalWith(Positive, { default: () => 3 }),
    significance: Schema.optional(Schema.Number.pipe(Schema.greaterThan(0), Schema.lessThan(1)))
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

/** Where things are in the containers. */
const agentRepoPath = "/app/agent"
const sidecarHome = "/srv/holdout"
const tokenMount = "/state/token"
const resultsMount = "/state/agent-results"
const sidecarPort = 8000

/** The packages both images install (the harness and what it depends on). */
const packageNames = ["core", "harness", "store-fs", "store-pg", "store-sqlite", "strategy-harbor"] as const

/**
 * The stack the sidecar serves, as `environment/sidecar/holdout.yaml` (paths relative to it, as it
 * sits in `/srv/holdout`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const sidecarConfig = (
  config: BuildConfig,
  harbor: HarborConfig.Input,
  baseCommit: string
): Record<string, unknown> => ({
  store: { kind: "sqlite", filename: "admin/holdout.db" },
  datasets: { kind: "harbor", datasetId: config.datasetId, partition: config.partition },
  strategy: { kind: "harbor", harbor, dir: "admin/harbor" },
  workspace: { kind: "git", repo: "agent-repo", dir: "admin/checkouts" },
  budgets: config.budgets.map((budget) => ({ datasetId: config.datasetId, ...budget })),
  policy: config.policy,
  verifier: {
    mode: config.verifier.mode,
    selection: { datasetId: config.datasetId, split: config.verifier.selection },
    targets: config.verifier.targets.map((target) => ({ datasetId: config.datasetId, ...target })),
    baseline: baseCommit,
    topK: config.verifier.topK,
    ...(config.verifier.significance === undefined ? {} : { significance: config.verifier.significance })
  },
  sidecar: { tokenFile: "token/admin.token", resultsDir: "results", host: "0.0.0.0", port: sidecarPort }
})

const tomlString = (text: string) => JSON.stringify(text)

/**
 * `task.toml`: Harbor's task configuration of the outer task.
 *
 * @since 0.1.0
 * @category constructors
 */
export const taskToml = (config: BuildConfig, verifierTimeoutSeconds: number): string =>
  [
    `schema_version = "1.3"`,
    ``,
    `[task]`,
    `name = ${tomlString(config.name)}`,
    `description = ${tomlString(config.description)}`,
    ``,
    `[agent]`,
    `user = "agent"`,
    `timeout_sec = ${config.timeoutSeconds.toFixed(1)}`,
    ``,
    `[verifier]`,
    `environment_mode = "shared"`,
    `timeout_sec = ${verifierTimeoutSeconds.toFixed(1)}`,
    ``,
    `[environment]`,
    `build_timeout_sec = 1800.0`,
    ``
  ].join("\n")

/**
 * `environment/docker-compose.yaml`: `main` (merged over Harbor's own) and `eval-sidecar`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const composeFile = (config: BuildConfig): Record<string, unknown> => ({
  services: {
    main: {
      build: { context: ".", dockerfile: "Dockerfile" },
      user: "root",
      command: ["/opt/holdout/seed.sh"],
      environment: { HOLDOUT_URL: `http://eval-sidecar:${sidecarPort}` },
      volumes: [
        `agent_repo:${agentRepoPath}`,
        `agent_results:${resultsMount}:ro`,
        `token_state:${tokenMount}:ro`
      ],
      depends_on: { "eval-sidecar": { condition: "service_healthy" } }
    },
    "eval-sidecar": {
      build: { context: ".", dockerfile: "sidecar/Dockerfile" },
      user: "root",
      command: ["holdout", "serve", "--config", `${sidecarHome}/holdout.yaml`],
      working_dir: sidecarHome,
      environment: {
        HOLDOUT_LOG: "info",
        ...Object.fromEntries(
          config.secrets.map((name) => [name, `\${${name}:?set ${name} on the host running harbor}`])
        )
      },
      volumes: [
        `agent_repo:${sidecarHome}/agent-repo:ro`,
        `agent_results:${sidecarHome}/results`,
        `admin_state:${sidecarHome}/admin`,
        `token_state:${sidecarHome}/token`
      ],
      healthcheck: {
        test: [
          "CMD",
          "node",
          "-e",
          `fetch("http://127.0.0.1:${sidecarPort}/health").then(r=>process.exit(r.ok?0:1),()=>process.exit(1))`
        ],
        interval: "5s",
        timeout: "5s",
        retries: 30
      }
    }
  },
  volumes: { agent_repo: {}, agent_results: {}, admin_state: {}, token_state: {} }
})

const installPackages = [
  `COPY holdout-packages/ /opt/holdout-packages/`,
  `RUN npm install --global --no-audit --no-fund /opt/holdout-packages/*.tgz && holdout --version`
]

/**
 * `environment/Dockerfile`: the optimizer's image (Node 20, git, the `holdout` CLI, the seed).
 *
 * @since 0.1.0
 * @category constructors
 */
export const mainDockerfile = (config: BuildConfig): string =>
  [
    `FROM ${config.nodeImage}`,
    `RUN apt-get update && apt-get install -y --no-install-recommends git ca-certificates && rm -rf /var/lib/apt/lists/*`,
    `RUN useradd --create-home --shell /bin/bash agent`,
    ...installPackages,
    `COPY main/agent-seed/ /opt/holdout/agent-seed/`,
    `COPY main/seed.sh /opt/holdout/seed.sh`,
    `RUN chmod 755 /opt/holdout/seed.sh && git config --system --add safe.directory '*'`,
    `ENV HOLDOUT_URL=http://eval-sidecar:${sidecarPort}`,
    `WORKDIR ${agentRepoPath}`,
    ``
  ].join("\n")

/**
 * `environment/sidecar/Dockerfile`: the sidecar's image (Node 20, git, `holdout`, its own `harbor`,
 * the stack's configuration and the inner tasks).
 *
 * @since 0.1.0
 * @category constructors
 */
export const sidecarDockerfile = (config: BuildConfig): string =>
  [
    `FROM ${config.nodeImage}`,
    `RUN apt-get update && apt-get install -y --no-install-recommends git ca-certificates python3 python3-venv ` +
    `&& rm -rf /var/lib/apt/lists/*`,
    `RUN python3 -m venv /opt/harbor && /opt/harbor/bin/pip install --no-cache-dir ${
      JSON.stringify(config.harborRequirement)
    } && ln -s /opt/harbor/bin/harbor /usr/local/bin/harbor`,
    ...installPackages,
    `RUN git config --system --add safe.directory '*'`,
    `COPY sidecar/ ${sidecarHome}/`,
    `WORKDIR ${sidecarHome}`,
    `EXPOSE ${sidecarPort}`,
    ``
  ].join("\n")

const shellQuote = (text: string) => `'${text.replaceAll("'", `'"'"'`)}'`

/**
 * `environment/main/seed.sh`: fills the agent repository from the seed once, gives it to `agent`,
 * makes the read-only paths root's, and keeps the container up.
 *
 * @since 0.1.0
 * @category constructors
 */
export const seedScript = (config: BuildConfig): string =>
  [
    `#!/bin/bash`,
    `set -euo pipefail`,
    `repo="\${HOLDOUT_AGENT_REPO:-${agentRepoPath}}"`,
    `if [ ! -d "$repo/.git" ]; then`,
    `  mkdir -p "$repo"`,
    `  cp -a /opt/holdout/agent-seed/. "$repo/"`,
    `fi`,
    `chown -R agent:agent "$repo"`,
    ...config.readOnlyPaths.map((entry) =>
      `if [ -e "$repo"/${shellQuote(entry)} ]; then chown -R root:root "$repo"/${
        shellQuote(entry)
      } && chmod -R a-w "$repo"/${shellQuote(entry)}; fi`
    ),
    `exec sleep infinity`,
    ``
  ].join("\n")

/**
 * `tests/test.sh`: the verifier, run as root in `main` while the stack is up: finalizes with the
 * admin token and writes `reward.json`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const testScript = (): string =>
  [
    `#!/bin/bash`,
    `set -euo pipefail`,
    `url="\${HOLDOUT_URL:-http://eval-sidecar:${sidecarPort}}"`,
    `token="\${HOLDOUT_TOKEN_FILE:-${tokenMount}/admin.token}"`,
    `logs="\${HOLDOUT_LOGS_DIR:-/logs}"`,
    `mkdir -p "$logs/verifier"`,
    `holdout finalize --url "$url" --token-file "$token" --output "$logs/verifier/reward.json"`,
    `cat "$logs/verifier/reward.json"`,
    ``
  ].join("\n")

/**
 * `solution/solve.sh`: the oracle's smoke test of the stack: a commit, one evaluation on the
 * selection split, the status.
 *
 * @since 0.1.0
 * @category constructors
 */
export const solveScript = (config: BuildConfig): string =>
  [
    `#!/bin/bash`,
    `set -euo pipefail`,
    `url="\${HOLDOUT_URL:-http://eval-sidecar:${sidecarPort}}"`,
    `cd "\${HOLDOUT_AGENT_REPO:-${agentRepoPath}}"`,
    `echo "" >> README.md`,
    `echo "Checked by the oracle." >> README.md`,
    `git add README.md`,
    `git -c user.name=oracle -c user.email=oracle@localhost commit --quiet -m "oracle: smoke test"`,
    `holdout eval --url "$url" --dataset ${shellQuote(config.datasetId)} --split ${
      shellQuote(config.verifier.selection)
    } --commit HEAD`,
    `holdout status --url "$url"`,
    ``
  ].join("\n")

const tierLine = {
  viewable: "you see the mean and every task's result",
  non_viewable: "you see the mean only",
  no_access: "you cannot evaluate on it"
} as const

/**
 * `instruction.md`: what the optimizer is asked to do, and the rules.
 *
 * @since 0.1.0
 * @category constructors
 */
export const instruction = (config: BuildConfig): string => {
  const budgetOf = (split: string) => {
    const budget = config.budgets.find((entry) => entry.split === split)
    if (budget === undefined) return "no budget"
    const parts = [
      ...(budget.runs === undefined ? [] : [`${budget.runs} evaluation(s)`]),
      ...(budget.samples === undefined ? [] : [`${budget.samples} task run(s)`])
    ]
    return parts.length === 0 ? "unmetered" : parts.join(", ")
  }
  const splits = Object.entries(config.policy).map(([split, tier]) =>
    `- \`${split}\` (${tier}): ${tierLine[tier]}; budget: ${budgetOf(split)}`
  )
  const selection = config.verifier.mode === "auto_best"
    ? `When your time is up, the candidates with the best recorded means on \`${config.verifier.selection}\` ` +
      `are re-scored, and the best of them (only if it beats the starting commit) is scored on the hidden ` +
      `targets. Your recorded scores only shortlist: evaluate the commits you want considered.`
    : `When your time is up, the commit you submitted with \`holdout submit --commit <commit>\` is scored on ` +
      `the hidden targets.`
  return [
    `# ${config.name}`,
    ``,
    config.description,
    ``,
    `Improve the agent in \`${agentRepoPath}\` (a git repository). Its score is measured by an evaluation`,
    `service you reach with the \`holdout\` command (the service's address is in \`HOLDOUT_URL\`).`,
    ``,
    `## Workflow`,
    ``,
    `1. Change the agent and commit (\`git commit\`): only committed work is evaluated.`,
    `2. \`holdout eval --dataset ${config.datasetId} --split <split> --commit HEAD\` evaluates the commit and`,
    `   charges the split's budget; \`--num-samples N\` evaluates the first N tasks only.`,
    `3. \`holdout status\` shows every split's tier and remaining budget; \`holdout samples\` the per-task`,
    `   results of a viewable split (also under \`${resultsMount}\`).`,
    ``,
    `## Splits`,
    ``,
    ...splits,
    ``,
    `## Rules`,
    ``,
    `- ${selection}`,
    `- Evaluations of the starting commit are never candidates.`,
    `- A budget spent is spent; an evaluation refused for lack of budget costs nothing. Unspent budget is wasted.`,
    ...(config.readOnlyPaths.length === 0
      ? []
      : [`- Do not change: ${config.readOnlyPaths.map((entry) => `\`${entry}\``).join(", ")}.`]),
    ``
  ].join("\n")
}

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
          `\`npm pack --workspaces --pack-destination ${packages}\` in the Holdout repository.`
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

    const sidecar = sidecarConfig(config, harborInput as HarborConfig.Input, baseCommit)
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
