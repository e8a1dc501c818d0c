import * as NodeContext from "@effect/platform-node/NodeContext"
import { afterAll, assert, describe, it } from "@effect/vitest"
import {
  DatasetSource,
  Engine,
  HoldoutError,
  Ledger,
  LocalStrategy,
  type Model,
  Stack,
  Task,
  TaskStore,
  Workspace
} from "@holdout/core"
import { GitWorkspace, Verifier } from "@holdout/harness"
import { SqliteStore } from "@holdout/store-sqlite"
import { expectFailure } from "@holdout/testkit"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { git } from "./helpers.js"

interface Row {
  readonly index: number
}

const rows = (count: number): ReadonlyArray<Row> => Array.from({ length: count }, (_, index) => ({ index }))

/**
 * A candidate's quality q (0..10) is its true accuracy in tenths. An "inflated" candidate scores 1
 * on every evaluation except the verifier's own (whose runs carry the verifier's idempotency keys).
 */
const quality = (candidate: Model.Candidate) => Number(candidate.metadata?.["q"] ?? 0)
const task = Task.make<Row, number>({
  name: "quality",
  infer: (row) => row.index,
  score: (row, _stored, run) => {
    const verifier = run.runId.includes("holdout:finalize")
    if (run.candidate.metadata?.["inflated"] === true && !verifier) return 1
    return row.index % 10 < quality(run.candidate) ? 1 : 0
  }
})

const budgets: ReadonlyArray<Model.SplitBudget> = [{ datasetId: "ds", split: "validation", runs: 20 }]
const datasets = { ds: { validation: rows(20), test: rows(30) } }
const policy = { validation: "non_viewable", test: "no_access" } as const

const stackOn = <E>(stores: Layer.Layer<Ledger.Ledger | TaskStore.TaskStore, E>) =>
  Stack.layerWith({
    budgets,
    policy,
    ledger: () => stores,
    store: stores,
    datasets: DatasetSource.layerRecords(datasets),
    strategy: LocalStrategy.layer(task)
  })

const memoryStack = stackOn(Layer.merge(Ledger.layerMemory(budgets), TaskStore.layerMemory))
const memoryStackFresh = () => stackOn(Layer.merge(Ledger.layerMemory(budgets), TaskStore.layerMemory))

const candidate = (id: string, q: number, extra: Record<string, unknown> = {}): Model.Candidate => ({
  id,
  metadata: { q, ...extra }
})
const baseline = candidate("base", 5)

const autoBest: Verifier.Options = {
  mode: "auto_best",
  selection: { datasetId: "ds", split: "validation" },
  targets: [{ datasetId: "ds", split: "test", rewardKey: "accuracy" }],
  baseline
}

const withVerifier = <A, E, S extends Stack.Services | Verifier.Verifier>(
  options: Verifier.Options,
  stack: Layer.Layer<Stack.Services, unknown>,
  effect: Effect.Effect<A, E, S>
) => effect.pipe(Effect.provide(Verifier.layer(options).pipe(Layer.provideMerge(stack))))

/** The optimizer's side: an evaluation on the selection split. */
const evaluate = (who: Model.Candidate, numSamples?: number) =>
  Effect.flatMap(
    Engine.Engine,
    (engine) =>
      engine.evaluate({
        datasetId: "ds",
        split: "validation",
        candidate: who,
        ...(numSamples === undefined ? {} : { numSamples })
      })
  )

const adminRuns = Effect.map(
  Effect.flatMap(TaskStore.TaskStore, (store) => store.listRuns()),
  (runs) => runs.filter((run) => run.admin).length
)

