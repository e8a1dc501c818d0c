/**
 * The conformance suite every `Ledger` backend runs: check order, atomicity, idempotency,
 * concurrency, and (for backends that persist) what survives a reopen.
 *
 * @since 0.1.0
 */
import { expectFailure } from "./Assertions.js"
import { assert, describe, it } from "@effect/vitest"
import { Ledger, type Model } from "@holdout/core"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import type * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"

/**
 * Opens a ledger with the given limits at one storage location. Opening the same location again
 * is a reopen.
 *
 * @since 0.1.0
 * @category models
 */
export type OpenLedger = (budgets: ReadonlyArray<Model.SplitBudget>) => Layer.Layer<Ledger.Ledger, unknown>

/**
 * What a backend gives the suite.
 *
 * @since 0.1.0
 * @category models
 */
export interface LedgerBackend {
  /** A fresh, empty storage location for one test; released with the scope. */
  readonly makeLocation: Effect.Effect<OpenLedger, unknown, Scope.Scope>
  /** Whether what was spent survives closing and reopening a location. */
  readonly persistent: boolean
}

const key = { datasetId: "ds", split: "train" } as const
const other = { datasetId: "ds", split: "validation" } as const

let counter = 0
const uniqueId = (prefix: string) => `${prefix}-${++counter}`

const reserveOn = (ledger: Ledger.Ledger["Type"], target: Model.BudgetKey, samples: number, id = uniqueId("r")) =>
  ledger.reserve({ ...target, samples, runId: `run-${id}`, reservationId: id })

/** Uses a ledger opened at a location for the duration of `f`, then closes it. */
const using = <A, E>(
  open: OpenLedger,
  budgets: ReadonlyArray<Model.SplitBudget>,
  f: (ledger: Ledger.Ledger["Type"]) => Effect.Effect<A, E>
): Effect.Effect<A, unknown> => Effect.scoped(Effect.flatMap(Ledger.Ledger, f).pipe(Effect.provide(open(budgets))))

const spentOf = (ledger: Ledger.Ledger["Type"], target: Model.BudgetKey = key) =>
  Effect.map(ledger.get(target), (snapshot) => snapshot.spent)

/**
 * Registers the ledger conformance cases for a backend.
 *
 * @since 0.1.0
 * @category conformance
 */
