/**
 * A `Workspace` whose candidates are commits of a git repository (the optimizer's).
 *
 * A candidate id names one commit: a full or abbreviated hash, a branch, a tag or `HEAD`, written
 * with ASCII letters, digits, `.`, `_`, `/` and `-` and starting with a letter, digit or `_`.
 * Everything else is refused before git sees it: refspecs (`:`), globs, ranges (`..`), option-like
 * names, whitespace, NUL and other control characters, and revision expressions (`HEAD~1`,
 * `main^`, `@{-1}`, `:/text`), whose meaning moves with the repository. `resolve` asks git for the
 * commit a name points at, reading the optimizer's repository and writing nothing, and the run is
 * recorded under that full hash (the name given is kept as the label).
 *
 * The optimizer's repository is never operated on: a checkout fetches exactly that hash (`file://`,
 * no tags, no submodules, no refspec, so no ref is written) into a private bare clone, and checks it
 * out there in a worktree of its own that is removed when the checkout's scope closes. Hooks are
 * disabled for every git command, so what is evaluated is exactly the committed tree: uncommitted
 * changes, hooks and the working copy of the optimizer's repository play no part.
 *
 * `contentOf` (and `treeOf`) gives the tree hash of the commit a candidate names (`rev-parse
 * <hash>^{tree}`): commits with the same files share it, whatever their messages, authors or parents.
 *
 * What git prints, and the paths of this machine, stay in the log: the errors an optimizer can see
 * say only what was wrong with its request.
 *
 * @since 0.1.0
 */
import * as Command from "@effect/platform/Command"
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { HoldoutError, type Model, Workspace } from "@holdout/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
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

const longestName = 255

/**
 * Whether `id` may name a commit: one hash, branch or tag name, and nothing git would read as a
 * refspec, glob, option, range or revision expression.
 */
const isCommitName = (id: string): boolean =>
  id.length <= longestName &&
  /^[A-Za-z0-9_][A-Za-z0-9._/-]*$/.test(id) &&
  !id.includes("..") &&
  !id.includes("//") &&
  !id.includes("/.") &&
  !id.endsWith("/") &&
  !id.endsWith(".") &&
  !id.endsWith(".lock")

/** A full commit hash (SHA-1 or SHA-256 repositories). */
const isFullHash = (id: string): boolean => /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/.test(id)

/** The id as it may appear in a message: quoted, escaped and cut short. */
const shown = (id: string): string => JSON.stringify(id.length > 80 ? `${id.slice(0, 80)}…` : id)

const malformed = (id: string) =>
  new HoldoutError.InvalidRequest({
    message: `Candidate ${shown(id)} is not a commit name. Give a commit hash, branch or tag (letters, digits, ` +
      `".", "_", "/" and "-"; no refspecs, globs, ranges, options or expressions such as HEAD~1).`
  })

const notACommit = (id: string) =>
  new HoldoutError.InvalidRequest({
    message: `Candidate ${shown(id)} does not name a commit of the optimizer's repository. Give a commit hash, ` +
      `branch or tag.`
  })

/**
 * The git workspace: a `Workspace` whose `contentOf` is `treeOf`, the tree hash of a candidate's commit.
 *
 * @since 0.1.0
 * @category models
 */
export type GitWorkspace = Workspace.Workspace["Type"] & {
  readonly treeOf: (
    candidate: Model.Candidate
  ) => Effect.Effect<string, HoldoutError.InvalidRequest | HoldoutError.StrategyError>
  readonly contentOf: (
    candidate: Model.Candidate
  ) => Effect.Effect<string, HoldoutError.InvalidRequest | HoldoutError.StrategyError>
}