describe("Verifier — auto_best", () => {
  it.effect("re-scores the shortlist as admin: the optimizer's own scores never decide", () =>
    withVerifier(
      autoBest,
      memoryStack,
      Effect.gen(function*() {
        // "inflated" looks perfect to the optimizer but is the worst in truth
        yield* evaluate(candidate("inflated", 2, { inflated: true }))
        yield* evaluate(candidate("good", 8))
        yield* evaluate(candidate("fair", 7))
        yield* evaluate(candidate("weak", 6))
        const verifier = yield* Verifier.Verifier
        const answer = yield* verifier.finalize()
        assert.strictEqual(answer.candidate, "good")
        assert.deepStrictEqual(answer.rewards, { accuracy: 0.8 })
        assert.deepStrictEqual(answer.targetErrors, {})
        // top 3 by pooled mean: inflated (1.0), good (0.8), fair (0.7); weak is not re-scored
        assert.deepStrictEqual(answer.shortlist.map((entry) => [entry.candidate, entry.pooled, entry.rescored]), [
          ["inflated", 1, 0.2],
          ["good", 0.8, 0.8],
          ["fair", 0.7, 0.7]
        ])
        assert.strictEqual(answer.baseline, 0.5)
        // 3 re-scores + the baseline + 1 target
        assert.strictEqual(yield* adminRuns, 5)
      })
    ))

  it.effect("pools a candidate's runs; whole-split runs outrank lucky subsets", () =>
    withVerifier(
      autoBest,
      memoryStack,
      Effect.gen(function*() {
        // a lucky subset (all its samples score) and a full run
        yield* evaluate(candidate("lucky", 5), 5)
        yield* evaluate(candidate("steady", 7))
        yield* evaluate(candidate("steady", 7))
        const answer = yield* (yield* Verifier.Verifier).finalize()
        assert.deepStrictEqual(answer.shortlist.map((entry) => entry.candidate), ["steady"])
        assert.strictEqual(answer.candidate, "steady")
      })
    ))

  it.effect("the baseline wins unless a candidate beats it strictly", () =>
    withVerifier(
      autoBest,
      memoryStack,
      Effect.gen(function*() {
        yield* evaluate(candidate("tie", 5))
        yield* evaluate(candidate("worse", 4))
        const answer = yield* (yield* Verifier.Verifier).finalize()
        assert.strictEqual(answer.candidate, "base")
        assert.include(answer.reason, "baseline wins ties")
        assert.deepStrictEqual(answer.rewards, { accuracy: 0.5 })
      })
    ))

  it.effect("no candidate: every reward is 0", () =>
    withVerifier(
      autoBest,
      memoryStack,
      Effect.gen(function*() {
        yield* evaluate(baseline)
        const answer = yield* (yield* Verifier.Verifier).finalize()
        assert.isNull(answer.candidate)
        assert.deepStrictEqual(answer.rewards, { accuracy: 0 })
        assert.include(answer.reason, "Every reward is 0")
      })
    ))

  it.effect("finalize answers once: later calls return the same answer, whatever happened since", () =>
    withVerifier(
      autoBest,
      memoryStack,
      Effect.gen(function*() {
        yield* evaluate(candidate("first", 7))
        const verifier = yield* Verifier.Verifier
        const answer = yield* verifier.finalize()
        yield* evaluate(candidate("later", 9))
        const [again, concurrent] = yield* Effect.all([verifier.finalize(), verifier.finalize()], { concurrency: 2 })
        assert.deepStrictEqual(again, answer)
        assert.deepStrictEqual(concurrent, answer)
        assert.strictEqual(answer.candidate, "first")
      })
    ))
})

