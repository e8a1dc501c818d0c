/**
 * Candidate ids against a git workspace (DESIGN §10, strict inputs): an id resolves to one full
 * commit hash of the optimizer's repository before anything is charged. Refspecs, globs, NUL and
 * option-like names are `InvalidRequest`, charge nothing, write no ref into the private clone, and
 * the message names neither a path of this machine nor anything git printed.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { DatasetSource, Engine, EvalStrategy, Ledger, Stack, TaskStore, Workspace } from "@holdout/core"
import { GitWorkspace } from "@holdout/harness"
import { expectFailure } from "@holdout/testkit"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { execFileSync } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const roots: Array<string> = []
afterAll(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true })
})

const git = (cwd: string, ...args: Array<string>) =>
  execFileSync("git", ["-c", "user.name=Optimizer", "-c", "user.email=optimizer@example.com", ...args], {
    cwd,
    encoding: "utf8"
  }).trim()

/** The optimizer's repository: `main` at the second commit, a branch `old` and a tag `v1` at the first. */
const makeRepo = () => {
  const root = mkdtempSync(join(tmpdir(), "holdout-git-ids-"))
  roots.push(root)
  const repo = join(root, "repo")
  execFileSync("git", ["init", "--quiet", repo])
  git(repo, "checkout", "--quiet", "-b", "main")
  writeFileSync(join(repo, "agent.txt"), "first\n")
  git(repo, "add", "agent.txt")
  git(repo, "commit", "--quiet", "-m", "first")
  const first = git(repo, "rev-parse", "HEAD")
  writeFileSync(join(repo, "agent.txt"), "second\n")
  git(repo, "commit", "--quiet", "-am", "second")
  const second = git(repo, "rev-parse", "HEAD")
  git(repo, "branch", "old", first)
  git(repo, "tag", "v1", first)
  return { root, repo, workspace: join(root, "workspace"), first, second }
}

/** Every ref of the private bare clone (and whether git left a FETCH_HEAD there). */
const cloneRefs = (workspace: string) => {
  const clone = join(workspace, "clone.git")
  if (!existsSync(clone)) return []
  const refs = git(clone, "for-each-ref", "--format=%(refname)")
  return refs === "" ? [] : refs.split("\n")
}

/** A strategy that checks the candidate out and records what `agent.txt` says, one record a sample. */
const checkoutStrategy = Layer.effect(
  EvalStrategy.EvalStrategy,
  Effect.gen(function*() {
    const store = yield* TaskStore.TaskStore
    const workspace = yield* Workspace.Workspace
    return {
      name: "checkout",
      produce: (plan) =>
        Effect.scoped(Effect.gen(function*() {
          const dir = yield* workspace.checkout(plan.candidate)
          const content = readFileSync(join(dir, "agent.txt"), "utf8")
          for (const sampleId of plan.sampleIds) {
            const now = yield* Clock.currentTimeMillis
            yield* store.putSample({
              runId: plan.runId,
              sampleId,
              datasetId: plan.datasetId,
              split: plan.split,
              candidateId: plan.candidate.id,
              output: content,
              score: 1,
              metrics: {},
              attempts: 1,
              startedAt: now,
              finishedAt: now
            })
          }
        }))
    }
  })
)

const stackOf = (repo: string, dir: string) => {
  const workspace = GitWorkspace.layer({ repo, dir })
  return Stack.layerWith({
    budgets: [{ datasetId: "qa", split: "train", runs: 50, samples: 500 }],
    policy: { train: "viewable" },
    ledger: Ledger.layerMemory,
    store: TaskStore.layerMemory,
    datasets: DatasetSource.layerRecords({ qa: { train: [{ q: 0 }, { q: 1 }, { q: 2 }] } }),
    strategy: checkoutStrategy.pipe(Layer.provide(workspace))
  }).pipe(Layer.provideMerge(workspace), Layer.provide(NodeContext.layer))
}

const spent = Effect.flatMap(Ledger.Ledger, (ledger) => ledger.get({ datasetId: "qa", split: "train" })).pipe(
  Effect.map((snapshot) => snapshot.spent)
)

const hostile: ReadonlyArray<string> = [
  // refspecs
  "main:refs/heads/evil",
  "main:HEAD",
  "refs/*:refs/*",
  "+main:refs/heads/forced",
  ":refs/heads/main",
  "+refs/heads/*:refs/remotes/x/*",
  // globs
  "refs/heads/*",
  "ma?n",
  "[m]ain",
  // NUL and other control characters
  "main\0",
  "\0",
  "ma\0in:refs/heads/nul",
  "main\n",
  "main\u0007",
  "main\u007f",
  // option-like names
  "-h",
  "--upload-pack=touch pwned",
  "--end-of-options",
  "-",
  // ranges, whitespace and revision expressions
  "old..main",
  "main...old",
  "ma in",
  " main",
  "main\t",
  "main~1",
  "HEAD^",
  "main^{tree}",
  "@{-1}",
  "HEAD@{0}",
  ":/second",
  "main/",
  "main.lock",
  "x".repeat(300)
]

const unknown: ReadonlyArray<string> = ["no-such-branch", "deadbeef0", "refs/heads/nope", "v2"]

