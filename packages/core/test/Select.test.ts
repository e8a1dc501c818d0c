import { assert, describe, it } from "@effect/vitest"
import { expectFailure } from "@holdout/testkit"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as DatasetSource from "../src/DatasetSource.js"
import * as Halving from "../src/Halving.js"
import * as Ledger from "../src/Ledger.js"
import * as LocalStrategy from "../src/LocalStrategy.js"
import type { SplitBudget } from "../src/Model.js"
import * as Select from "../src/Select.js"
import * as Stack from "../src/Stack.js"
import * as Task from "../src/Task.js"
import * as TaskStore from "../src/TaskStore.js"

interface Row {
  readonly id: number
}

// candidate "pN" passes a sample when (37 · id) mod 100 < N: nested pass sets, so scores are correlated
const task = Task.make<Row, null>({
  name: "threshold",
  infer: () => null,
  score: (row, _output, run) => (row.id * 37) % 100 < Number(run.candidate.id.slice(1)) ? 1 : 0
})

const split = (count: number) => Array.from({ length: count }, (_, id) => ({ id }))

const datasets = DatasetSource.layerRecords({ race: { train: split(400), validation: split(200), test: split(100) } })

const race = (options: {
  readonly budgets?: ReadonlyArray<Omit<SplitBudget, "datasetId">>
  readonly store?: Layer.Layer<TaskStore.TaskStore>
} = {}) =>
  Stack.layerWith({
    budgets: (options.budgets ?? [{ split: "train", runs: 100 }, { split: "validation", runs: 100 }]).map((
      budget
    ) => ({ datasetId: "race", ...budget })),
    policy: { train: "viewable", validation: "non_viewable", test: "no_access" },
    ledger: Ledger.layerMemory,
    store: options.store ?? TaskStore.layerMemory,
    datasets,
    strategy: LocalStrategy.layer(task)
  }).pipe(Layer.orDie)

// p90 is best; p88 differs from it on 2% of the samples only, and is never better
const candidates = ["p50", "p90", "p30", "p70", "p88"].map((id) => ({ id }))

const spent = (splitName: string) =>
  Effect.map(
    Effect.flatMap(Ledger.Ledger, (ledger) => ledger.get({ datasetId: "race", split: splitName })),
    (snapshot) => snapshot.spent
  )

describe("Select: the schedule and the elimination rule", () => {
  it("sizes grow by the growth factor up to the whole split", () => {
    assert.deepStrictEqual(Halving.sizes(400, 4), [100, 200, 400])
    assert.deepStrictEqual(Halving.sizes(10_000, 20), [313, 626, 1252, 2504, 5008, 10_000])
    assert.deepStrictEqual(Halving.sizes(100, 3, { startSize: 30, growth: 3 }), [30, 90, 100])
    assert.deepStrictEqual(Halving.sizes(50, 64), [10, 20, 40, 50])
  })

  it("the seeded order takes every sample once, and another seed another order", () => {
    for (const size of [2, 3, 97, 100, 1024]) {
      const order = Halving.order(size, 5)
      const seen = new Set(Array.from({ length: size }, (_, position) => order.at(position)))
      assert.strictEqual(seen.size, size)
    }
    const first = Array.from({ length: 10 }, (_, position) => Halving.order(1000, 1).at(position))
    const second = Array.from({ length: 10 }, (_, position) => Halving.order(1000, 2).at(position))
    assert.notDeepEqual(first, second)
  })

  it("drops a candidate whose paired interval lies below the leader, halving the rest", () => {
    const counts = Halving.tally(4)
    // candidate 0 always 1; 1 alternates; 2 is 1 except every tenth sample; 3 equals 0
    for (let sample = 0; sample < 100; sample++) {
      Halving.add(counts, [0, 1, 2, 3], [1, sample % 2, sample % 10 === 0 ? 0 : 1, 1])
    }
    const step = Halving.eliminate(counts, [0, 1, 2, 3])
    assert.strictEqual(step.leader, 0)
    // 1 and 2 are clearly worse; 3 ties the leader and goes on
    assert.deepStrictEqual(step.next, [0, 3])
    assert.deepStrictEqual(step.lead, { lower: 0, upper: 0 })
    // the paired interval is the paired t interval (differences 0 or 1, mean 0.1)
    const interval = Halving.pairedInterval(counts, 0, 2, 0.05)!
    const half = 1.9842169515 * Math.sqrt(0.1 * 0.9 * 100 / 99 / 100)
    assert.closeTo(interval.lower, 0.1 - half, 1e-6)
    assert.closeTo(interval.upper, 0.1 + half, 1e-6)
  })
})