export const ledgerConformance = (name: string, backend: LedgerBackend): void => {
  const withLedger = <A, E>(
    budgets: ReadonlyArray<Model.SplitBudget>,
    f: (ledger: Ledger.Ledger["Type"]) => Effect.Effect<A, E>
  ) => Effect.scoped(Effect.flatMap(backend.makeLocation, (open) => using(open, budgets, f)))

  describe(`Ledger conformance: ${name}`, () => {
    it.effect("reserve debits one run and the samples, and journals the reservation", () =>
      withLedger([{ ...key, runs: 3, samples: 10, maxSamplesPerRun: 5 }], (ledger) =>
        Effect.gen(function*() {
          const reservation = yield* ledger.reserve({ ...key, samples: 4, runId: "run-1", reservationId: "res-1" })
          assert.deepInclude(reservation, { id: "res-1", datasetId: "ds", split: "train", samples: 4, runId: "run-1" })
          assert.isNumber(reservation.at)
          const snapshot = yield* ledger.get(key)
          assert.deepStrictEqual(snapshot, {
            datasetId: "ds",
            split: "train",
            limits: { runs: 3, samples: 10, maxSamplesPerRun: 5 },
            spent: { runs: 1, samples: 4 },
            remaining: { runs: 2, samples: 6 }
          })
          assert.deepStrictEqual(yield* ledger.reservations(), [reservation])
        })))

    it.effect("an unbudgeted key is SplitNotBudgeted for reserve, check and get", () =>
      withLedger([{ ...key, runs: 3 }], (ledger) =>
        Effect.gen(function*() {
          const missing = { datasetId: "ds", split: "test" }
          assert.strictEqual((yield* expectFailure(reserveOn(ledger, missing, 1)))._tag, "SplitNotBudgeted")
          assert.strictEqual((yield* expectFailure(ledger.check(missing, 1)))._tag, "SplitNotBudgeted")
          assert.strictEqual((yield* expectFailure(ledger.get(missing)))._tag, "SplitNotBudgeted")
          // the key is the pair: the same split of another dataset is not budgeted
          const otherDataset = { datasetId: "other", split: "train" }
          assert.strictEqual((yield* expectFailure(reserveOn(ledger, otherDataset, 1)))._tag, "SplitNotBudgeted")
          assert.strictEqual((yield* ledger.reservations()).length, 0)
        })))

    it.effect("checks runs, then samples, then the per-run cap; a refusal changes nothing", () =>
      Effect.gen(function*() {
        // everything wrong at once: runs are reported
        yield* withLedger([{ ...key, runs: 0, samples: 1, maxSamplesPerRun: 1 }], (ledger) =>
          Effect.gen(function*() {
            const error = yield* expectFailure(reserveOn(ledger, key, 5))
            assert.deepInclude(error, { _tag: "BudgetExhausted", reason: "runs" })
          }))
        // runs left, samples short and over the cap: samples are reported
        yield* withLedger([{ ...key, runs: 5, samples: 3, maxSamplesPerRun: 2 }], (ledger) =>
          Effect.gen(function*() {
            const error = yield* expectFailure(reserveOn(ledger, key, 4))
            assert.deepInclude(error, { _tag: "BudgetExhausted", reason: "samples", requested: 4, remaining: 3 })
            const cap = yield* expectFailure(reserveOn(ledger, key, 3))
            assert.deepInclude(cap, { _tag: "BudgetExhausted", reason: "per_run_cap", requested: 3, remaining: 2 })
            assert.deepStrictEqual(yield* spentOf(ledger), { runs: 0, samples: 0 })
            assert.strictEqual((yield* ledger.reservations()).length, 0)
            // the cap itself is allowed
            yield* reserveOn(ledger, key, 2)
            assert.deepStrictEqual(yield* spentOf(ledger), { runs: 1, samples: 2 })
          }))
      }))

    it.effect("reaching exactly zero is allowed; the next request is refused", () =>
      withLedger([{ ...key, runs: 2, samples: 5 }], (ledger) =>
        Effect.gen(function*() {
          yield* reserveOn(ledger, key, 5)
          assert.deepStrictEqual((yield* ledger.get(key)).remaining, { runs: 1, samples: 0 })
          const error = yield* expectFailure(reserveOn(ledger, key, 1))
          assert.deepInclude(error, { _tag: "BudgetExhausted", reason: "samples", remaining: 0 })
          yield* reserveOn(ledger, key, 0)
          const noRuns = yield* expectFailure(reserveOn(ledger, key, 0))
          assert.deepInclude(noRuns, { _tag: "BudgetExhausted", reason: "runs", remaining: 0 })
          assert.deepStrictEqual(yield* spentOf(ledger), { runs: 2, samples: 5 })
        })))

    it.effect("a negative or fractional sample count is a defect and charges nothing", () =>
      withLedger([{ ...key, runs: 5, samples: 10 }], (ledger) =>
        Effect.gen(function*() {
          for (const samples of [-1, 1.5, Number.NaN]) {
            const exit = yield* Effect.exit(reserveOn(ledger, key, samples))
            assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause), `samples ${samples} was accepted`)
          }
          assert.deepStrictEqual(yield* spentOf(ledger), { runs: 0, samples: 0 })
          assert.strictEqual((yield* ledger.reservations()).length, 0)
        })))

    it.effect("an absent limit is unlimited (null)", () =>
      withLedger([{ ...key, runs: 2 }, { ...other, samples: 10 }], (ledger) =>
        Effect.gen(function*() {
          yield* reserveOn(ledger, key, 1_000_000)
          const snapshot = yield* ledger.get(key)
          assert.deepStrictEqual(snapshot.limits, { runs: 2, samples: null, maxSamplesPerRun: null })
          assert.deepStrictEqual(snapshot.remaining, { runs: 1, samples: null })
          for (let index = 0; index < 10; index++) yield* reserveOn(ledger, other, 1)
          assert.deepStrictEqual((yield* ledger.get(other)).remaining, { runs: null, samples: 0 })
        })))

    it.effect("a repeated reservationId returns the first reservation and charges nothing", () =>
      withLedger([{ ...key, runs: 5, samples: 100 }], (ledger) =>
        Effect.gen(function*() {
          const first = yield* ledger.reserve({ ...key, samples: 4, runId: "run-a", reservationId: "same" })
          const again = yield* ledger.reserve({ ...key, samples: 4, runId: "run-a", reservationId: "same" })
          const different = yield* ledger.reserve({ ...key, samples: 50, runId: "run-b", reservationId: "same" })
          assert.deepStrictEqual(again, first)
          assert.deepStrictEqual(different, first)
          assert.deepStrictEqual(yield* spentOf(ledger), { runs: 1, samples: 4 })
          assert.strictEqual((yield* ledger.reservations()).length, 1)
        })))

    it.effect("a repeated reservationId is answered even when the budget is now exhausted", () =>
      withLedger([{ ...key, runs: 1 }], (ledger) =>
        Effect.gen(function*() {
          const first = yield* ledger.reserve({ ...key, samples: 1, runId: "run-a", reservationId: "only" })
          assert.deepStrictEqual(yield* ledger.reserve({ ...key, samples: 1, runId: "run-a", reservationId: "only" }), first)
        })))

    it.effect("check answers like reserve and debits nothing", () =>
      withLedger([{ ...key, runs: 1, samples: 3, maxSamplesPerRun: 2 }], (ledger) =>
        Effect.gen(function*() {
          const snapshot = yield* ledger.check(key, 2)
          assert.deepStrictEqual(snapshot.spent, { runs: 0, samples: 0 })
          assert.deepInclude(yield* expectFailure(ledger.check(key, 3)), { reason: "per_run_cap" })
          assert.deepInclude(yield* expectFailure(ledger.check(key, 4)), { reason: "samples" })
          yield* reserveOn(ledger, key, 2)
          assert.deepInclude(yield* expectFailure(ledger.check(key, 1)), { reason: "runs" })
          assert.deepStrictEqual(yield* spentOf(ledger), { runs: 1, samples: 2 })
        })))

    it.effect("status lists every budgeted split in configured order; reservations filter by key", () =>
      withLedger(
        [{ datasetId: "z", split: "b", runs: 9 }, { ...key, runs: 9 }, { datasetId: "a", split: "a", runs: 9 }],
        (ledger) =>
          Effect.gen(function*() {
            assert.deepStrictEqual((yield* ledger.status()).map((entry) => `${entry.datasetId}/${entry.split}`), [
              "z/b",
              "ds/train",
              "a/a"
            ])
            const first = yield* reserveOn(ledger, key, 1, "first")
            const second = yield* reserveOn(ledger, { datasetId: "a", split: "a" }, 2, "second")
            const third = yield* reserveOn(ledger, key, 3, "third")
            assert.deepStrictEqual(yield* ledger.reservations(), [first, second, third])
            assert.deepStrictEqual(yield* ledger.reservations(key), [first, third])
            assert.deepStrictEqual(yield* ledger.reservations({ datasetId: "z", split: "b" }), [])
          })
      ))

    it.effect("a budget with neither runs nor samples, or a key given twice, is a ConfigError", () =>
      Effect.scoped(Effect.gen(function*() {
        const open = yield* backend.makeLocation
        for (
          const budgets of [
            [{ ...key }],
            [{ ...key, maxSamplesPerRun: 3 }],
            [{ ...key, runs: 1 }, { ...key, samples: 4 }],
            [{ ...key, runs: -1 }]
          ]
        ) {
          const error = yield* expectFailure(using(open, budgets, () => Effect.void))
          assert.strictEqual((error as { readonly _tag?: string })._tag, "ConfigError")
        }
      })))

    it.effect("1,000 concurrent reserves against runs: 100 → exactly 100 succeed", () =>
      withLedger([{ ...key, runs: 100 }], (ledger) =>
        Effect.gen(function*() {
          const outcomes = yield* Effect.forEach(
            Array.from({ length: 1000 }, (_, index) => index),
            (index) => Effect.either(reserveOn(ledger, key, 1, `c-${index}`)),
            { concurrency: "unbounded" }
          )
          const accepted = outcomes.filter((outcome) => outcome._tag === "Right")
          const refused = outcomes.filter((outcome) => outcome._tag === "Left")
          assert.strictEqual(accepted.length, 100)
          assert.isTrue(refused.every((outcome) => outcome.left._tag === "BudgetExhausted"))
          assert.deepStrictEqual(yield* spentOf(ledger), { runs: 100, samples: 100 })
          assert.strictEqual((yield* ledger.reservations()).length, 100)
        })))

    it.effect("concurrent reserves never overspend a sample budget", () =>
      withLedger([{ ...key, samples: 500 }], (ledger) =>
        Effect.gen(function*() {
          const outcomes = yield* Effect.forEach(
            Array.from({ length: 400 }, (_, index) => index),
            (index) => Effect.either(reserveOn(ledger, key, 1 + (index % 3), `s-${index}`)),
            { concurrency: "unbounded" }
          )
          const accepted = outcomes.flatMap((outcome) => outcome._tag === "Right" ? [outcome.right.samples] : [])
          const total = accepted.reduce((sum, samples) => sum + samples, 0)
          assert.isAtMost(total, 500)
          assert.isAtLeast(total, 498) // refusals only happen once fewer than 3 samples remain
          assert.deepStrictEqual(yield* spentOf(ledger), { runs: accepted.length, samples: total })
        })))

    it.effect("property: any sequence of reserves matches the reference rules exactly", () =>
      Effect.promise(() =>
        FastCheck.assert(
          FastCheck.asyncProperty(
            FastCheck.record({
              runs: FastCheck.option(FastCheck.nat(12), { nil: undefined }),
              samples: FastCheck.option(FastCheck.nat(60), { nil: undefined }),
              maxSamplesPerRun: FastCheck.option(FastCheck.integer({ min: 1, max: 15 }), { nil: undefined })
            }).filter((limits) => limits.runs !== undefined || limits.samples !== undefined),
            FastCheck.array(FastCheck.nat(20), { maxLength: 25 }),
            (limits, requests) =>
              Effect.runPromise(
                withLedger([{ ...key, ...definedOnly(limits) }], (ledger) =>
                  Effect.gen(function*() {
                    let runs = 0
                    let samples = 0
                    for (const requested of requests) {
                      const expected = Ledger.decide({ ...key, ...definedOnly(limits) }, { runs, samples }, requested)
                      const outcome = yield* Effect.either(reserveOn(ledger, key, requested))
                      if (expected === undefined) {
                        assert.strictEqual(outcome._tag, "Right")
                        runs += 1
                        samples += requested
                      } else {
                        assert.strictEqual(outcome._tag, "Left")
                        if (outcome._tag === "Left") assert.deepInclude(outcome.left, { reason: expected.reason })
                      }
                    }
                    assert.deepStrictEqual(yield* spentOf(ledger), { runs, samples })
                    if (limits.runs !== undefined) assert.isAtMost(runs, limits.runs)
                    if (limits.samples !== undefined) assert.isAtMost(samples, limits.samples)
                  }))
              )
          ),
          { numRuns: 60 }
        )
      ))

    it.effect("property: concurrent interleavings never overspend and spent equals what was accepted", () =>
      Effect.promise(() =>
        FastCheck.assert(
          FastCheck.asyncProperty(
            FastCheck.nat(20),
            FastCheck.nat(80),
            FastCheck.array(FastCheck.integer({ min: 0, max: 12 }), { minLength: 1, maxLength: 60 }),
            (runLimit, sampleLimit, requests) =>
              Effect.runPromise(
                withLedger([{ ...key, runs: runLimit, samples: sampleLimit }], (ledger) =>
                  Effect.gen(function*() {
                    const outcomes = yield* Effect.forEach(
                      requests,
                      (requested) => Effect.either(reserveOn(ledger, key, requested)),
                      { concurrency: "unbounded" }
                    )
                    const accepted = outcomes.flatMap((outcome) => outcome._tag === "Right" ? [outcome.right] : [])
                    const total = accepted.reduce((sum, reservation) => sum + reservation.samples, 0)
                    assert.isAtMost(accepted.length, runLimit)
                    assert.isAtMost(total, sampleLimit)
                    assert.deepStrictEqual(yield* spentOf(ledger), { runs: accepted.length, samples: total })
                    const journal = yield* ledger.reservations(key)
                    assert.sameMembers(journal.map((reservation) => reservation.id), accepted.map((r) => r.id))
                  }))
              )
          ),
          { numRuns: 40 }
        )
      ))

    if (backend.persistent) {
      describe("persistence", () => {
        it.effect("reopening keeps what was spent and the journal", () =>
          Effect.scoped(Effect.gen(function*() {
            const open = yield* backend.makeLocation
            const budgets = [{ ...key, runs: 5, samples: 50 }]
            const journal = yield* using(open, budgets, (ledger) =>
              Effect.gen(function*() {
                yield* reserveOn(ledger, key, 7, "p1")
                yield* reserveOn(ledger, key, 3, "p2")
                return yield* ledger.reservations()
              }))
            yield* using(open, budgets, (ledger) =>
              Effect.gen(function*() {
                assert.deepStrictEqual(yield* spentOf(ledger), { runs: 2, samples: 10 })
                assert.deepStrictEqual(yield* ledger.reservations(), journal)
              }))
          })))

        it.effect("reopening with new limits gives remaining = max(0, limit - spent)", () =>
          Effect.scoped(Effect.gen(function*() {
            const open = yield* backend.makeLocation
            yield* using(open, [{ ...key, runs: 5, samples: 50 }], (ledger) =>
              Effect.all([reserveOn(ledger, key, 20), reserveOn(ledger, key, 10)]))
            yield* using(open, [{ ...key, runs: 10, samples: 100 }], (ledger) =>
              Effect.gen(function*() {
                assert.deepStrictEqual((yield* ledger.get(key)).remaining, { runs: 8, samples: 70 })
              }))
            yield* using(open, [{ ...key, runs: 1, samples: 10 }], (ledger) =>
              Effect.gen(function*() {
                const snapshot = yield* ledger.get(key)
                assert.deepStrictEqual(snapshot.remaining, { runs: 0, samples: 0 })
                assert.deepStrictEqual(snapshot.spent, { runs: 2, samples: 30 })
                assert.deepInclude(yield* expectFailure(reserveOn(ledger, key, 0)), { reason: "runs" })
              }))
          })))

        it.effect("idempotency survives a reopen", () =>
          Effect.scoped(Effect.gen(function*() {
            const open = yield* backend.makeLocation
            const budgets = [{ ...key, runs: 5 }]
            const first = yield* using(open, budgets, (ledger) => reserveOn(ledger, key, 2, "keep"))
            yield* using(open, budgets, (ledger) =>
              Effect.gen(function*() {
                assert.deepStrictEqual(yield* reserveOn(ledger, key, 2, "keep"), first)
                assert.deepStrictEqual(yield* spentOf(ledger), { runs: 1, samples: 2 })
              }))
          })))
      })
    }
  })
}

const definedOnly = (limits: {
  readonly runs: number | undefined
  readonly samples: number | undefined
  readonly maxSamplesPerRun: number | undefined
}) => ({
  ...(limits.runs === undefined ? {} : { runs: limits.runs }),
  ...(limits.samples === undefined ? {} : { samples: limits.samples }),
  ...(limits.maxSamplesPerRun === undefined ? {} : { maxSamplesPerRun: limits.maxSamplesPerRun })
})