const assertClean = (id: string, message: string, root: string) => {
  assert.notInclude(message, root, `the message for ${JSON.stringify(id)} names a path`)
  assert.notInclude(message, tmpdir(), `the message for ${JSON.stringify(id)} names a path`)
  for (const word of ["fatal", "error:", "usage", "warning", "clone.git", "file://"]) {
    assert.notInclude(message.toLowerCase(), word, `the message for ${JSON.stringify(id)} echoes git (${word})`)
  }
}

describe("candidate ids of a git workspace", () => {
  it.live("refspecs, globs, NUL and option-like names are InvalidRequest: nothing charged, no ref written", () => {
    const { repo, root, workspace } = makeRepo()
    return Effect.gen(function*() {
      const engine = yield* Engine.Engine
      const store = yield* TaskStore.TaskStore
      for (const id of hostile) {
        for (const admin of [false, true]) {
          const request = { datasetId: "qa", split: "train", candidate: { id }, idempotencyKey: `k-${id}` }
          const error = yield* expectFailure(engine.evaluate(request, { admin }))
          assert.strictEqual(error._tag, "InvalidRequest", `${JSON.stringify(id)} (admin: ${admin}): ${error.message}`)
          assertClean(id, error.message, root)
        }
      }
      assert.deepStrictEqual(yield* spent, { runs: 0, samples: 0 })
      assert.strictEqual((yield* store.listRuns()).length, 0)
      assert.deepStrictEqual(cloneRefs(workspace), [])
      assert.isFalse(existsSync(join(workspace, "clone.git", "refs", "heads", "evil")))
    }).pipe(Effect.provide(stackOf(repo, workspace)))
  })

  it.live("a name that is no commit of the repository is InvalidRequest with a plain message", () => {
    const { repo, root, workspace } = makeRepo()
    return Effect.gen(function*() {
      const engine = yield* Engine.Engine
      for (const id of unknown) {
        const error = yield* expectFailure(engine.evaluate({ datasetId: "qa", split: "train", candidate: { id } }))
        assert.strictEqual(error._tag, "InvalidRequest", id)
        assert.strictEqual(
          error.message,
          `Candidate "${id}" does not name a commit of the optimizer's repository. Give a commit hash, branch or tag.`
        )
        assertClean(id, error.message, root)
      }
      assert.deepStrictEqual(yield* spent, { runs: 0, samples: 0 })
      assert.deepStrictEqual(cloneRefs(workspace), [])
    }).pipe(Effect.provide(stackOf(repo, workspace)))
  })

  it.live("a branch is evaluated and recorded as the full hash it points at", () => {
    const { repo, workspace, second } = makeRepo()
    return Effect.gen(function*() {
      const engine = yield* Engine.Engine
      const store = yield* TaskStore.TaskStore
      const experiment = yield* engine.evaluate({ datasetId: "qa", split: "train", candidate: { id: "main" } })
      assert.match(experiment.run.candidate.id, /^[0-9a-f]{40}$/)
      assert.strictEqual(experiment.run.candidate.id, second)
      assert.strictEqual(experiment.run.candidate.label, "main")
      const samples = yield* engine.samples(experiment.run.runId, { limit: 10 })
      assert.deepStrictEqual(samples.map((sample) => sample.output), ["second\n", "second\n", "second\n"])
      assert.isTrue(samples.every((sample) => sample.candidateId === second))
      const stored = yield* store.getRun(experiment.run.runId)
      assert.strictEqual(Option.getOrThrow(stored).candidate.id, second)
      assert.deepStrictEqual(yield* spent, { runs: 1, samples: 3 })
      // the checkout fetched a commit, never a ref
      assert.deepStrictEqual(cloneRefs(workspace), [])
    }).pipe(Effect.provide(stackOf(repo, workspace)))
  })

  it.live("an abbreviated hash and a tag resolve to the full hash; a caller's label is kept", () => {
    const { repo, workspace, first } = makeRepo()
    return Effect.gen(function*() {
      const engine = yield* Engine.Engine
      const short = yield* engine.evaluate({ datasetId: "qa", split: "train", candidate: { id: first.slice(0, 7) } })
      assert.strictEqual(short.run.candidate.id, first)
      assert.strictEqual((yield* engine.samples(short.run.runId, { limit: 1 }))[0]!.output, "first\n")
      const tagged = { id: "v1", label: "baseline" }
      const tag = yield* engine.evaluate({ datasetId: "qa", split: "train", candidate: tagged })
      assert.strictEqual(tag.run.candidate.id, first)
      assert.strictEqual(tag.run.candidate.label, "baseline")
      const full = yield* engine.evaluate({ datasetId: "qa", split: "train", candidate: { id: first } })
      assert.deepStrictEqual(full.run.candidate, { id: first })
      assert.deepStrictEqual(cloneRefs(workspace), [])
    }).pipe(Effect.provide(stackOf(repo, workspace)))
  })

  it.live("a repeated idempotency key resolves the same name to the same commit and charges once", () => {
    const { repo, workspace, second } = makeRepo()
    return Effect.gen(function*() {
      const engine = yield* Engine.Engine
      const request = { datasetId: "qa", split: "train", candidate: { id: "main" }, idempotencyKey: "same" }
      const once = yield* engine.evaluate(request)
      const twice = yield* engine.evaluate(request)
      assert.strictEqual(twice.run.runId, once.run.runId)
      assert.strictEqual(twice.run.candidate.id, second)
      assert.deepStrictEqual(yield* spent, { runs: 1, samples: 3 })
    }).pipe(Effect.provide(stackOf(repo, workspace)))
  })
})
