/**
 * The nested harbor is the sidecar's own, never one the candidate's checkout supplies: a candidate
 * that chose the harbor scoring it could forge its trials' results. The launcher is fixed when the
 * strategy starts, and checked again against each checkout before a nested run starts.
 *
 * - The sidecar's harbor is `trustedHarbor` (an absolute path that must exist), else `harbor` looked
 *   up on PATH's absolute directories (a relative PATH entry would resolve against the checkout, which
 *   is the nested run's working directory). In the launcher, `{harbor}` stands for it, and so does a
 *   program written `harbor` (the default launcher is `["harbor"]`).
 * - The launcher's program is made absolute at start: a bare name is looked up on PATH's absolute
 *   directories; a relative path (`./bin/harbor`, resolved against the checkout) or one that names
 *   `{candidatePath}` is a `ConfigError`.
 * - A program that is not a harbor by its name (`uv`, `env`, `python`…) is a runner, which would pick
 *   the harbor itself (`uv run --project {candidatePath} harbor` takes the candidate's lockfile's): its
 *   arguments must hand it the sidecar's harbor as `{harbor}`, else it is a `ConfigError`. With
 *   `trustedHarbor` set, the launcher must run it (`{harbor}` or `harbor`).
 * - Before each nested run, the program and the harbor (symbolic links followed) must lie outside
 *   the candidate's checkout, else the run is a `StrategyError` and nothing is started. A program not
 *   found at start is looked up again then; still missing, it is a `StrategyError` saying what to install.
 *
 * @since 0.1.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { HoldoutError } from "@holdout/core"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as HarborConfig from "./HarborConfig.js"

/**
 * The placeholder of the sidecar's harbor in `launcher`.
 *
 * @since 0.1.0
 * @category constants
 */
export const harborPlaceholder = "{harbor}"

/**
 * A launcher fixed at start.
 *
 * @since 0.1.0
 * @category models
 */
export interface Launcher {
  /**
   * The launcher for one nested run in the checkout at `candidatePath`: its program and harbor
   * absolute and outside the checkout (`{candidatePath}` is replaced later, by `HarborArgs`).
   */
  readonly forRun: (
    candidatePath: string
  ) => Effect.Effect<readonly [string, ...Array<string>], HoldoutError.StrategyError>
}

const configError = (message: string) =>
  new HoldoutError.ConfigError({ message: `Invalid Harbor configuration: ${message}` })

const strategyError = (message: string) => new HoldoutError.StrategyError({ strategy: "harbor", message })

