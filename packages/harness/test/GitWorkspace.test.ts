import * as NodeContext from "@effect/platform-node/NodeContext"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Workspace } from "@holdout/core"
import { GitWorkspace } from "@holdout/harness"
import { expectFailure } from "@holdout/testkit"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { execFileSync } from "node:child_process"
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { git } from "./helpers.js"

const roots: Array<string> = []
afterAll(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true })
})

/** An optimizer's repository with two commits, uncommitted changes and hooks that leave a mark. */
const makeRepo = () => {
  const root = mkdtempSync(join(tmpdir(), "holdout-git-test-"))
  roots.push(root)
  const repo = join(root, "repo")
  const marker = join(root, "hook-ran")
  execFileSync("git", ["init", "--quiet", repo])
  writeFileSync(join(repo, "agent.txt"), "first\n")
  git(repo, "add", "agent.txt")
  git(repo, "commit", "--quiet", "-m", "first")
  const first = git(repo, "rev-parse", "HEAD")
  writeFileSync(join(repo, "agent.txt"), "second\n")
  git(repo, "commit", "--quiet", "-am", "second")
  const second = git(repo, "rev-parse", "HEAD")
  git(repo, "branch", "old", first)
  // uncommitted and untracked changes
  writeFileSync(join(repo, "agent.txt"), "uncommitted\n")
  writeFileSync(join(repo, "untracked.txt"), "untracked\n")
  // hooks in the repository and in a hooks path its config names
  for (const hook of ["post-checkout", "pre-push", "reference-transaction", "post-merge", "pre-auto-gc"]) {
    const file = join(repo, ".git", "hooks", hook)
    writeFileSync(file, `#!/bin/sh\necho ${hook} >> ${marker}\n`)
    chmodSync(file, 0o755)
  }
  git(repo, "config", "core.hooksPath", join(repo, ".git", "hooks"))
  return { root, repo, marker, first, second }
}

const withWorkspace = <A, E>(
  options: GitWorkspace.Options,
  f: (workspace: Workspace.Workspace["Type"]) => Effect.Effect<A, E>
) =>
  Effect.gen(function*() {
    return yield* f(yield* Workspace.Workspace)
  }).pipe(Effect.provide(GitWorkspace.layer(options).pipe(Layer.provide(NodeContext.layer))))