describe("Verifier — auto_best with significance", () => {
  const significant = (alpha: number, extra: Partial<Verifier.Options> = {}): Verifier.Options => ({
    ...autoBest,
    significance: alpha,
    ...extra
  })

  it.effect("a candidate better by chance on the selection split but not significantly on the re-score is kept out", () =>
    Effect.gen(function*() {
      // "lucky" looks perfect to the optimizer; its re-score (0.6) beats the baseline's (0.5) on 2 of 20 samples
      const lucky = candidate("lucky", 6, { inflated: true })
      const strict = yield* withVerifier(
        autoBest,
        memoryStack,
        Effect.zipRight(evaluate(lucky), Effect.flatMap(Verifier.Verifier, (verifier) => verifier.finalize()))
      )
      assert.strictEqual(strict.candidate, "lucky", "without significance any strict margin ships")
      assert.isNull(strict.significance)
      const answer = yield* withVerifier(
        significant(0.05),
        memoryStack,
        Effect.zipRight(evaluate(lucky), Effect.flatMap(Verifier.Verifier, (verifier) => verifier.finalize()))
      )
      assert.strictEqual(answer.candidate, "base")
      assert.deepStrictEqual(answer.rewards, { accuracy: 0.5 })
      const test = answer.significance!
      assert.deepStrictEqual(
        [test.candidate, test.shared, test.difference, test.pValue, test.significant, test.comparisons],
        ["lucky", 20, 0.1, 0.25, false, 1]
      )
      assert.include(answer.reason, "not significantly")
      assert.include(answer.reason, "p = 0.25 > 0.05")
    }))

  it.effect("a clearly better candidate ships; the answer records the interval and the p-value", () =>
    withVerifier(
      significant(0.05),
      memoryStack,
      Effect.gen(function*() {
        yield* evaluate(candidate("clear", 10))
        const answer = yield* (yield* Verifier.Verifier).finalize()
        assert.strictEqual(answer.candidate, "clear")
        assert.deepStrictEqual(answer.rewards, { accuracy: 1 })
        const test = answer.significance!
        // 10 of 20 samples better, none worse: one sign pattern of 2^10 is as large (exact)
        assert.deepStrictEqual([test.shared, test.difference, test.pValue, test.significant], [20, 0.5, 1 / 1024, true])
        assert.isNotNull(test.interval)
        assert.isAbove(test.interval!.lower, 0)
        assert.isAtMost(test.interval!.upper, 1)
        assert.include(answer.reason, "significantly")
        // every re-score carries its uncertainty
        assert.strictEqual(answer.shortlist[0]!.rescored, 1)
        assert.isNotNull(answer.shortlist[0]!.interval)
        assert.isNotNull(answer.baselineInterval)
        assert.isAbove(answer.baselineInterval!.upper, 0.5)
        assert.isBelow(answer.baselineInterval!.lower, 0.5)
      })
    ))

  it.effect("α is shared among the candidates the winner was chosen from (Bonferroni), unless told otherwise", () =>
    Effect.gen(function*() {
      // "good" beats the baseline on 6 of 20 samples: one-sided p = 1/64 ≈ 0.016
      const search = Effect.gen(function*() {
        yield* evaluate(candidate("good", 8))
        for (const id of ["w1", "w2", "w3"]) yield* evaluate(candidate(id, 1))
        return yield* (yield* Verifier.Verifier).finalize()
      })
      const corrected = yield* withVerifier(significant(0.05), memoryStack, search)
      assert.strictEqual(corrected.candidate, "base")
      assert.deepStrictEqual(
        [corrected.significance?.pValue, corrected.significance?.comparisons, corrected.significance?.threshold],
        [1 / 64, 4, 0.0125]
      )
      assert.include(corrected.reason, "over 4 candidates")
      const uncorrected = yield* withVerifier(significant(0.05, { correction: "none" }), memoryStack, search)
      assert.strictEqual(uncorrected.candidate, "good")
      assert.deepStrictEqual([uncorrected.significance?.comparisons, uncorrected.significance?.threshold], [1, 0.05])
    }))

  it.effect("significance without a baseline, or outside (0, 1), is a ConfigError", () =>
    Effect.gen(function*() {
      const { baseline: _baseline, ...withoutBaseline } = autoBest
      const refusals: ReadonlyArray<Verifier.Options> = [
        { ...withoutBaseline, significance: 0.05 },
        { ...autoBest, significance: 0 },
        { ...autoBest, significance: 1.5 }
      ]
      for (const options of refusals) {
        const refused = yield* expectFailure(withVerifier(options, memoryStack, Verifier.Verifier))
        assert.strictEqual((refused as { _tag: string })._tag, "ConfigError")
        assert.include((refused as { message: string }).message, "significance")
      }
    }))
})

