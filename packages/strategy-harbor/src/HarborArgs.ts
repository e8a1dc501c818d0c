/**
 * The command line of one nested `harbor run`, built as data: the configuration, the candidate's
 * checkout, the tasks and the job's paths in, the argument vector out. Running and supervising the
 * process is `HarborStrategy`'s part.
 *
 * @since 0.1.0
 */
import type * as HarborConfig from "./HarborConfig.js"

/**
 * Where a nested run's tasks come from: a local task or dataset directory (`-p`, absolute), or a
 * registry reference (`-d`).
 *
 * @since 0.1.0
 * @category models
 */
export type Source =
  | { readonly _tag: "Local"; readonly path: string }
  | { readonly _tag: "Registry"; readonly ref: string }

/**
 * What one nested run is about, apart from the configuration.
 *
 * @since 0.1.0
 * @category models
 */
export interface Round {
  readonly source: Source
  /** The candidate's checkout: replaces `{candidatePath}` in `launcher` and `extraArgs`. */
  readonly candidatePath: string
  /** The `-i` patterns, one per task to run. */
  readonly includes: ReadonlyArray<string>
  readonly jobsDir: string
  readonly jobName: string
}

/**
 * The whole argument vector, the launcher first: `<launcher…> run (-p <dir> | -d <ref>) --agent …
 * -e … -n … --n-attempts … --max-retries … [-m …] -i <include>… --jobs-dir … --job-name … [extra…]`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const runArgs = (config: HarborConfig.HarborConfig, round: Round): readonly [string, ...Array<string>] => {
  const substitute = (arg: string) => arg.replaceAll("{candidatePath}", round.candidatePath)
  const [program, ...launcher] = config.launcher.map(substitute) as [string, ...Array<string>]
  return [
    program,
    ...launcher,
    "run",
    ...(round.source._tag === "Local" ? ["-p", round.source.path] : ["-d", round.source.ref]),
    "--agent",
    config.agent,
    "-e",
    config.environment,
    "-n",
    String(config.concurrency),
    "--n-attempts",
    String(config.attempts),
    "--max-retries",
    String(config.maxRetries),
    ...(config.model === undefined ? [] : ["-m", config.model]),
    ...round.includes.flatMap((include) => ["-i", include]),
    "--jobs-dir",
    round.jobsDir,
    "--job-name",
    round.jobName,
    ...config.extraArgs.map(substitute)
  ]
}