describe("Select.race", () => {
  it.effect("picks the best of clearly separated candidates, charging each round through the engine", () =>
    Effect.gen(function*() {
      const result = yield* Select.race({ candidates, datasetId: "race", split: "train" })
      assert.strictEqual(result.winner.candidate.id, "p90")
      assert.closeTo(result.winner.mean, 0.9, 0.05)
      assert.isTrue(result.winner.interval!.lower < result.winner.mean)
      assert.isNotNull(result.lead)
      assert.deepStrictEqual(result.rounds[0]!.candidates, ["p50", "p90", "p30", "p70", "p88"])
      assert.isAbove(result.rounds.length, 1)
      // exhaustive evaluation would take 5 × 400 samples
      assert.isBelow(result.samplesSpent, 1000)
      assert.deepStrictEqual(yield* spent("train"), { runs: result.runsSpent, samples: result.samplesSpent })
    }).pipe(Effect.provide(race())))

  it.effect("never charges beyond the budget: a round it cannot pay for is not started, and it stops typed", () =>
    Effect.gen(function*() {
      for (const samples of [100, 249, 250, 300, 349, 350, 549, 550, 949, 950, 2000]) {
        const outcome = yield* Effect.either(Select.race({ candidates, datasetId: "race", split: "train" })).pipe(
          Effect.zip(spent("train")),
          Effect.provide(race({ budgets: [{ split: "train", samples }] }))
        )
        const [result, used] = outcome
        assert.isTrue(used.samples <= samples, `spent ${used.samples} of ${samples}`)
        if (result._tag === "Right") {
          assert.strictEqual(used.samples, result.right.samplesSpent)
          continue
        }
        const error = result.left
        assert.strictEqual(error._tag, "RaceStopped", `${samples}: ${error._tag}`)
        if (error._tag !== "RaceStopped") continue
        assert.deepInclude(error.budget, { split: "train", reason: "samples" })
        assert.strictEqual(error.samplesSpent, used.samples)
        // a leader once a round has finished (the first costs 5 × 50 samples)
        assert.strictEqual(error.best === null, samples < 250)
        if (error.best !== null) assert.strictEqual(error.best.candidate.id, "p90")
        assert.include(error.message, "nothing beyond the budget")
      }
    }))

  it.effect("stops typed on a run budget too, and an exhausted split before the first round charges nothing", () =>
    Effect.gen(function*() {
      const error = yield* expectFailure(Select.race({ candidates, datasetId: "race", split: "train" }))
      assert.strictEqual(error._tag, "RaceStopped")
      if (error._tag === "RaceStopped") {
        assert.deepInclude(error.budget, { reason: "runs", requested: 2, remaining: 1 })
        assert.strictEqual(error.rounds.length, 1)
      }
      assert.deepStrictEqual(yield* spent("train"), { runs: 5, samples: 250 })
    }).pipe(Effect.provide(race({ budgets: [{ split: "train", runs: 6 }] }))))

  it.effect("splits a round into runs the per-run cap allows", () =>
    Effect.gen(function*() {
      const result = yield* Select.race({ candidates, datasetId: "race", split: "train" })
      assert.strictEqual(result.winner.candidate.id, "p90")
      const ledger = yield* Ledger.Ledger
      const reservations = yield* ledger.reservations({ datasetId: "race", split: "train" })
      assert.isTrue(reservations.every((reservation) => reservation.samples <= 30))
      assert.strictEqual(reservations.length, result.runsSpent)
    }).pipe(Effect.provide(race({ budgets: [{ split: "train", runs: 1000, maxSamplesPerRun: 30 }] }))))

  it.effect("an optimizer races on viewable splits only; the verifier anywhere, uncharged", () =>
    Effect.gen(function*() {
      for (const splitName of ["validation", "test"]) {
        const error = yield* expectFailure(Select.race({ candidates, datasetId: "race", split: splitName }))
        assert.strictEqual(error._tag, "AccessDenied")
      }
      assert.deepStrictEqual(yield* spent("validation"), { runs: 0, samples: 0 })
      const result = yield* Select.race({ candidates, datasetId: "race", split: "validation", admin: true })
      assert.strictEqual(result.winner.candidate.id, "p90")
      assert.deepStrictEqual(yield* spent("validation"), { runs: 0, samples: 0 })
    }).pipe(Effect.provide(race())))

  it.effect("refuses malformed options before anything is charged", () =>
    Effect.gen(function*() {
      for (
        const options of [
          { candidates: [{ id: "p10" }] },
          { candidates: [{ id: "p10" }, { id: "p10" }] },
          { candidates, growth: 1 },
          { candidates, startSize: 1 },
          { candidates, confidence: 1 },
          { candidates, delta: -0.1 }
        ]
      ) {
        const error = yield* expectFailure(Select.race({ datasetId: "race", split: "train", ...options }))
        assert.strictEqual(error._tag, "InvalidRequest")
      }
      assert.deepStrictEqual(yield* spent("train"), { runs: 0, samples: 0 })
    }).pipe(Effect.provide(race())))

  it.effect("memory flat: runs are read a page at a time, side by side, never whole", () => {
    const limits: Array<number> = []
    const store = Layer.sync(TaskStore.TaskStore, () => {
      const inner = TaskStore.makeMemory()
      return {
        ...inner,
        listSamples: (runId, page) =>
          Effect.zipRight(Effect.sync(() => limits.push(page.limit)), inner.listSamples(runId, page))
      }
    })
    return Effect.gen(function*() {
      const result = yield* Select.race({ candidates, datasetId: "race", split: "train", pageSize: 7 })
      assert.strictEqual(result.winner.candidate.id, "p90")
      const reads = limits.filter((limit) => limit === 7).length
      assert.isTrue(reads >= Math.floor(result.samplesSpent / 7))
      assert.isTrue(limits.every((limit) => limit <= 7 || limit === TaskStore.defaultPageSize))
    }).pipe(Effect.provide(race({ store })))
  })
})