describe("Verifier — auto_best pooled by git tree (poolTrees)", () => {
  const roots: Array<string> = []
  afterAll(() => {
    for (const root of roots) rmSync(root, { recursive: true, force: true })
  })
  /**
   * A repository: the baseline, a re-commit of the baseline's tree, three commits of one other tree
   * (different messages) and one commit of a third tree.
   */
  const makeRepo = () => {
    const repo = mkdtempSync(join(tmpdir(), "holdout-verifier-git-"))
    roots.push(repo)
    git(repo, "init", "--quiet")
    const commit = (message: string, content?: string) => {
      if (content !== undefined) writeFileSync(join(repo, "agent.txt"), content)
      git(repo, "add", "-A")
      git(repo, "commit", "--quiet", "--allow-empty", "-m", message)
      return git(repo, "rev-parse", "HEAD")
    }
    const base = commit("baseline", "base\n")
    const baseAgain = commit("the baseline again")
    const first = commit("tuned prompt", "tuned\n")
    const second = commit("tuned prompt, re-committed")
    const third = commit("tuned prompt, once more")
    const other = commit("another idea", "other\n")
    return { repo, base, baseAgain, first, second, third, other }
  }

  const gitStack = (repo: string) =>
    memoryStackFresh().pipe(
      Layer.provideMerge(GitWorkspace.layer({ repo })),
      Layer.provide(NodeContext.layer)
    )

  /** Each evaluation at a later time than the one before, so that "earliest" means something. */
  const evaluateLater = (who: Model.Candidate) => Effect.zipLeft(evaluate(who), Effect.sleep("5 millis"))

  it.live("re-commits of one tree are one candidate: their runs pool, the earliest is re-scored", () => {
    const { base, baseAgain, first, other, repo, second, third } = makeRepo()
    // the optimizer's scores of one tree vary (the task reads them from the candidate's metadata)
    const search = Effect.gen(function*() {
      yield* evaluateLater(candidate(first, 9))
      yield* evaluateLater(candidate(second, 1))
      yield* evaluateLater(candidate(third, 2))
      yield* evaluateLater(candidate(other, 6))
      // a lucky re-commit of the baseline's tree
      yield* evaluateLater(candidate(baseAgain, 10))
      return yield* (yield* Verifier.Verifier).finalize()
    })
    const options: Verifier.Options = { ...autoBest, baseline: candidate(base, 5) }
    return Effect.gen(function*() {
      const pooled = yield* withVerifier({ ...options, poolTrees: true }, gitStack(repo), search)
      assert.deepStrictEqual(pooled.shortlist.map((entry) => [entry.candidate, entry.pooled]), [
        [other, 0.6],
        [first, (0.9 + 0.1 + 0.2) / 3]
      ])
      assert.strictEqual(pooled.candidate, first)
      // by commit, the re-commits stuff the shortlist, and the baseline's own tree is a candidate
      const byCommit = yield* withVerifier(options, gitStack(repo), search)
      assert.deepStrictEqual(byCommit.shortlist.map((entry) => entry.candidate), [baseAgain, first, other])
    })
  })

  it.effect("poolTrees without a workspace that knows trees is a ConfigError", () =>
    Effect.gen(function*() {
      const refused = yield* expectFailure(
        withVerifier({ ...autoBest, poolTrees: true }, memoryStack, Verifier.Verifier)
      )
      assert.strictEqual((refused as { _tag: string })._tag, "ConfigError")
      assert.include((refused as { message: string }).message, "poolTrees")
    }))
})

