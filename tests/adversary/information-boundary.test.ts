/**
 * An adaptive optimizer against the engine's information boundary (DESIGN §10): differencing on a
 * non_viewable split, idempotency keys aimed at the verifier's runs, and a reservation id reused for
 * another split.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { assert, describe, it } from "@effect/vitest"
import {
  DatasetSource,
  Engine,
  Ledger,
  LocalStrategy,
  type Model,
  SampleIds,
  Stack,
  Task,
  TaskStore
} from "@holdout/core"
import { Verifier } from "@holdout/harness"
import { SqliteStore } from "@holdout/store-sqlite"
import { expectFailure } from "@holdout/testkit"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

interface Row {
  readonly index: number
}

const size = 40
const rows = (count: number): ReadonlyArray<Row> => Array.from({ length: count }, (_, index) => ({ index }))
/** The hidden truth: each sample's score, known to the test only. */
const truth = (index: number, quality: number) => ((index * 7919 + 13) % 10) < quality ? 1 : 0
const quality = (candidate: Model.Candidate) => Number(candidate.metadata?.["q"] ?? 5)

const task = Task.make<Row, number>({
  name: "hidden",
  infer: (row) => row.index,
  score: (row, _stored, run) => truth(row.index, quality(run.candidate))
})

const budgets: ReadonlyArray<Model.SplitBudget> = [
  { datasetId: "ds", split: "train", runs: 100 },
  { datasetId: "ds", split: "validation", runs: 100 }
]
const policy = { train: "viewable", validation: "non_viewable", test: "no_access" } as const
const datasets = { ds: { train: rows(size), validation: rows(size), test: rows(size) } }

const stackOn = <E>(stores: Layer.Layer<Ledger.Ledger | TaskStore.TaskStore, E>) =>
  Stack.layerWith({
    budgets,
    policy,
    ledger: () => stores,
    store: stores,
    datasets: DatasetSource.layerRecords(datasets),
    strategy: LocalStrategy.layer(task)
  })
const memoryStack = () => stackOn(Layer.merge(Ledger.layerMemory(budgets), TaskStore.layerMemory))

const evaluate = (request: Omit<Model.EvalRequest, "datasetId">) =>
  Effect.flatMap(Engine.Engine, (engine) => engine.evaluate({ datasetId: "ds", ...request }))

/** The sum of scores an answer reveals (numSamples × avgFilledScore). */
const revealedSum = (experiment: Model.Experiment) =>
  Math.round(experiment.metrics.avgFilledScore * experiment.metrics.numSamples)

describe("adversary: differencing on a non_viewable split", () => {
  it.effect("an attacker spending its whole budget learns no sample's score: its guesses are no better than block means", () =>
    Effect.gen(function*() {
      const candidate = { id: "c", metadata: { q: 5 } }
      // sampleIds are refused outright, and charge nothing
      const refused = yield* expectFailure(evaluate({ split: "validation", candidate, sampleIds: [1, 2, 3, 4, 5] }))
      assert.strictEqual(refused._tag, "InvalidRequest")
      assert.strictEqual(
        (yield* expectFailure(evaluate({ split: "validation", candidate, numSamples: 4 })))._tag,
        "SubsetTooSmall"
      )
      // the classic attack: P(k+1)·(k+1) − P(k)·k is sample k's score — for every k the budget allows
      const sums: Array<number> = []
      const sets: Array<ReadonlyArray<number>> = []
      for (let count = 5; count <= size; count++) {
        const experiment = yield* evaluate({ split: "validation", candidate, numSamples: count })
        sums[count] = revealedSum(experiment)
        sets[count] = SampleIds.toArray(experiment.run.sampleIds)
      }
      const spent = yield* Effect.flatMap(
        Ledger.Ledger,
        (ledger) => ledger.get({ datasetId: "ds", split: "validation" })
      )
      assert.strictEqual(spent.spent.runs, size - 4)
      // the attacker's guess for the sample its k-th difference names (on today's engine: exact)
      const guesses = new Map<number, number>()
      for (let count = 5; count < size; count++) guesses.set(count, sums[count + 1]! - sums[count]!)
      // every two answers differ by nothing or by at least the floor: no answer isolates fewer samples
      for (let count = 5; count < size; count++) {
        const added = sets[count + 1]!.length - sets[count]!.length
        assert.isTrue(added === 0 || added >= 5, `numSamples ${count} → ${count + 1} added ${added} samples`)
        for (const id of sets[count]!) assert.include(sets[count + 1]!, id, "answers are nested unions of blocks")
      }
      // the blocks, as a verifier sees them, and the block-mean predictor
      const blocks: Array<ReadonlyArray<number>> = []
      let previous: ReadonlyArray<number> = []
      for (let count = 5; count <= size; count++) {
        const block = sets[count]!.filter((id) => !previous.includes(id))
        if (block.length > 0) blocks.push(block)
        previous = sets[count]!
      }
      for (const block of blocks) assert.isAtLeast(block.length, 5)
      const blockMean = new Map<number, number>()
      for (const block of blocks) {
        const mean = block.reduce((total, id) => total + truth(id, 5), 0) / block.length
        for (const id of block) blockMean.set(id, mean)
      }
      const squaredError = (predict: (id: number) => number) =>
        Array.from(guesses.keys()).reduce((total, id) => total + (predict(id) - truth(id, 5)) ** 2, 0)
      const attacker = squaredError((id) => guesses.get(id)!)
      const baseline = squaredError((id) => blockMean.get(id)!)
      assert.isAtLeast(attacker, baseline, "the attacker's per-sample guesses beat the block means")
      assert.isAbove(attacker, 0, "the attacker recovered every sample exactly")
    }).pipe(Effect.provide(memoryStack())))

  it.effect("blocks are kept in the store: identical after a restart, new for a new size", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(join(tmpdir(), "holdout-blocks-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
      const filename = join(dir, "holdout.db")
      const stack = (splitSize: number) =>
        Stack.layerWith({
          budgets,
          policy,
          ledger: () => stores,
          store: stores,
          datasets: DatasetSource.layerRecords({ ds: { ...datasets.ds, validation: rows(splitSize) } }),
          strategy: LocalStrategy.layer(task)
        })
      const stores = SqliteStore.layerLibsql({ filename, budgets }).pipe(Layer.provide(NodeContext.layer))
      const ids = (splitSize: number, key: string) =>
        Effect.scoped(Effect.map(
          evaluate({ split: "validation", candidate: { id: "c" }, numSamples: 10, idempotencyKey: key }).pipe(
            Effect.provide(stack(splitSize))
          ),
          (experiment) => SampleIds.toArray(experiment.run.sampleIds)
        ))
      const first = yield* ids(size, "a")
      const again = yield* ids(size, "b")
      assert.deepStrictEqual(again, first)
      assert.notDeepEqual(first, Array.from({ length: 10 }, (_, index) => index), "the blocks are not the first ids")
      const resized = yield* ids(size + 7, "c")
      assert.notDeepEqual(resized, first)
    }).pipe(Effect.scoped))

  it.effect("viewable splits and the verifier keep any subset", () =>
    Effect.gen(function*() {
      const candidate = { id: "c" }
      const viewable = yield* evaluate({ split: "train", candidate, sampleIds: [3, 1] })
      assert.deepStrictEqual(SampleIds.toArray(viewable.run.sampleIds), [1, 3])
      const first = yield* evaluate({ split: "train", candidate, numSamples: 3 })
      assert.deepStrictEqual(SampleIds.toArray(first.run.sampleIds), [0, 1, 2])
      const admin = yield* Effect.flatMap(Engine.Engine, (engine) =>
        engine.evaluate({ datasetId: "ds", split: "validation", candidate, sampleIds: [7] }, { admin: true }))
      assert.deepStrictEqual(SampleIds.toArray(admin.run.sampleIds), [7])
    }).pipe(Effect.provide(memoryStack())))
})

