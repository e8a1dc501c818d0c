import { assert, describe, it } from "@effect/vitest"
import { expectFailure } from "@holdout/testkit"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"
import * as Engine from "../src/Engine.js"
import * as Ledger from "../src/Ledger.js"
import { candidate, stack } from "./fixtures.js"

/** The stack's ledger with a count of its `status` reads, and `afterRead`, an effect run after each read. */
const countingLedger = Effect.gen(function*() {
  const ledger = yield* Ledger.Ledger
  const reads = yield* Ref.make(0)
  const afterRead = yield* Ref.make<Effect.Effect<void>>(Effect.void)
  const counted: Ledger.Ledger["Type"] = {
    ...ledger,
    status: () =>
      Effect.zipLeft(
        Effect.zipRight(Ref.update(reads, (n) => n + 1), ledger.status()),
        Effect.flatten(Ref.get(afterRead))
      )
  }
  return { reads, afterRead, ledger: counted }
})

/**
 * An engine of the stack over `ledger`, its reads while it is built not counted: a second engine
 * over one ledger is another process on one store.
 */
const engineOver = (ledger: Ledger.Ledger["Type"], options: Engine.EngineOptions = {}, reads?: Ref.Ref<number>) =>
  Effect.provideService(Engine.make(options), Ledger.Ledger, ledger).pipe(
    Effect.tap(() => reads === undefined ? Effect.void : Ref.set(reads, 0))
  )

const trainSpent = (engine: Engine.Engine["Type"]) =>
  Effect.map(engine.status(), (status) => status.find((entry) => entry.split === "train")!.spent)

const evaluateTrain = (engine: Engine.Engine["Type"]) =>
  engine.evaluate({ datasetId: "qa", split: "train", candidate, numSamples: 2 })