describe("Verifier — a budget reserved for finalize", () => {
  const reserving: ReadonlyArray<Model.SplitBudget> = [
    { datasetId: "ds", split: "validation", runs: 6, reservedForFinalize: { runs: 4 } }
  ]
  const reservingStack = Stack.layerWith({
    budgets: reserving,
    policy,
    ledger: Ledger.layerMemory,
    store: TaskStore.layerMemory,
    datasets: DatasetSource.layerRecords(datasets),
    strategy: LocalStrategy.layer(task)
  })
  const validation = { datasetId: "ds", split: "validation" }

  it.effect("the optimizer's search stops at the reserve; finalize re-scores on it, charged, within the limit", () =>
    withVerifier(
      autoBest,
      reservingStack,
      Effect.gen(function*() {
        yield* evaluate(candidate("good", 8))
        yield* evaluate(candidate("fair", 7))
        const refused = yield* expectFailure(evaluate(candidate("more", 9)))
        assert.deepInclude(refused, { _tag: "BudgetExhausted", reason: "runs", remaining: 0 })
        const ledger = yield* Ledger.Ledger
        const before = yield* ledger.get(validation)
        assert.deepStrictEqual([before.remaining.runs, before.reserved?.runs], [0, 4])
        const answer = yield* (yield* Verifier.Verifier).finalize()
        assert.strictEqual(answer.candidate, "good")
        assert.deepStrictEqual(answer.shortlist.map((entry) => [entry.candidate, entry.rescored]), [
          ["good", 0.8],
          ["fair", 0.7]
        ])
        assert.strictEqual(answer.baseline, 0.5)
        // two re-scores and the baseline's, charged to the reserve; the target's split has no budget
        const after = yield* ledger.get(validation)
        assert.deepStrictEqual([after.spent.runs, after.reserved?.runs], [5, 1])
        const store = yield* TaskStore.TaskStore
        const verifierRuns = (yield* store.listRuns()).filter((run) => run.admin)
        assert.deepStrictEqual(
          verifierRuns.map((run) => [run.split, run.reservationId !== undefined]),
          [["validation", true], ["validation", true], ["validation", true], ["test", false]]
        )
      })
    ))
})