describe("adversary: idempotency keys aimed at the verifier", () => {
  const autoBest: Verifier.Options = {
    mode: "auto_best",
    selection: { datasetId: "ds", split: "validation" },
    targets: [{ datasetId: "ds", split: "test", rewardKey: "accuracy" }]
  }

  it.effect("keys named like the verifier's cannot change finalize's answer or its reward", () =>
    Effect.gen(function*() {
      const good = { id: "c5", metadata: { q: 8 } }
      const fair = { id: "c3", metadata: { q: 6 } }
      yield* evaluate({ split: "validation", candidate: good })
      yield* evaluate({ split: "validation", candidate: fair })
      // pre-empt the verifier's re-score of c5 with a bad candidate, and its target keys
      const poison = { id: "p", metadata: { q: 0 } }
      for (
        const key of [
          "holdout:finalize:rescore:c5",
          "holdout:finalize:target:accuracy:c5:1",
          "holdout:finalize:target:accuracy:c5:2",
          "admin:holdout:finalize:rescore:c5"
        ]
      ) {
        yield* Effect.either(evaluate({ split: "train", candidate: poison, idempotencyKey: key }))
        yield* Effect.either(evaluate({ split: "validation", candidate: poison, idempotencyKey: `${key}:v` }))
      }
      const answer = yield* Effect.flatMap(Verifier.Verifier, (verifier) => verifier.finalize())
      assert.strictEqual(answer.candidate, "c5")
      const rescored = answer.shortlist.find((entry) => entry.candidate === "c5")
      assert.isAbove(rescored?.rescored ?? 0, 0.5)
      assert.isAbove(answer.rewards["accuracy"] ?? 0, 0.5)
      assert.deepStrictEqual(answer.targetErrors, {})
      // after finalize, the optimizer's keys still name only its own runs: a mismatch names nothing
      const conflict = yield* expectFailure(
        evaluate({ split: "train", candidate: good, idempotencyKey: "holdout:finalize:rescore:c5" })
      )
      assert.strictEqual(conflict._tag, "IdempotencyConflict")
      assert.notInclude(conflict.message, "test")
      assert.notInclude(conflict.message, String(size))
    }).pipe(Effect.provide(Verifier.layer(autoBest).pipe(Layer.provideMerge(memoryStack())))))
})

describe("adversary: a key reused for another split", () => {
  it.effect("an orphan reservation (charged, no run) is finished as its own split's run; another split conflicts", () =>
    Effect.gen(function*() {
      const ledger = yield* Ledger.Ledger
      const candidate = { id: "c" }
      // a crash after the charge and before the run: the reservation of key "k" on train, no run
      const runId = Engine.runIdForKey("k")
      yield* ledger.reserve({ datasetId: "ds", split: "train", samples: size, runId, reservationId: runId })
      const other = yield* expectFailure(evaluate({ split: "validation", candidate, idempotencyKey: "k" }))
      assert.strictEqual(other._tag, "IdempotencyConflict")
      const replay = yield* evaluate({ split: "train", candidate, idempotencyKey: "k" })
      assert.strictEqual(replay.run.split, "train")
      assert.strictEqual(replay.run.status, "completed")
      const status = yield* ledger.status()
      assert.deepStrictEqual(status.map((entry) => [entry.split, entry.spent.runs]), [["train", 1], ["validation", 0]])
    }).pipe(Effect.provide(memoryStack())))
})