/**
 * Fixes a configuration's launcher (see the module's rules); a launcher that could run a harbor of the
 * candidate's choosing is a `ConfigError`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolve = (
  config: HarborConfig.HarborConfig
): Effect.Effect<Launcher, HoldoutError.ConfigError, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const searchPath = yield* Config.string("PATH").pipe(Config.withDefault(""), Effect.orElseSucceed(() => ""))
    const directories = searchPath.split(path.sep === "\\" ? ";" : ":").filter((entry) => path.isAbsolute(entry))

    /** A bare name on PATH's absolute directories: the first regular file there. */
    const lookup = (name: string) =>
      Effect.gen(function*() {
        for (const directory of directories) {
          const candidate = path.join(directory, name)
          const info = yield* Effect.option(fs.stat(candidate))
          if (Option.isSome(info) && info.value.type === "File") return Option.some(candidate)
        }
        return Option.none<string>()
      })

    const launcher = config.launcher
    const shown = JSON.stringify(launcher)
    const trusted = config.trustedHarbor
    if (trusted !== undefined) {
      if (!path.isAbsolute(trusted) || trusted.includes("{candidatePath}")) {
        return yield* configError(
          `"trustedHarbor" must be an absolute path of the sidecar's own harbor, not ${JSON.stringify(trusted)}.`
        )
      }
      const info = yield* Effect.option(fs.stat(trusted))
      if (Option.isNone(info) || info.value.type !== "File") {
        return yield* configError(`"trustedHarbor" ${trusted} is not a file: install harbor there, or fix the path.`)
      }
    }
    const [program, ...args] = launcher
    const programIsHarbor = program === harborPlaceholder || program === "harbor"
    for (const arg of launcher) {
      if (arg !== harborPlaceholder && arg.includes("{harbor}")) {
        return yield* configError(`"launcher" ${shown}: {harbor} stands alone, as one whole argument.`)
      }
    }
    if (!programIsHarbor) {
      if (program.includes("{candidatePath}")) {
        return yield* configError(
          `"launcher" ${shown} runs a program of the candidate's checkout: the nested harbor must be the sidecar's ` +
            `own (trustedHarbor, or harbor on PATH).`
        )
      }
      if (!path.isAbsolute(program) && program.includes("/")) {
        return yield* configError(
          `"launcher" ${shown} starts with a relative path, which would be resolved in the candidate's checkout: ` +
            `give an absolute path, or a name on PATH.`
        )
      }
    }
    const isRunner = !programIsHarbor && !/harbor/i.test(path.basename(program))
    if (isRunner && !args.includes(harborPlaceholder)) {
      return yield* configError(
        `"launcher" ${shown} runs ${program}, which would choose the harbor itself (the candidate's, from its ` +
          `checkout): write {harbor} where the sidecar's harbor goes, and set trustedHarbor to it.`
      )
    }
    if (trusted !== undefined && !programIsHarbor && !args.includes(harborPlaceholder)) {
      return yield* configError(
        `"launcher" ${shown} does not run trustedHarbor: write {harbor} (or harbor) where it goes.`
      )
    }

    /** The sidecar's harbor: trustedHarbor, else `harbor` on PATH's absolute directories. */
    const harbor = trusted !== undefined ? Effect.succeed(Option.some(trusted)) : lookup("harbor")
    const absoluteProgram = programIsHarbor || path.isAbsolute(program)
      ? Effect.succeed(Option.some(program))
      : lookup(program)
    const usesHarbor = programIsHarbor || args.includes(harborPlaceholder)
    // fixed now; what is not found now is looked up again before each run
    const atStart = {
      harbor: usesHarbor ? yield* harbor : Option.none<string>(),
      program: yield* absoluteProgram
    }

    const notFound = (name: string) =>
      strategyError(
        `Could not start the Harbor launcher "${name}": it is not on PATH (only PATH's absolute directories are ` +
          `searched). Install Harbor, or set \`trustedHarbor\` (or \`launcher\`) to the command that runs it.`
      )

    /** Whether `file` (symbolic links followed) lies inside `directory`. */
    const inside = (directory: string, file: string) =>
      Effect.gen(function*() {
        const real = (target: string) => fs.realPath(target).pipe(Effect.orElseSucceed(() => path.resolve(target)))
        const relative = path.relative(yield* real(directory), yield* real(file))
        return relative === "" || (!relative.startsWith("..") && !path.isAbsolute(relative))
      })

    const forRun = (candidatePath: string) =>
      Effect.gen(function*() {
        const harborPath = usesHarbor
          ? Option.isSome(atStart.harbor) ? atStart.harbor : yield* harbor
          : Option.none<string>()
        if (usesHarbor && Option.isNone(harborPath)) return yield* notFound(programIsHarbor ? program : "harbor")
        const programPath = programIsHarbor
          ? harborPath
          : Option.isSome(atStart.program)
          ? atStart.program
          : yield* absoluteProgram
        if (Option.isNone(programPath)) return yield* notFound(program)
        for (const executable of [programPath.value, ...Option.toArray(harborPath)]) {
          if (yield* inside(candidatePath, executable)) {
            return yield* strategyError(
              `The nested harbor's launcher ${executable} lies inside the candidate's checkout: the nested harbor ` +
                `must be the sidecar's own. Set trustedHarbor to a harbor outside it.`
            )
          }
        }
        const substituted = args.map((arg) => arg === harborPlaceholder ? Option.getOrElse(harborPath, () => arg) : arg)
        return [programPath.value, ...substituted] as const
      })

    return { forRun }
  })