describe("Verifier — submit", () => {
  const submitMode: Verifier.Options = {
    mode: "submit",
    targets: [
      { datasetId: "ds", split: "test", rewardKey: "accuracy" },
      { datasetId: "ds", split: "test", rewardKey: "first_ten", sampleIds: rows(10).map((row) => row.index) }
    ]
  }

  it.effect("a submission must have been evaluated and is final; finalize scores it on every target", () =>
    withVerifier(
      submitMode,
      memoryStack,
      Effect.gen(function*() {
        const verifier = yield* Verifier.Verifier
        const unevaluated = yield* expectFailure(verifier.submit(candidate("never-run", 9)))
        assert.strictEqual(unevaluated._tag, "InvalidRequest")
        assert.include(unevaluated.message, "never evaluated")
        yield* evaluate(candidate("mine", 6))
        yield* verifier.submit(candidate("mine", 6))
        const twice = yield* expectFailure(verifier.submit(candidate("mine", 6)))
        assert.include(twice.message, "already submitted")
        const answer = yield* verifier.finalize()
        assert.strictEqual(answer.candidate, "mine")
        assert.deepStrictEqual(answer.rewards, { accuracy: 0.6, first_ten: 0.6 })
      })
    ))

  it.effect("with a workspace, a submission is stored as the candidate the engine resolved", () => {
    // a workspace that knows the name "mine" as commit "c0ffee"
    const names = Layer.succeed(Workspace.Workspace, {
      resolve: (given) =>
        given.id === "mine" || given.id === "c0ffee"
          ? Effect.succeed({ ...given, id: "c0ffee", label: given.label ?? given.id })
          : Effect.fail(new HoldoutError.InvalidRequest({ message: `Candidate "${given.id}" names no commit.` })),
      checkout: () => Effect.succeed(".")
    })
    return withVerifier(
      submitMode,
      memoryStack.pipe(Layer.provideMerge(names)),
      Effect.gen(function*() {
        const verifier = yield* Verifier.Verifier
        const refused = yield* expectFailure(verifier.submit(candidate("main:refs/x", 6)))
        assert.strictEqual(refused._tag, "InvalidRequest")
        const run = yield* evaluate(candidate("mine", 6))
        assert.strictEqual(run.run.candidate.id, "c0ffee")
        const submitted = yield* verifier.submit(candidate("mine", 6))
        assert.strictEqual(submitted.id, "c0ffee")
        assert.strictEqual(submitted.label, "mine")
        const stored = yield* verifier.submission()
        assert.strictEqual(stored._tag === "Some" ? stored.value.id : null, "c0ffee")
        assert.strictEqual((yield* verifier.finalize()).candidate, "c0ffee")
      })
    )
  })

  it.effect("with a workspace, a baseline given by name is kept out of the shortlist by its resolved id", () => {
    // a workspace that knows the branch "base-branch" as commit "base"
    const names = Layer.succeed(Workspace.Workspace, {
      resolve: (given) =>
        Effect.succeed(given.id === "base-branch" ? { ...given, id: "base", label: given.label ?? given.id } : given),
      checkout: () => Effect.succeed(".")
    })
    const byName: Verifier.Options = { ...autoBest, baseline: candidate("base-branch", 5) }
    return withVerifier(
      byName,
      memoryStack.pipe(Layer.provideMerge(names)),
      Effect.gen(function*() {
        // the optimizer evaluates the baseline (recorded as "base") and a better candidate
        const base = yield* evaluate(candidate("base-branch", 5))
        assert.strictEqual(base.run.candidate.id, "base")
        yield* evaluate(candidate("good", 8))
        const answer = yield* (yield* Verifier.Verifier).finalize()
        assert.deepStrictEqual(answer.shortlist.map((entry) => entry.candidate), ["good"])
        assert.strictEqual(answer.candidate, "good")
      })
    )
  })

  it.effect("nothing submitted: every reward is 0", () =>
    withVerifier(
      submitMode,
      memoryStack,
      Effect.gen(function*() {
        const verifier = yield* Verifier.Verifier
        const answer = yield* verifier.finalize()
        assert.isNull(answer.candidate)
        assert.deepStrictEqual(answer.rewards, { accuracy: 0, first_ten: 0 })
        // once answered, submissions are closed: the answer could never reflect one
        yield* evaluate(candidate("late", 9))
        const closed = yield* expectFailure(verifier.submit(candidate("late", 9)))
        assert.include(closed.message, "submissions are closed")
      })
    ))

  it.effect("a configuration that cannot work is a ConfigError", () =>
    Effect.gen(function*() {
      const missing = yield* expectFailure(
        withVerifier({ mode: "auto_best", targets: [] }, memoryStack, Verifier.Verifier)
      )
      assert.strictEqual((missing as { _tag: string })._tag, "ConfigError")
      const duplicate = yield* expectFailure(withVerifier(
        {
          mode: "submit",
          targets: [
            { datasetId: "ds", split: "test", rewardKey: "r" },
            { datasetId: "ds", split: "validation", rewardKey: "r" }
          ]
        },
        memoryStack,
        Verifier.Verifier
      ))
      assert.strictEqual((duplicate as { _tag: string })._tag, "ConfigError")
    }))
})

