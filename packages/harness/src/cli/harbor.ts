/**
 * `holdout harbor build` and `holdout harbor run`: one optimization compiled into a Harbor task
 * (`HarborBuild`, loaded only by these commands), and that task run with the `harbor` on PATH.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as PlatformCommand from "@effect/platform/Command"
import * as FileSystem from "@effect/platform/FileSystem"
import { HoldoutError } from "@holdout/core"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { handled } from "./errors.js"
import * as Shared from "./shared.js"

const loadBuild = Effect.promise(() => import("../HarborBuild.js"))

const buildFile = Options.file("config", { exists: "yes" }).pipe(
  Options.withAlias("c"),
  Options.withDescription("The build.yaml describing the optimization.")
)

const packages = Options.directory("packages", { exists: "yes" }).pipe(
  Options.optional,
  Options.withDescription("The directory of the packed Holdout packages (npm pack), over build.yaml's packages.")
)

const buildOptions = (dir: Option.Option<string>) => Option.isSome(dir) ? { packages: dir.value } : {}

const build = Command.make(
  "build",
  {
    config: buildFile,
    output: Options.directory("output").pipe(
      Options.withAlias("o"),
      Options.withDescription(
        "Where to render the task: a new or empty directory, or a task rendered before (replaced)."
      )
    ),
    packages
  },
  (options) =>
    handled(Effect.gen(function*() {
      const HarborBuild = yield* loadBuild
      const built = yield* HarborBuild.build(options.config, options.output, buildOptions(options.packages))
      yield* Console.log(`Harbor task rendered in ${built.dir} (baseline commit ${built.baseCommit.slice(0, 12)})`)
    }))
).pipe(
  Command.withDescription(Shared.describedWith(
    "Compile an optimization (build.yaml) into a Harbor task: compose stack, images, instruction, verifier.",
    ["harbor build -c build.yaml -o task"]
  ))
)

const run = Command.make(
  "run",
  {
    config: buildFile,
    output: Options.directory("output").pipe(
      Options.withAlias("o"),
      Options.optional,
      Options.withDescription("Where to render the task (default: a new temporary directory, kept).")
    ),
    packages,
    agent: Options.text("agent").pipe(Options.withAlias("a"), Options.withDescription("Harbor's optimizer agent.")),
    model: Options.text("model").pipe(Options.withAlias("m"), Options.optional, Options.withDescription("Its model.")),
    env: Options.text("env").pipe(
      Options.withAlias("e"),
      Options.withDefault("docker"),
      Options.withDescription("Harbor's environment.")
    ),
    extra: Args.text({ name: "harbor-argument" }).pipe(
      Args.repeated,
      Args.withDescription("More arguments for `harbor run`, after `--`.")
    )
  },
  (options) =>
    handled(Effect.gen(function*() {
      const HarborBuild = yield* loadBuild
      const fs = yield* FileSystem.FileSystem
      const out = Option.isSome(options.output)
        ? options.output.value
        : yield* fs.makeTempDirectory({ prefix: "holdout-harbor-task-" })
      const built = yield* HarborBuild.build(options.config, out, buildOptions(options.packages))
      yield* Console.log(`Harbor task rendered in ${built.dir}`)
      const args = [
        "run",
        "-p",
        built.dir,
        "-a",
        options.agent,
        "-e",
        options.env,
        ...(Option.isSome(options.model) ? ["-m", options.model.value] : []),
        ...options.extra
      ]
      const code = yield* PlatformCommand.exitCode(
        PlatformCommand.make("harbor", ...args).pipe(
          PlatformCommand.stdin("inherit"),
          PlatformCommand.stdout("inherit"),
          PlatformCommand.stderr("inherit")
        )
      ).pipe(
        Effect.mapError(() =>
          new HoldoutError.ConfigError({
            message: `Could not start \`harbor\`: install Harbor (it must be on PATH), or run \`holdout harbor ` +
              `build\` and \`harbor run -p ${built.dir}\` yourself.`
          })
        )
      )
      if (code !== 0) {
        return yield* new HoldoutError.ConfigError({
          message: `harbor run exited with code ${code}; the task is in ${built.dir}.`
        })
      }
    }))
).pipe(
  Command.withDescription(Shared.describedWith(
    "Compile an optimization (build.yaml) into a Harbor task and run it with `harbor run`.",
    ["harbor run -c build.yaml -a claude-code -m anthropic/claude-sonnet-4-5"]
  ))
)

export const subcommands = [build, run] as const

export const command = Command.make("harbor").pipe(
  Command.withDescription("Run an optimization as a Harbor task: `build` compiles it, `run` also runs it."),
  Command.withSubcommands(subcommands)
)
