/**
 * The conformance suite every `Ledger` backend runs: check order, atomicity, idempotency,
 * concurrency, and (for backends that persist) what survives a reopen.
 *
 * @since 0.1.0
 */
import { assert, describe, it } from "@effect/vitest"
import { Ledger, type Model } from "@holdout/core"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import type * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { expectFailure } from "./Assertions.js"

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

/** Everything a reservation could change: every snapshot and the whole journal. */
const stateOf = (ledger: Ledger.Ledger["Type"]) =>
  Effect.all({ status: ledger.status(), journal: ledger.reservations() })

/** Runs a reservation that must be refused, checks the refusal and that the ledger did not change. */
const refused = (
  ledger: Ledger.Ledger["Type"],
  attempt: Effect.Effect<Model.Reservation, unknown>,
  expected: { readonly _tag: string } & Readonly<Record<string, unknown>>
) =>
  Effect.gen(function*() {
    const before = yield* stateOf(ledger)
    const error = yield* expectFailure(attempt)
    assert.deepInclude(error, expected)
    assert.deepStrictEqual(yield* stateOf(ledger), before, "a refused reservation changed the ledger")
  })

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
        yield* withLedger(
          [{ ...key, runs: 0, samples: 1, maxSamplesPerRun: 1 }],
          (ledger) =>
            refused(ledger, reserveOn(ledger, key, 5), { _tag: "BudgetExhausted", reason: "runs", remaining: 0 })
        )
        // runs left, samples short and over the cap: samples are reported, then the cap
        yield* withLedger(
          [{ ...key, runs: 5, samples: 3, maxSamplesPerRun: 2 }, { ...other, runs: 1 }],
          (ledger) =>
            Effect.gen(function*() {
              yield* reserveOn(ledger, other, 7) // a journal that is not empty, on another key
              yield* refused(ledger, reserveOn(ledger, key, 4), {
                _tag: "BudgetExhausted",
                reason: "samples",
                requested: 4,
                remaining: 3
              })
              yield* refused(ledger, reserveOn(ledger, key, 3), {
                _tag: "BudgetExhausted",
                reason: "per_run_cap",
                requested: 3,
                remaining: 2
              })
              assert.deepStrictEqual(yield* spentOf(ledger), { runs: 0, samples: 0 })
              // the cap itself is allowed
              yield* reserveOn(ledger, key, 2)
              assert.deepStrictEqual(yield* spentOf(ledger), { runs: 1, samples: 2 })
              // no runs left on the other key, whatever the samples
              yield* refused(ledger, reserveOn(ledger, other, 0), { _tag: "BudgetExhausted", reason: "runs" })
              // an unbudgeted key changes nothing either
              yield* refused(ledger, reserveOn(ledger, { datasetId: "ds", split: "test" }, 1), {
                _tag: "SplitNotBudgeted",
                datasetId: "ds",
                split: "test"
              })
            })
        )
      }))

    it.effect("a refused reservationId is not remembered: the same id may pass later elsewhere", () =>
      withLedger([{ ...key, runs: 0 }, { ...other, runs: 1 }], (ledger) =>
        Effect.gen(function*() {
          yield* refused(ledger, ledger.reserve({ ...key, samples: 1, runId: "run-x", reservationId: "x" }), {
            _tag: "BudgetExhausted",
            reason: "runs"
          })
          const reservation = yield* ledger.reserve({ ...other, samples: 1, runId: "run-x", reservationId: "x" })
          assert.deepInclude(reservation, { id: "x", split: "validation", samples: 1 })
          assert.deepStrictEqual(yield* ledger.reservations(), [reservation])
        })))

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
          assert.deepStrictEqual(again, first)
          assert.deepStrictEqual(yield* spentOf(ledger), { runs: 1, samples: 4 })
          assert.deepStrictEqual(yield* ledger.reservations(), [first])
        })))

    it.effect("a reservationId is bound to (datasetId, split, samples, runId): any other binding is IdempotencyConflict", () =>
      withLedger([{ ...key, runs: 5, samples: 100 }, { ...other, runs: 5 }], (ledger) =>
        Effect.gen(function*() {
          const first = yield* ledger.reserve({ ...key, samples: 4, runId: "run-a", reservationId: "bound" })
          for (
            const rebound of [
              { ...other, samples: 4, runId: "run-a" },
              { ...key, samples: 5, runId: "run-a" },
              { ...key, samples: 4, runId: "run-b" },
              { datasetId: "elsewhere", split: "train", samples: 4, runId: "run-a" }
            ]
          ) {
            yield* refused(ledger, ledger.reserve({ ...rebound, reservationId: "bound" }), {
              _tag: "IdempotencyConflict"
            })
          }
          // the error names nothing of the first request
          const error = yield* expectFailure(
            ledger.reserve({ ...other, samples: 4, runId: "run-a", reservationId: "bound" })
          )
          assert.notInclude(error.message, "train")
          assert.notInclude(error.message, "run-a")
          assert.deepStrictEqual(
            yield* ledger.reserve({ ...key, samples: 4, runId: "run-a", reservationId: "bound" }),
            first
          )
        })))

    it.effect("concurrent reservations of one id with different bindings: one binding is charged, the others conflict", () =>
      withLedger(
        [{ ...key, runs: 50, samples: 500 }, { ...other, runs: 50, samples: 500 }],
        (ledger) =>
          Effect.gen(function*() {
            const outcomes = yield* Effect.forEach(
              Array.from({ length: 200 }, (_, index) => index),
              (index) =>
                Effect.either(ledger.reserve({
                  ...(index % 2 === 0 ? key : other),
                  samples: 1 + (index % 3),
                  runId: "run-race",
                  reservationId: "race"
                })),
              { concurrency: "unbounded" }
            )
            const won = outcomes.flatMap((outcome) => outcome._tag === "Right" ? [outcome.right] : [])
            const lost = outcomes.flatMap((outcome) => outcome._tag === "Left" ? [outcome.left] : [])
            assert.isAbove(won.length, 0)
            for (const reservation of won) assert.deepStrictEqual(reservation, won[0])
            for (const error of lost) assert.strictEqual(error._tag, "IdempotencyConflict")
            const journal = yield* ledger.reservations()
            assert.deepStrictEqual(journal, [won[0]])
            const spentKey = yield* spentOf(ledger, key)
            const spentOther = yield* spentOf(ledger, other)
            assert.strictEqual(spentKey.runs + spentOther.runs, 1)
          })
      ))

    it.effect("concurrent repeats of one reservationId charge once and all get the same reservation", () =>
      withLedger([{ ...key, runs: 50, samples: 500 }], (ledger) =>
        Effect.gen(function*() {
          const outcomes = yield* Effect.forEach(
            Array.from({ length: 200 }, (_, index) => index),
            () => ledger.reserve({ ...key, samples: 3, runId: "run-once", reservationId: "once" }),
            { concurrency: "unbounded" }
          )
          const first = outcomes[0]!
          for (const outcome of outcomes) assert.deepStrictEqual(outcome, first)
          assert.deepStrictEqual(yield* spentOf(ledger), { runs: 1, samples: first.samples })
          assert.deepStrictEqual(yield* ledger.reservations(), [first])
        })))

    it.effect("a repeated reservationId is answered even when the budget is now exhausted", () =>
      withLedger([{ ...key, runs: 1 }], (ledger) =>
        Effect.gen(function*() {
          const first = yield* ledger.reserve({ ...key, samples: 1, runId: "run-a", reservationId: "only" })
          assert.deepStrictEqual(
            yield* ledger.reserve({ ...key, samples: 1, runId: "run-a", reservationId: "only" }),
            first
          )
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
          const accepted = outcomes.flatMap((outcome) => outcome._tag === "Right" ? [outcome.right] : [])
          const refusals = outcomes.flatMap((outcome) => outcome._tag === "Left" ? [outcome.left] : [])
          assert.strictEqual(accepted.length, 100)
          assert.strictEqual(refusals.length, 900)
          for (const refusal of refusals) assert.deepInclude(refusal, { _tag: "BudgetExhausted", reason: "runs" })
          assert.deepStrictEqual(yield* spentOf(ledger), { runs: 100, samples: 100 })
          assert.sameMembers(
            (yield* ledger.reservations()).map((reservation) => reservation.id),
            accepted.map((reservation) => reservation.id)
          )
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

    it.effect.prop(
      "property: any sequence of reserves is decided exactly by the rules",
      { limits: arbitraryLimits, requests: FastCheck.array(FastCheck.nat(20), { maxLength: 25 }) },
      ({ limits, requests }) =>
        withLedger([{ ...key, ...limits }], (ledger) =>
          Effect.gen(function*() {
            const spent = { runs: 0, samples: 0 }
            for (const requested of requests) {
              const expected = expectedRefusal(limits, spent, requested)
              const outcome = yield* Effect.either(reserveOn(ledger, key, requested))
              if (expected === undefined) {
                assert.strictEqual(outcome._tag, "Right", `${requested} samples refused with ${JSON.stringify(spent)}`)
                spent.runs += 1
                spent.samples += requested
              } else if (outcome._tag === "Left") {
                assert.deepInclude(outcome.left, { _tag: "BudgetExhausted", reason: expected })
              } else {
                assert.fail(`${requested} samples accepted with ${JSON.stringify(spent)}; expected "${expected}"`)
              }
            }
            const snapshot = yield* ledger.get(key)
            assert.deepStrictEqual(snapshot.spent, spent)
            assert.deepStrictEqual(snapshot.remaining, {
              runs: limits.runs === undefined ? null : limits.runs - spent.runs,
              samples: limits.samples === undefined ? null : limits.samples - spent.samples
            })
            assert.strictEqual((yield* ledger.reservations(key)).length, spent.runs)
          })),
      { fastCheck: { numRuns: 60 } }
    )

    it.effect.prop(
      "property: concurrent reserves never overspend; spent is the sum of the accepted ones",
      {
        limits: arbitraryLimits,
        requests: FastCheck.array(FastCheck.integer({ min: 0, max: 12 }), { minLength: 1, maxLength: 60 })
      },
      ({ limits, requests }) =>
        withLedger([{ ...key, ...limits }], (ledger) =>
          Effect.gen(function*() {
            const outcomes = yield* Effect.forEach(
              requests,
              (requested) => Effect.either(reserveOn(ledger, key, requested)),
              { concurrency: "unbounded" }
            )
            const accepted = outcomes.flatMap((outcome) => outcome._tag === "Right" ? [outcome.right] : [])
            const total = accepted.reduce((sum, reservation) => sum + reservation.samples, 0)
            if (limits.runs !== undefined) assert.isAtMost(accepted.length, limits.runs)
            if (limits.samples !== undefined) assert.isAtMost(total, limits.samples)
            for (const reservation of accepted) {
              if (limits.maxSamplesPerRun !== undefined) assert.isAtMost(reservation.samples, limits.maxSamplesPerRun)
            }
            const snapshot = yield* ledger.get(key)
            assert.deepStrictEqual(snapshot.spent, { runs: accepted.length, samples: total })
            assert.sameMembers(
              (yield* ledger.reservations(key)).map((reservation) => reservation.id),
              accepted.map((reservation) => reservation.id)
            )
            // Every refusal is justified by the final state (spending only grows).
            for (let index = 0; index < outcomes.length; index++) {
              const outcome = outcomes[index]!
              if (outcome._tag === "Right") continue
              const requested = requests[index]!
              assert.strictEqual(outcome.left._tag, "BudgetExhausted")
              if (outcome.left._tag !== "BudgetExhausted") continue
              switch (outcome.left.reason) {
                case "runs":
                  assert.strictEqual(snapshot.remaining.runs, 0)
                  break
                case "samples":
                  assert.isBelow(snapshot.remaining.samples ?? Number.POSITIVE_INFINITY, requested)
                  break
                case "per_run_cap":
                  assert.isAbove(requested, limits.maxSamplesPerRun ?? Number.POSITIVE_INFINITY)
                  break
              }
            }
          })),
      { fastCheck: { numRuns: 40 } }
    )

    describe("reservedForFinalize", () => {
      const forVerifier = (ledger: Ledger.Ledger["Type"], samples: number, id = uniqueId("v")) =>
        ledger.reserve({ ...key, samples, runId: `run-${id}`, reservationId: id, verifier: true })

      it.effect("the optimizer stops at the reserve; the verifier spends it, past the per-run cap, never past the limit", () =>
        withLedger(
          [{ ...key, runs: 5, samples: 50, maxSamplesPerRun: 10, reservedForFinalize: { runs: 2, samples: 20 } }],
          (ledger) =>
            Effect.gen(function*() {
              const before = yield* ledger.get(key)
              assert.deepStrictEqual(before.remaining, { runs: 3, samples: 30 })
              assert.deepStrictEqual(before.reserved, { runs: 2, samples: 20 })
              for (let index = 0; index < 3; index++) yield* reserveOn(ledger, key, 10)
              yield* refused(ledger, reserveOn(ledger, key, 1), {
                _tag: "BudgetExhausted",
                reason: "runs",
                remaining: 0
              })
              assert.deepInclude(yield* expectFailure(ledger.check(key, 1)), { reason: "runs" })
              const held = yield* ledger.get(key)
              assert.deepStrictEqual(held.remaining, { runs: 0, samples: 0 })
              assert.deepStrictEqual(held.reserved, { runs: 2, samples: 20 })
              // the verifier's re-score takes more than one optimizer run may
              yield* forVerifier(ledger, 15)
              assert.deepStrictEqual((yield* ledger.get(key)).reserved, { runs: 1, samples: 5 })
              yield* refused(ledger, forVerifier(ledger, 6), {
                _tag: "BudgetExhausted",
                reason: "samples",
                requested: 6,
                remaining: 5
              })
              yield* forVerifier(ledger, 5)
              yield* refused(ledger, forVerifier(ledger, 0), { _tag: "BudgetExhausted", reason: "runs", remaining: 0 })
              const after = yield* ledger.get(key)
              assert.deepStrictEqual(after.spent, { runs: 5, samples: 50 })
              assert.deepStrictEqual(after.reserved, { runs: 0, samples: 0 })
            })
        ))

      it.effect("a sample reserve: the optimizer's samples stop short of it, unlimited runs stay unlimited", () =>
        withLedger([{ ...key, samples: 50, reservedForFinalize: { samples: 20 } }], (ledger) =>
          Effect.gen(function*() {
            yield* reserveOn(ledger, key, 25)
            yield* refused(ledger, reserveOn(ledger, key, 6), {
              _tag: "BudgetExhausted",
              reason: "samples",
              requested: 6,
              remaining: 5
            })
            yield* reserveOn(ledger, key, 5)
            yield* forVerifier(ledger, 20)
            const snapshot = yield* ledger.get(key)
            assert.deepStrictEqual(snapshot.remaining, { runs: null, samples: 0 })
            assert.deepStrictEqual(snapshot.reserved, { runs: 0, samples: 0 })
            assert.deepStrictEqual(snapshot.spent, { runs: 3, samples: 50 })
          })))

      it.effect("a split without a reserve shows none, and the verifier's charge is held to its limits", () =>
        withLedger([{ ...key, runs: 1 }], (ledger) =>
          Effect.gen(function*() {
            assert.isUndefined((yield* ledger.get(key)).reserved)
            yield* forVerifier(ledger, 1)
            yield* refused(ledger, forVerifier(ledger, 1), { _tag: "BudgetExhausted", reason: "runs" })
          })))

      it.effect("concurrent optimizer and verifier charges: the optimizer never spends the reserve, nobody the limit", () =>
        withLedger([{ ...key, runs: 20, reservedForFinalize: { runs: 5 } }], (ledger) =>
          Effect.gen(function*() {
            // the optimizer's first, as a search ahead of its finalize would: then the verifier's
            const requests = Array.from({ length: 80 }, (_, index) => index >= 60)
            const outcomes = yield* Effect.forEach(
              requests,
              (verifier, index) =>
                Effect.either(
                  verifier ? forVerifier(ledger, 1, `cv-${index}`) : reserveOn(ledger, key, 1, `co-${index}`)
                ),
              { concurrency: "unbounded" }
            )
            const accepted = (verifier: boolean) =>
              outcomes.filter((outcome, index) => outcome._tag === "Right" && requests[index] === verifier).length
            const refusedOf = (verifier: boolean) =>
              outcomes.filter((outcome, index) => outcome._tag === "Left" && requests[index] === verifier).length
            const total = accepted(true) + accepted(false)
            assert.isAtMost(accepted(false), 15)
            assert.isAtMost(total, 20)
            // a refusal is justified by the final state: the optimizer's at 15, the verifier's at 20
            if (refusedOf(false) > 0) assert.isAtLeast(total, 15)
            if (refusedOf(true) > 0) assert.strictEqual(total, 20)
            assert.deepStrictEqual(yield* spentOf(ledger), { runs: total, samples: total })
            assert.strictEqual((yield* ledger.reservations(key)).length, total)
          })))

      it.effect("a reserve over its budget, on an unlimited one, or of nothing, is a ConfigError", () =>
        Effect.scoped(Effect.gen(function*() {
          const open = yield* backend.makeLocation
          for (
            const budgets of [
              [{ ...key, runs: 3, reservedForFinalize: { runs: 4 } }],
              [{ ...key, runs: 3, samples: 10, reservedForFinalize: { runs: 1, samples: 11 } }],
              [{ ...key, runs: 3, reservedForFinalize: { samples: 1 } }],
              [{ ...key, runs: 3, reservedForFinalize: {} }]
            ]
          ) {
            const error = yield* expectFailure(using(open, budgets, () => Effect.void))
            assert.strictEqual((error as { readonly _tag?: string })._tag, "ConfigError")
          }
          // the whole budget may be reserved
          yield* using(
            open,
            [{ ...key, runs: 3, reservedForFinalize: { runs: 3 } }],
            (ledger) =>
              Effect.gen(function*() {
                assert.deepStrictEqual((yield* ledger.get(key)).remaining, { runs: 0, samples: null })
              })
          )
        })))

      it.effect.prop(
        "property: any sequence of optimizer and verifier charges is decided exactly by the rules",
        {
          limits: arbitraryLimits,
          reserve: FastCheck.record({ runs: FastCheck.nat(12), samples: FastCheck.nat(60) }),
          requests: FastCheck.array(FastCheck.tuple(FastCheck.nat(20), FastCheck.boolean()), { maxLength: 25 })
        },
        ({ limits, requests, reserve }) => {
          // a reserve within each limit that is set
          const reservedForFinalize = {
            ...(limits.runs === undefined ? {} : { runs: Math.min(reserve.runs, limits.runs) }),
            ...(limits.samples === undefined ? {} : { samples: Math.min(reserve.samples, limits.samples) })
          }
          return withLedger([{ ...key, ...limits, reservedForFinalize }], (ledger) =>
            Effect.gen(function*() {
              const spent = { runs: 0, samples: 0 }
              for (const [requested, verifier] of requests) {
                // what the charge may spend: the optimizer's leaves the reserve (the verifier's spending
                // may already have eaten into the optimizer's part: nothing of it is then left)
                const held = verifier ? {} : reservedForFinalize
                const expected = expectedRefusal(
                  {
                    ...(limits.runs === undefined ? {} : { runs: limits.runs - (held.runs ?? 0) }),
                    ...(limits.samples === undefined ? {} : { samples: limits.samples - (held.samples ?? 0) }),
                    ...(limits.maxSamplesPerRun === undefined || verifier ? {} : {
                      maxSamplesPerRun: limits.maxSamplesPerRun
                    })
                  },
                  spent,
                  requested
                )
                const outcome = yield* Effect.either(
                  verifier ? forVerifier(ledger, requested) : reserveOn(ledger, key, requested)
                )
                if (expected === undefined) {
                  assert.strictEqual(outcome._tag, "Right", `${requested} refused with ${JSON.stringify(spent)}`)
                  spent.runs += 1
                  spent.samples += requested
                } else if (outcome._tag === "Left") {
                  assert.deepInclude(outcome.left, { _tag: "BudgetExhausted", reason: expected })
                } else {
                  assert.fail(`${requested} accepted with ${JSON.stringify(spent)}; expected "${expected}"`)
                }
              }
              const snapshot = yield* ledger.get(key)
              assert.deepStrictEqual(snapshot.spent, spent)
              const left = (limit: number | undefined, held: number | undefined, used: number) =>
                limit === undefined ? null : Math.max(0, limit - (held ?? 0) - used)
              assert.deepStrictEqual(snapshot.remaining, {
                runs: left(limits.runs, reservedForFinalize.runs, spent.runs),
                samples: left(limits.samples, reservedForFinalize.samples, spent.samples)
              })
              assert.deepStrictEqual(snapshot.reserved, {
                runs: limits.runs === undefined
                  ? 0
                  : Math.max(0, limits.runs - spent.runs) - left(limits.runs, reservedForFinalize.runs, spent.runs)!,
                samples: limits.samples === undefined
                  ? 0
                  : Math.max(0, limits.samples - spent.samples) -
                    left(limits.samples, reservedForFinalize.samples, spent.samples)!
              })
            }))
        },
        { fastCheck: { numRuns: 60 } }
      )
    })

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
            yield* using(
              open,
              [{ ...key, runs: 5, samples: 50 }],
              (ledger) => Effect.all([reserveOn(ledger, key, 20), reserveOn(ledger, key, 10)])
            )
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

interface Limits {
  readonly runs?: number
  readonly samples?: number
  readonly maxSamplesPerRun?: number
}

/** Limits of one split: any of the three may be absent (unlimited), but not both runs and samples. */
const arbitraryLimits: FastCheck.Arbitrary<Limits> = FastCheck.record(
  {
    runs: FastCheck.nat(12),
    samples: FastCheck.nat(60),
    maxSamplesPerRun: FastCheck.integer({ min: 1, max: 15 })
  },
  { requiredKeys: [] }
).filter((limits) => limits.runs !== undefined || limits.samples !== undefined)

/** The rules of DESIGN §4 written out independently of any backend: runs, then samples, then the cap. */
const expectedRefusal = (
  limits: Limits,
  spent: Ledger.Spent,
  requested: number
): "runs" | "samples" | "per_run_cap" | undefined => {
  if (limits.runs !== undefined && limits.runs - spent.runs <= 0) return "runs"
  if (limits.samples !== undefined && Math.max(0, limits.samples - spent.samples) < requested) return "samples"
  if (limits.maxSamplesPerRun !== undefined && requested > limits.maxSamplesPerRun) return "per_run_cap"
  return undefined
}