describe("Verifier — its own state", () => {
  const submitMode: Verifier.Options = {
    mode: "submit",
    targets: [{ datasetId: "ds", split: "test", rewardKey: "accuracy" }]
  }

  it.effect("the submission and the answer are the store's own state: every stored run is an evaluation", () =>
    withVerifier(
      submitMode,
      memoryStack,
      Effect.gen(function*() {
        yield* evaluate(candidate("mine", 6))
        const verifier = yield* Verifier.Verifier
        yield* verifier.submit(candidate("mine", 6))
        const answer = yield* verifier.finalize()
        const store = yield* TaskStore.TaskStore
        const runs = yield* store.listRuns()
        // the optimizer's evaluation and the verifier's target evaluation, nothing else
        assert.deepStrictEqual(runs.map((run) => [run.candidate.id, run.split, run.admin]), [
          ["mine", "validation", false],
          ["mine", "test", true]
        ])
        assert.isTrue(runs.every((run) => run.datasetId === "ds" && run.sampleIds.length > 0))
        assert.isTrue((yield* store.getMeta(Verifier.stateKeys.submission))._tag === "Some")
        assert.isTrue((yield* store.getMeta(Verifier.stateKeys.answer))._tag === "Some")
        assert.deepStrictEqual(answer.rewards, { accuracy: 0.6 })
      })
    ))

  it.effect("two verifiers on one store (as two processes): one submission wins, and both give the first answer", () =>
    Effect.gen(function*() {
      const first = yield* Verifier.make(submitMode)
      const second = yield* Verifier.make(submitMode)
      yield* evaluate(candidate("a", 6))
      yield* evaluate(candidate("b", 8))
      const submissions = yield* Effect.all(
        [Effect.either(first.submit(candidate("a", 6))), Effect.either(second.submit(candidate("b", 8)))],
        { concurrency: 2 }
      )
      const won = submissions.filter((outcome) => outcome._tag === "Right")
      assert.strictEqual(won.length, 1)
      const lost = submissions.find((outcome) => outcome._tag === "Left")
      assert.include(lost?._tag === "Left" ? lost.left.message : "", "already submitted")
      const winner = won[0]!._tag === "Right" ? won[0]!.right.id : ""
      assert.strictEqual(Option.getOrNull(Option.map(yield* second.submission(), (c) => c.id)), winner)
      const [one, two] = yield* Effect.all([first.finalize(), second.finalize()], { concurrency: 2 })
      assert.deepStrictEqual(one, two)
      assert.strictEqual(one.candidate, winner)
      const late = yield* expectFailure(first.submit(candidate("a", 6)))
      assert.include(late.message, "already submitted")
    }).pipe(Effect.provide(memoryStack)))
})

describe("Verifier — durable", () => {
  it.effect("the submission and the answer survive a restart on the same store; reward.json is flat", () => {
    const dir = mkdtempSync(join(tmpdir(), "holdout-verifier-"))
    const stack = () =>
      stackOn(
        SqliteStore.layerLibsql({ filename: join(dir, "holdout.db"), budgets }).pipe(Layer.provide(NodeContext.layer))
      )
    const options: Verifier.Options = { ...autoBest, mode: "submit" }
    return Effect.gen(function*() {
      const first = yield* withVerifier(
        options,
        stack(),
        Effect.gen(function*() {
          yield* evaluate(candidate("kept", 7))
          yield* (yield* Verifier.Verifier).submit(candidate("kept", 7))
          return yield* (yield* Verifier.Verifier).finalize()
        })
      )
      // a new process: the submission stands and finalize returns the recorded answer, scoring nothing
      const second = yield* withVerifier(
        options,
        stack(),
        Effect.gen(function*() {
          const verifier = yield* Verifier.Verifier
          const refused = yield* expectFailure(verifier.submit(candidate("kept", 7)))
          assert.include(refused.message, "already submitted")
          const before = yield* adminRuns
          const answer = yield* verifier.finalize()
          assert.strictEqual(yield* adminRuns, before)
          return answer
        })
      )
      assert.deepStrictEqual(second, first)
      assert.deepStrictEqual(first.rewards, { accuracy: 0.7 })
      const file = join(dir, "out", "reward.json")
      yield* Verifier.writeRewards(file, second.rewards).pipe(Effect.provide(NodeContext.layer))
      assert.deepStrictEqual(JSON.parse(readFileSync(file, "utf8")), { accuracy: 0.7 })
    }).pipe(Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true }))))
  })
})
