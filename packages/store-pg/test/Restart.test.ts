import { assert, describe, it } from "@effect/vitest"
import { Ledger, TaskStore } from "@holdout/core"
import { PgStore } from "@holdout/store-pg"
import { expectFailure, makeRun } from "@holdout/testkit"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import { createServer } from "node:net"
import { ownCluster } from "./support.js"

const key = { datasetId: "ds", split: "validation" } as const
const budgets = [{ ...key, runs: 100_000 }]

const reserve = (ledger: Ledger.Ledger["Type"], id: string) =>
  ledger.reserve({ ...key, samples: 1, runId: `run-${id}`, reservationId: id })

describe("PostgreSQL server restart", () => {
  it.scopedLive(
    "during the outage operations fail with StoreError; afterwards the store works and nothing acknowledged is lost",
    () =>
      Effect.gen(function*() {
        const server = yield* ownCluster
        const context = yield* Layer.build(PgStore.layer({ url: server.url, budgets }))
        const ledger = Context.get(context, Ledger.Ledger)
        const tasks = Context.get(context, TaskStore.TaskStore)
        yield* tasks.createRun(makeRun("before"))
        const before = yield* Effect.forEach(["a", "b", "c"], (id) => reserve(ledger, id))

        // 8 clients keep reserving new ids while the server stops and starts again (each at most 2,000)
        const restarted = yield* Ref.make(false)
        const client = (worker: number) =>
          Effect.gen(function*() {
            const outcomes: Array<readonly [string, Exit.Exit<unknown, unknown>]> = []
            for (let n = 0; n < 2_000 && !(yield* Ref.get(restarted)); n++) {
              const id = `w${worker}-${n}`
              outcomes.push([id, yield* Effect.exit(reserve(ledger, id))])
            }
            return outcomes
          })
        const stream = yield* Effect.fork(
          Effect.map(
            Effect.all([0, 1, 2, 3, 4, 5, 6, 7].map(client), { concurrency: "unbounded" }),
            (all) => all.flat()
          )
        )
        yield* Effect.sleep("100 millis")
        yield* server.stop

        const reserveError = yield* expectFailure(reserve(ledger, "during"))
        assert.strictEqual(reserveError._tag, "StoreError")
        assert.match(reserveError.message, /cannot be reached/)
        const readError = yield* expectFailure(tasks.getRun("before"))
        assert.strictEqual(readError._tag, "StoreError")
        const writeError = yield* expectFailure(tasks.createRun(makeRun("during")))
        assert.strictEqual(writeError._tag, "StoreError")

        yield* server.start
        yield* reserve(ledger, "after")
        yield* Ref.set(restarted, true)
        const outcomes = yield* Fiber.join(stream)
        const failed = outcomes.flatMap(([id, exit]) => Exit.isFailure(exit) ? [id] : [])
        assert.isAbove(failed.length, 0, "no reservation ran into the outage")
        for (const [, exit] of outcomes) {
          if (Exit.isFailure(exit)) assert.include(String(exit.cause), "StoreError")
        }
        const acknowledged = [
          ...before.map((reservation) => reservation.id),
          ...outcomes.flatMap(([id, exit]) => Exit.isSuccess(exit) ? [id] : [])
        ]

        // recovered: the same store serves again
        assert.isTrue(Option.isSome(yield* tasks.getRun("before")))
        yield* tasks.createRun(makeRun("after"))

        // nothing acknowledged is lost; an id whose outcome was unknown is charged at most once
        const journal = (yield* ledger.reservations(key)).map((reservation) => reservation.id)
        for (const id of [...acknowledged, "after"]) assert.include(journal, id, `acknowledged ${id} is lost`)
        assert.strictEqual(new Set(journal).size, journal.length)
        yield* Effect.forEach(failed, (id) => reserve(ledger, id), { discard: true })
        const spent = (yield* ledger.get(key)).spent
        assert.strictEqual(spent.runs, (yield* ledger.reservations(key)).length)
        assert.strictEqual(spent.runs, 3 + outcomes.length + 1)
      }),
    120_000
  )
})

/** A port of 127.0.0.1 that nothing listens on (it was free a moment ago). */
const closedPort = Effect.async<number>((resume) => {
  const server = createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    server.close(() => resume(Effect.succeed(typeof address === "object" && address !== null ? address.port : 0)))
  })
})

describe("PostgreSQL not reachable at open", () => {
  it.scopedLive("is a one-line StoreError naming the URL without its password", () =>
    Effect.gen(function*() {
      const port = yield* closedPort
      const error = yield* expectFailure(
        Layer.build(PgStore.layer({ url: `postgres://holdout:s3cret@127.0.0.1:${port}/holdout`, budgets }))
      )
      assert.strictEqual(error._tag, "StoreError")
      assert.include(error.message, `Cannot connect to PostgreSQL at postgres://holdout:***@127.0.0.1:${port}/holdout`)
      assert.notInclude(error.message, "s3cret")
      assert.notInclude(error.message, "\n")
    }))
})