describe("GitWorkspace", () => {
  it.live("checks out the committed tree, whatever the repository's working copy and hooks", () => {
    const { marker, repo, first, second } = makeRepo()
    return withWorkspace({ repo }, (workspace) =>
      Effect.gen(function*() {
        const head = yield* Effect.scoped(Effect.gen(function*() {
          const dir = yield* workspace.checkout({ id: "HEAD" })
          assert.strictEqual(readFileSync(join(dir, "agent.txt"), "utf8"), "second\n")
          assert.isFalse(existsSync(join(dir, "untracked.txt")))
          return dir
        }))
        assert.isFalse(existsSync(head), "the worktree outlived its scope")
        for (
          const [ref, content] of [[first, "first\n"], [second.slice(0, 8), "second\n"], ["old", "first\n"]] as const
        ) {
          yield* Effect.scoped(Effect.gen(function*() {
            const dir = yield* workspace.checkout({ id: ref })
            assert.strictEqual(readFileSync(join(dir, "agent.txt"), "utf8"), content, `checkout of ${ref}`)
          }))
        }
        // the optimizer's repository is untouched and none of its hooks ran
        assert.strictEqual(readFileSync(join(repo, "agent.txt"), "utf8"), "uncommitted\n")
        assert.isFalse(existsSync(marker), `a hook ran: ${existsSync(marker) ? readFileSync(marker, "utf8") : ""}`)
      }))
  })

  it.live("two checkouts at once get their own worktrees", () => {
    const { repo, first, second } = makeRepo()
    return withWorkspace({ repo }, (workspace) =>
      Effect.scoped(Effect.gen(function*() {
        const [a, b] = yield* Effect.all([workspace.checkout({ id: first }), workspace.checkout({ id: second })], {
          concurrency: 2
        })
        assert.notStrictEqual(a, b)
        assert.strictEqual(readFileSync(join(a, "agent.txt"), "utf8"), "first\n")
        assert.strictEqual(readFileSync(join(b, "agent.txt"), "utf8"), "second\n")
      })))
  })

  it.live("an unknown commit or an option-like name is a StrategyError", () => {
    const { repo } = makeRepo()
    return withWorkspace({ repo }, (workspace) =>
      Effect.gen(function*() {
        for (const id of ["no-such-branch", "deadbeef", "--upload-pack=touch /tmp/x", ""]) {
          const error = yield* expectFailure(Effect.scoped(workspace.checkout({ id })))
          assert.strictEqual(error._tag, "StrategyError", id)
        }
      }))
  })

  it.live("resolve turns a name into the full hash it points at, keeping the name as the label", () => {
    const { repo, first, second } = makeRepo()
    git(repo, "tag", "v1", first)
    git(repo, "tag", "-a", "-m", "annotated", "v2", second)
    return withWorkspace({ repo }, (workspace) =>
      Effect.gen(function*() {
        const cases = [
          ["HEAD", second],
          ["old", first],
          ["refs/heads/old", first],
          ["v1", first],
          ["v2", second],
          [first.slice(0, 7), first],
          [second.toUpperCase(), second]
        ] as const
        for (const [id, hash] of cases) {
          const resolved = yield* workspace.resolve({ id })
          assert.deepStrictEqual(resolved, { id: hash, label: id }, id)
          // a resolved candidate resolves to itself
          assert.deepStrictEqual(yield* workspace.resolve(resolved), resolved, id)
        }
        assert.deepStrictEqual(yield* workspace.resolve({ id: first }), { id: first })
        assert.deepStrictEqual(
          yield* workspace.resolve({ id: "old", label: "mine", metadata: { k: 1 } }),
          { id: first, label: "mine", metadata: { k: 1 } }
        )
      }))
  })

  it.live("contentOf is the commit's tree hash: re-commits of one tree share it, whatever their messages", () => {
    const { repo, first, second } = makeRepo()
    // two more commits of the first tree, with other messages and parents
    git(repo, "checkout", "--quiet", "--", "agent.txt")
    writeFileSync(join(repo, "agent.txt"), "first\n")
    git(repo, "commit", "--quiet", "-am", "back to the first tree")
    const again = git(repo, "rev-parse", "HEAD")
    git(repo, "commit", "--quiet", "--allow-empty", "-m", "nothing changed, a new message")
    const empty = git(repo, "rev-parse", "HEAD")
    return withWorkspace({ repo }, (workspace) =>
      Effect.gen(function*() {
        const contentOf = workspace.contentOf!
        const tree = yield* contentOf({ id: first })
        assert.strictEqual(tree, git(repo, "rev-parse", `${first}^{tree}`))
        assert.strictEqual(yield* contentOf({ id: again }), tree)
        assert.strictEqual(yield* contentOf({ id: empty }), tree)
        assert.strictEqual(yield* contentOf({ id: "old" }), tree)
        assert.strictEqual(yield* contentOf({ id: second }), git(repo, "rev-parse", `${second}^{tree}`))
        assert.notStrictEqual(yield* contentOf({ id: second }), tree)
        // a name that is no commit is refused as resolve refuses it
        for (const id of ["no-such-branch", "old:HEAD", "HEAD~1"]) {
          assert.strictEqual((yield* expectFailure(contentOf({ id })))._tag, "InvalidRequest", id)
        }
      }))
  })

  it.live("resolve refuses refspecs, globs, options and control characters, and reads the repository only", () => {
    const { repo, root } = makeRepo()
    const dir = join(root, "workspace")
    const refsOf = (at: string) => git(at, "for-each-ref", "--format=%(refname) %(objectname)")
    const before = refsOf(repo)
    return withWorkspace({ repo, dir }, (workspace) =>
      Effect.gen(function*() {
        const ids = [
          "old:refs/heads/evil",
          "old:HEAD",
          "refs/*:refs/*",
          "refs/heads/*",
          "ol?",
          "[o]ld",
          "old\0",
          "old\u0000:refs/heads/nul",
          "old\r",
          "-h",
          "--output=x",
          "HEAD~1",
          "HEAD^",
          "old..HEAD",
          "old lock",
          "@{-1}",
          ":/first",
          "",
          "no-such-branch",
          "deadbeef"
        ]
        for (const id of ids) {
          const error = yield* expectFailure(workspace.resolve({ id }))
          assert.strictEqual(error._tag, "InvalidRequest", JSON.stringify(id))
          assert.notInclude(error.message, root, JSON.stringify(id))
          assert.notInclude(error.message.toLowerCase(), "fatal", JSON.stringify(id))
        }
        assert.strictEqual(refsOf(repo), before, "the optimizer's refs changed")
        assert.strictEqual(refsOf(join(dir, "clone.git")), "", "a ref was written into the private clone")
      }))
  })

  it.live("a checkout fetches the commit alone: no ref and no FETCH_HEAD in the private clone", () => {
    const { repo, root, first } = makeRepo()
    const dir = join(root, "workspace")
    return withWorkspace({ repo, dir }, (workspace) =>
      Effect.gen(function*() {
        for (const id of ["HEAD", "old", first.slice(0, 8)]) {
          yield* Effect.scoped(workspace.checkout({ id }))
        }
        assert.strictEqual(git(join(dir, "clone.git"), "for-each-ref"), "")
        assert.isFalse(existsSync(join(dir, "clone.git", "FETCH_HEAD")))
        const error = yield* expectFailure(Effect.scoped(workspace.checkout({ id: "old:refs/heads/evil" })))
        assert.strictEqual(error._tag, "StrategyError")
        assert.notInclude(error.message, root)
        assert.strictEqual(git(join(dir, "clone.git"), "for-each-ref"), "")
      }))
  })

  it.live("a persistent directory is reused after a restart; worktrees a crash left behind are cleared", () => {
    const { root, repo, second } = makeRepo()
    const dir = join(root, "workspace")
    return Effect.gen(function*() {
      // a checkout whose scope never closes: the worktree stays, as after a crash
      const leaked = yield* Scope.make()
      const stale = yield* withWorkspace(
        { repo, dir },
        (workspace) => Scope.extend(workspace.checkout({ id: second }), leaked)
      )
      assert.isTrue(existsSync(stale))
      yield* withWorkspace({ repo, dir }, (workspace) =>
        Effect.scoped(Effect.gen(function*() {
          const path = yield* workspace.checkout({ id: second })
          assert.strictEqual(path, stale, "the same name is reused")
          assert.strictEqual(readFileSync(join(path, "agent.txt"), "utf8"), "second\n")
        })))
    })
  })
})