/**
 * Builds the workspace.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<
  GitWorkspace,
  HoldoutError.StrategyError,
  CommandExecutor.CommandExecutor | FileSystem.FileSystem | Path.Path | Scope.Scope
> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const context = yield* Effect.context<CommandExecutor.CommandExecutor>()
    const timeout = Duration.decode(options.timeout ?? "120 seconds")
    const repo = path.resolve(options.repo)
    const source = `file://${repo}`
    const root = options.dir === undefined
      ? yield* fs.makeTempDirectoryScoped({ prefix: "holdout-git-" }).pipe(
        Effect.mapError((error) => failure(`Could not create a directory for the private clone: ${error.message}`))
      )
      : path.resolve(options.dir)
    const clone = path.join(root, "clone.git")
    const worktrees = path.join(root, "worktrees")

    /**
     * Runs git and returns its exit code and output. Only running git at all can fail (a
     * `StrategyError` whose message names no path: the details go to the log).
     */
    const run = (action: string, args: ReadonlyArray<string>) =>
      Effect.scoped(Effect.gen(function*() {
        const process = yield* Command.start(
          Command.make("git", ...gitConfig, ...args).pipe(
            Command.env({ GIT_TERMINAL_PROMPT: "0", GIT_OPTIONAL_LOCKS: "0" })
          )
        )
        const [stdout, stderr, code] = yield* Effect.all(
          [text(process.stdout), text(process.stderr), process.exitCode],
          {
            concurrency: 3
          }
        )
        return { code: Number(code), stdout: stdout.trim(), stderr: stderr.trim() }
      })).pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () => failure(`git took longer than ${Duration.format(timeout)} to ${action}.`)
        }),
        Effect.tapError((error) => Effect.logWarning(`git ${args.join(" ")}: ${error.message}`)),
        Effect.catchTag("SystemError", "BadArgument", () => Effect.fail(failure(`Could not run git to ${action}.`))),
        Effect.provide(context)
      )

    /** Runs git; a non-zero exit is a `StrategyError` saying what failed, with git's output in the log. */
    const git = (action: string, args: ReadonlyArray<string>) =>
      Effect.flatMap(run(action, args), (result) =>
        result.code === 0
          ? Effect.succeed(result.stdout)
          : Effect.zipRight(
            Effect.logWarning(`git ${args.join(" ")} failed (exit code ${result.code}): ${result.stderr}`),
            Effect.fail(
              failure(`git could not ${action} (exit code ${result.code}); the harness log has git's output.`)
            )
          ))

    if (!(yield* fs.exists(path.join(clone, "HEAD")).pipe(Effect.orElseSucceed(() => false)))) {
      yield* git("create the private clone", ["init", "--quiet", "--bare", clone])
    }
    // worktrees left by an earlier process are stale: remove them
    yield* fs.remove(worktrees, { recursive: true }).pipe(Effect.ignore)
    yield* git("prune stale worktrees", ["-C", clone, "worktree", "prune"])
    yield* fs.makeDirectory(worktrees, { recursive: true }).pipe(
      Effect.mapError((error) => failure(`Could not create ${worktrees}: ${error.message}`))
    )
    // clones and worktree bookkeeping are shared: one git operation on the clone at a time
    const lock = yield* Effect.makeSemaphore(1)
    let counter = 0

    /**
     * The full hash of the commit `id` names in the optimizer's repository. Only `rev-parse` runs
     * there: it reads refs and objects and writes nothing (no optional locks, no hooks).
     */
    /**
     * `git rev-parse` of `spec` in the optimizer's repository: the full hash it names, or the
     * failed result (which git could not read). It reads refs and objects and writes nothing.
     */
    const revParse = (action: string, spec: string) =>
      Effect.map(
        run(action, ["-C", repo, "rev-parse", "--verify", "--quiet", "--end-of-options", spec]),
        (result) => result.code === 0 && isFullHash(result.stdout) ? Either.right(result.stdout) : Either.left(result)
      )

    /**
     * The full hash of the commit `id` names in the optimizer's repository. Only `rev-parse` runs
     * there: it reads refs and objects and writes nothing (no optional locks, no hooks).
     */
    const commitOf = (id: string) =>
      Effect.gen(function*() {
        if (!isCommitName(id)) return yield* malformed(id)
        const parsed = yield* revParse("resolve a candidate", `${id}^{commit}`)
        if (Either.isLeft(parsed)) {
          yield* Effect.logDebug(
            `git rev-parse of candidate ${shown(id)} in ${repo}: exit code ${parsed.left.code}, ` +
              (parsed.left.stderr || "no output")
          )
          return yield* notACommit(id)
        }
        return parsed.right
      })

    /** The tree hash of the commit a candidate names, read from the optimizer's repository like `commitOf`. */
    const treeOf = (candidate: Model.Candidate) =>
      Effect.gen(function*() {
        const hash = yield* commitOf(candidate.id)
        const parsed = yield* revParse("read a candidate's tree", `${hash}^{tree}`)
        if (Either.isLeft(parsed)) {
          yield* Effect.logWarning(
            `git rev-parse of the tree of ${hash}: exit code ${parsed.left.code}, ${parsed.left.stderr}`
          )
          return yield* failure(`git could not read the tree of commit ${hash}; the harness log has git's output.`)
        }
        return parsed.right
      })

    const resolve = (candidate: Model.Candidate) =>
      Effect.map(commitOf(candidate.id), (hash): Model.Candidate =>
        hash === candidate.id
          ? candidate
          : { ...candidate, id: hash, label: candidate.label ?? candidate.id })

    const checkout = (candidate: Model.Candidate) =>
      Effect.acquireRelease(
        Effect.gen(function*() {
          const hash = yield* commitOf(candidate.id).pipe(
            Effect.catchTag("InvalidRequest", (error) => Effect.fail(failure(error.message)))
          )
          return yield* lock.withPermits(1)(Effect.gen(function*() {
            // exactly this commit: no refspec, so nothing is written under refs/, nor FETCH_HEAD
            yield* git("fetch the candidate's commit", [
              "-C",
              clone,
              "fetch",
              "--quiet",
              "--no-tags",
              "--no-recurse-submodules",
              "--no-write-fetch-head",
              source,
              hash
            ])
            const dir = path.join(worktrees, `${hash.slice(0, 12)}-${++counter}`)
            yield* git("check the candidate out", ["-C", clone, "worktree", "add", "--quiet", "--detach", dir, hash])
            return dir
          }))
        }),
        (dir) =>
          lock.withPermits(1)(
            Effect.zipRight(
              Effect.ignore(git("remove a worktree", ["-C", clone, "worktree", "remove", "--force", dir])),
              Effect.ignore(fs.remove(dir, { recursive: true }))
            )
          )
      )

    return { resolve, checkout, contentOf: treeOf, treeOf }
  })

/**
 * The workspace as a layer; the private clone lives as long as the layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<
  Workspace.Workspace,
  HoldoutError.StrategyError,
  CommandExecutor.CommandExecutor | FileSystem.FileSystem | Path.Path
> => Layer.scoped(Workspace.Workspace, make(options))
