import { assert, describe, it } from "@effect/vitest"
import { Ledger, TaskStore } from "@holdout/core"
import { PgStore } from "@holdout/store-pg"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { fileURLToPath } from "node:url"
import { tsxLines } from "../../harness/test/helpers.js"
import { sharedBudget } from "./fixtures/budget.js"
import { freshDatabase } from "./support.js"

const reserver = fileURLToPath(new URL("./fixtures/reserver.ts", import.meta.url))

/** Runs one reserver process to its end; the ids it saw acknowledged. */
const runReserver = (url: string, index: number, count: number) =>
  tsxLines(reserver, [url, String(index), String(count)], `reserver ${index}`)

describe("PostgreSQL ledger shared by 3 processes", () => {
  it.scoped("exactly the budget is granted in total, each acknowledged reservation once", () =>
    Effect.gen(function*() {
      const url = yield* freshDatabase("multiprocess")
      // 3 × 400 concurrent reservations against runs: 500
      const acknowledged = yield* Effect.all([0, 1, 2].map((index) => runReserver(url, index, 400)), {
        concurrency: "unbounded"
      })
      const granted = acknowledged.flat()
      assert.strictEqual(granted.length, 500, "the processes were granted more or less than the budget")
      yield* Effect.scoped(Effect.gen(function*() {
        const ledger = yield* Ledger.Ledger
        const journal = (yield* ledger.reservations(sharedBudget.key)).map((reservation) => reservation.id)
        assert.deepStrictEqual([...journal].sort(), [...granted].sort())
        assert.deepStrictEqual((yield* ledger.get(sharedBudget.key)).spent, { runs: 500, samples: 500 })
      })).pipe(Effect.provide(PgStore.layer({ url, budgets: [sharedBudget.budget] })))
    }))
})

describe("PostgreSQL store's own state shared by several stores", () => {
  it.scoped("the first value written under a key wins across stores on one database (the blocks' secret, releases)", () =>
    Effect.gen(function*() {
      const url = yield* freshDatabase("meta")
      // three stores with their own connection pools, as three hosts would have
      const stores = yield* Effect.forEach(
        [0, 1, 2],
        () => Effect.map(Layer.build(PgStore.layer({ url, budgets: [] })), Context.get(TaskStore.TaskStore))
      )
      const answers = yield* Effect.all(
        Array.from({ length: 30 }, (_, n) => stores[n % 3]!.putMetaIfAbsent("holdout:secret", `value-${n}`)),
        { concurrency: "unbounded" }
      )
      assert.strictEqual(new Set(answers).size, 1, `the stores disagree: ${[...new Set(answers)].join(", ")}`)
      for (const store of stores) {
        assert.strictEqual(Option.getOrThrow(yield* store.getMeta("holdout:secret")), answers[0])
      }
    }))
})
