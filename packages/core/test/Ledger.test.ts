import { assert, describe, it } from "@effect/vitest"
import { ledgerConformance } from "@holdout/testkit"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ledger from "../src/Ledger.js"
import type * as Model from "../src/Model.js"

ledgerConformance("memory", {
  makeLocation: Effect.succeed(Ledger.layerMemory),
  persistent: false
})

interface Committed {
  readonly byId: ReadonlyMap<string, Model.Reservation>
  readonly journal: ReadonlyArray<Model.Reservation>
  readonly spent: ReadonlyMap<string, Ledger.Spent>
}

/**
 * A third party's driver: the store is an immutable value swapped in by compare-and-set, and a
 * step first yields between reading and committing, so concurrent steps collide and are run again
 * on the newer store. The rules come from `Ledger.make`; the driver knows none of them.
 */
const driverOptimistic = () => {
  let store: Committed = { byId: new Map(), journal: [], spent: new Map() }
  const counters = { reruns: 0 }
  const driver: Ledger.Driver = {
    transact: (_reservationId, step) =>
      Effect.gen(function*() {
        for (let attempt = 0;; attempt++) {
          const base = store
          const appended: Array<Model.Reservation> = []
          const spent = new Map(base.spent)
          const outcome = step({
            find: (id) => appended.find((reservation) => reservation.id === id) ?? base.byId.get(id),
            spent: (key) => spent.get(key) ?? Ledger.nothingSpent,
            append: (reservation) => {
              const key = Ledger.keyString(reservation)
              const current = spent.get(key) ?? Ledger.nothingSpent
              spent.set(key, { runs: current.runs + 1, samples: current.samples + reservation.samples })
              appended.push(reservation)
            }
          })
          // the first attempt lets other fibers commit before it does; a rerun commits at once
          if (attempt === 0) yield* Effect.yieldNow()
          if (store !== base) {
            counters.reruns++
            continue
          }
          const byId = new Map(base.byId)
          for (const reservation of appended) byId.set(reservation.id, reservation)
          store = { byId, journal: [...base.journal, ...appended], spent }
          return yield* outcome
        }
      }),
    spent: Effect.sync(() => store.spent),
    reservations: (key) =>
      Effect.sync(() =>
        store.journal.filter((entry) =>
          key === undefined || (entry.datasetId === key.datasetId && entry.split === key.split)
        )
      )
  }
  return { driver, counters }
}

ledgerConformance("a third-party driver through Ledger.make", {
  makeLocation: Effect.succeed((budgets) =>
    Layer.effect(Ledger.Ledger, Ledger.make({ budgets, driver: driverOptimistic().driver }))
  ),
  persistent: false
})

describe("Ledger.make", () => {
  it.effect("a driver that runs a step again never charges twice or overspends", () =>
    Effect.gen(function*() {
      const { counters, driver } = driverOptimistic()
      const ledger = yield* Ledger.make({ budgets: [{ datasetId: "ds", split: "train", runs: 30 }], driver })
      const outcomes = yield* Effect.forEach(
        Array.from({ length: 100 }, (_, index) => index % 50),
        (index) =>
          Effect.either(
            ledger.reserve({
              datasetId: "ds",
              split: "train",
              samples: 1,
              runId: `run-${index}`,
              reservationId: `r${index}`
            })
          ),
        { concurrency: "unbounded" }
      )
      assert.isAbove(counters.reruns, 0, "the steps never collided: the test proves nothing")
      const charged = new Set(outcomes.flatMap((outcome) => outcome._tag === "Right" ? [outcome.right.id] : []))
      assert.strictEqual(charged.size, 30)
      assert.strictEqual((yield* ledger.reservations()).length, 30)
      assert.deepStrictEqual((yield* ledger.get({ datasetId: "ds", split: "train" })).spent, { runs: 30, samples: 30 })
    }))

  it.effect("an invalid budget configuration is a ConfigError before the driver is used", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Ledger.make({ budgets: [{ datasetId: "ds", split: "train" }], driver: driverOptimistic().driver })
      )
      assert.strictEqual(error._tag, "ConfigError")
    }))

  it.effect("a driver opened exhausted refuses every reservation and reports nothing left", () =>
    Effect.gen(function*() {
      const ledger = yield* Ledger.make({
        budgets: [{ datasetId: "ds", split: "train", samples: 10 }],
        driver: { ...Ledger.driverMemory(), exhausted: true }
      })
      const error = yield* Effect.flip(
        ledger.reserve({ datasetId: "ds", split: "train", samples: 0, runId: "run", reservationId: "r" })
      )
      assert.deepInclude(error, { _tag: "BudgetExhausted", remaining: 0 })
      const snapshot = yield* ledger.get({ datasetId: "ds", split: "train" })
      assert.deepStrictEqual(snapshot.remaining, { runs: 0, samples: 0 })
    }))
})
