/**
 * A `Workspace` whose candidates are commits of a git repository (the optimizer's). A candidate's
 * id names the commit: a full or abbreviated hash, a branch, a tag or `HEAD`.
 *
 * The optimizer's repository is never operated on: its commit is fetched (`file://`, no tags, no
 * submodules) into a private bare clone, and checked out there in a worktree of its own that is
 * removed when the checkout's scope closes. Hooks are disabled for every git command, so what is
 * evaluated is exactly the committed tree: uncommitted changes, hooks and the working copy of the
 * optimizer's repository play no part.
 *
 * @since 0.1.0
 */
import * as Command from "@effect/platform/Command"
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { HoldoutError, Workspace } from "@holdout/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The repository whose commits are the candidates. */
  readonly repo: string
  /** Where the private clone and the worktrees live (default: a temporary directory, removed with the layer). */
  readonly dir?: string
  /** The longest one git command may take (default 120 seconds). */
  readonly timeout?: Duration.DurationInput
}

const failure = (message: string) => new HoldoutError.StrategyError({ strategy: "git-workspace", message })

/** Every git command runs with hooks off, file-protocol fetches allowed and no prompt. */
const gitConfig = ["-c", "core.hooksPath=/dev/null", "-c", "protocol.file.allow=always", "-c", "core.fsmonitor=false"]

const text = (stream: Stream.Stream<Uint8Array, unknown>) =>
  stream.pipe(Stream.decodeText(), Stream.runFold("", (all, chunk) => all + chunk), Effect.orElseSucceed(() => ""))

/**
 * Builds the workspace.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<
  Workspace.Workspace["Type"],
  HoldoutError.StrategyError,
  CommandExecutor.CommandExecutor | FileSystem.FileSystem | Path.Path | Scope.Scope
> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const context = yield* Effect.context<CommandExecutor.CommandExecutor>()
    const timeout = Duration.decode(options.timeout ?? "120 seconds")
    const source = `file://${path.resolve(options.repo)}`
    const root = options.dir === undefined
      ? yield* fs.makeTempDirectoryScoped({ prefix: "holdout-git-" }).pipe(
        Effect.mapError((error) => failure(`Could not create a directory for the private clone: ${error.message}`))
      )
      : path.resolve(options.dir)
    const clone = path.join(root, "clone.git")
    const worktrees = path.join(root, "worktrees")

    /** Runs git; a non-zero exit is a `StrategyError` carrying git's error output. */
    const git = (args: ReadonlyArray<string>) =>
      Effect.scoped(Effect.gen(function*() {
        const process = yield* Command.start(
          Command.make("git", ...gitConfig, ...args).pipe(Command.env({ GIT_TERMINAL_PROMPT: "0" }))
        )
        const [stdout, stderr, code] = yield* Effect.all([text(process.stdout), text(process.stderr), process.exitCode], {
          concurrency: 3
        })
        if (code !== 0) {
          return yield* Effect.fail(failure(`git ${args.join(" ")} failed (exit code ${code}): ${stderr.trim()}`))
        }
        return stdout.trim()
      })).pipe(
        Effect.timeoutFail({ duration: timeout, onTimeout: () => failure(`git ${args.join(" ")} took longer than ${Duration.format(timeout)}`) }),
        Effect.catchTag("SystemError", "BadArgument", (error) => Effect.fail(failure(`Could not run git: ${error.message}`))),
        Effect.provide(context)
      )

    if (!(yield* fs.exists(path.join(clone, "HEAD")).pipe(Effect.orElseSucceed(() => false)))) {
      yield* git(["init", "--quiet", "--bare", clone])
    }
    // worktrees left by an earlier process are stale: remove them
    yield* fs.remove(worktrees, { recursive: true }).pipe(Effect.ignore)
    yield* git(["-C", clone, "worktree", "prune"])
    yield* fs.makeDirectory(worktrees, { recursive: true }).pipe(
      Effect.mapError((error) => failure(`Could not create ${worktrees}: ${error.message}`))
    )
    // clones and worktree bookkeeping are shared: one git operation on the clone at a time
    const lock = yield* Effect.makeSemaphore(1)
    let counter = 0

    /** Fetches the candidate's commit into the private clone and returns its full hash. */
    const resolve = (ref: string) =>
      Effect.gen(function*() {
        if (ref.length === 0 || ref.startsWith("-") || /\s/.test(ref)) {
          return yield* Effect.fail(failure(`"${ref}" is not a commit, branch or tag name.`))
        }
        const fetch = ["-C", clone, "fetch", "--quiet", "--no-tags", "--no-recurse-submodules", source]
        const direct = yield* Effect.either(git([...fetch, ref]))
        if (direct._tag === "Right") return yield* git(["-C", clone, "rev-parse", "--verify", "FETCH_HEAD^{commit}"])
        if (!/^[0-9a-f]{4,39}$/i.test(ref)) return yield* Effect.fail(direct.left)
        // an abbreviated hash cannot be fetched: fetch the branches and tags, then resolve it here
        yield* git([...fetch, "+refs/heads/*:refs/holdout/heads/*", "+refs/tags/*:refs/holdout/tags/*"])
        return yield* git(["-C", clone, "rev-parse", "--verify", "--quiet", `${ref}^{commit}`]).pipe(
          Effect.mapError(() => failure(`No commit "${ref}" in ${options.repo}.`))
        )
      })

    const checkout = (candidate: { readonly id: string }) =>
      Effect.acquireRelease(
        lock.withPermits(1)(Effect.gen(function*() {
          const sha = yield* resolve(candidate.id)
          const dir = path.join(worktrees, `${sha.slice(0, 12)}-${++counter}`)
          yield* git(["-C", clone, "worktree", "add", "--quiet", "--detach", dir, sha])
          return dir
        })),
        (dir) =>
          lock.withPermits(1)(
            Effect.zipRight(
              Effect.ignore(git(["-C", clone, "worktree", "remove", "--force", dir])),
              Effect.ignore(fs.remove(dir, { recursive: true }))
            )
          )
      )

    return { checkout }
  })

/**
 * The workspace as a layer; the private clone lives as long as the layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<Workspace.Workspace, HoldoutError.StrategyError, CommandExecutor.CommandExecutor | FileSystem.FileSystem | Path.Path> =>
  Layer.scoped(Workspace.Workspace, make(options))