describe("Engine.status: budgets read at most once per statusMaxAge", () => {
  it.effect("a client that polls the status reads the ledger once per statusMaxAge", () =>
    Effect.gen(function*() {
      const { ledger, reads } = yield* countingLedger
      const engine = yield* engineOver(ledger, { statusMaxAge: "1 second" }, reads)
      for (let poll = 0; poll < 50; poll++) yield* engine.status()
      assert.strictEqual(yield* Ref.get(reads), 1)
      yield* TestClock.adjust("999 millis")
      yield* engine.status()
      assert.strictEqual(yield* Ref.get(reads), 1)
      yield* TestClock.adjust("1 millis")
      yield* engine.status()
      assert.strictEqual(yield* Ref.get(reads), 2)
    }).pipe(Effect.provide(stack().layer)))

  it.effect("the same budgets give the same answer, worked out once; a new read gives a new one", () =>
    Effect.gen(function*() {
      const { ledger } = yield* countingLedger
      const engine = yield* engineOver(ledger, { statusMaxAge: "1 second" })
      const first = yield* engine.status()
      // a caller may keep what it made of an answer (the sidecar its encoding) while it is the same
      assert.strictEqual(yield* engine.status(), first)
      yield* TestClock.adjust("1 second")
      const reread = yield* engine.status()
      assert.notStrictEqual(reread, first)
      assert.deepStrictEqual(reread, first)
      yield* evaluateTrain(engine)
      const charged = yield* engine.status()
      assert.notStrictEqual(charged, reread)
      assert.deepStrictEqual(charged.find((entry) => entry.split === "train")!.spent, { runs: 1, samples: 2 })
    }).pipe(Effect.provide(stack().layer)))

  it.effect("the engine's own charge shows in the next status at once", () =>
    Effect.gen(function*() {
      const { ledger } = yield* countingLedger
      const engine = yield* engineOver(ledger, { statusMaxAge: "1 hour" })
      assert.deepStrictEqual(yield* trainSpent(engine), { runs: 0, samples: 0 })
      yield* evaluateTrain(engine)
      assert.deepStrictEqual(yield* trainSpent(engine), { runs: 1, samples: 2 })
      yield* evaluateTrain(engine)
      assert.deepStrictEqual(yield* trainSpent(engine), { runs: 2, samples: 4 })
    }).pipe(Effect.provide(stack().layer)))

  it.effect("a charge made by another process sharing the store shows within statusMaxAge", () =>
    Effect.gen(function*() {
      const ledger = yield* Ledger.Ledger
      const polled = yield* engineOver(ledger, { statusMaxAge: "200 millis" })
      const other = yield* engineOver(ledger)
      assert.deepStrictEqual(yield* trainSpent(polled), { runs: 0, samples: 0 })
      yield* evaluateTrain(other)
      // the budgets read before the other engine's charge are still young enough to be shown
      assert.deepStrictEqual(yield* trainSpent(polled), { runs: 0, samples: 0 })
      yield* TestClock.adjust("200 millis")
      assert.deepStrictEqual(yield* trainSpent(polled), { runs: 1, samples: 2 })
    }).pipe(Effect.provide(stack().layer)))

  it.effect("budgets read while the engine charged are not shown after the charge", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const reading = yield* Deferred.make<void>()
      const { afterRead, ledger, reads } = yield* countingLedger
      const engine = yield* engineOver(ledger, { statusMaxAge: "1 hour" }, reads)
      yield* Ref.set(afterRead, Effect.zipRight(Deferred.succeed(reading, undefined), Deferred.await(gate)))
      // a status reads the budgets before the charge, and answers only after the charge has ended
      const early = yield* Effect.fork(trainSpent(engine))
      yield* Deferred.await(reading)
      yield* Ref.set(afterRead, Effect.void)
      yield* evaluateTrain(engine)
      yield* Deferred.succeed(gate, undefined)
      assert.deepStrictEqual(yield* Fiber.join(early), { runs: 0, samples: 0 })
      assert.deepStrictEqual(yield* trainSpent(engine), { runs: 1, samples: 2 })
      assert.strictEqual(yield* Ref.get(reads), 2)
    }).pipe(Effect.provide(stack().layer)))

  it.effect("a charge that fails also ends the budgets read before it", () =>
    Effect.gen(function*() {
      const { ledger, reads } = yield* countingLedger
      const engine = yield* engineOver(ledger, { statusMaxAge: "1 hour" }, reads)
      yield* engine.status()
      // train's per-run cap is 5 samples: refused at the ledger, after the budgets were read
      const refused = yield* expectFailure(
        engine.evaluate({ datasetId: "qa", split: "train", candidate, numSamples: 6 })
      )
      assert.strictEqual(refused._tag, "BudgetExhausted")
      yield* engine.status()
      assert.strictEqual(yield* Ref.get(reads), 2)
    }).pipe(
      Effect.provide(
        stack({ budgets: [{ datasetId: "qa", split: "train", runs: 10, samples: 100, maxSamplesPerRun: 5 }] }).layer
      )
    ))

  it.effect("statusMaxAge 0 reads the ledger for every status", () =>
    Effect.gen(function*() {
      const { ledger, reads } = yield* countingLedger
      const engine = yield* engineOver(ledger, { statusMaxAge: 0 }, reads)
      for (let poll = 0; poll < 5; poll++) yield* engine.status()
      assert.strictEqual(yield* Ref.get(reads), 5)
    }).pipe(Effect.provide(stack().layer)))

  it.effect("a statusMaxAge that is not a finite duration is a ConfigError naming it", () =>
    Effect.gen(function*() {
      // a configuration written in JavaScript may hold anything
      for (const statusMaxAge of ["soon", Number.POSITIVE_INFINITY, "Infinity"] as ReadonlyArray<unknown>) {
        const options = { statusMaxAge } as Engine.EngineOptions
        const error = yield* expectFailure(engineOver(yield* Ledger.Ledger, options))
        assert.strictEqual(error._tag, "ConfigError")
        assert.match(error.message, /^statusMaxAge must be a finite duration .*, got /)
      }
    }).pipe(Effect.provide(stack().layer)))
})
