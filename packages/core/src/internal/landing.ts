/**
 * Where the records of a run's units land: a unit hands its records over and goes on at once, and
 * one fiber of the run stores what was handed over with `putSamples`, batch after batch (a batch is
 * whatever arrived while the one before was being stored), then publishes what those records said.
 * So a unit's fiber never waits for the store, and a durable store commits as many records at once
 * as the pipeline makes while it commits.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { StoreError } from "../HoldoutError.js"
import type { SampleRecord } from "../Model.js"
import type { TaskStore } from "../TaskStore.js"

interface Waiter {
  readonly upTo: number
  readonly resume: (effect: Effect.Effect<void, StoreError>) => void
}

/**
 * The landing of one run.
 *
 * @internal
 */
export class Landing {
  private records: Array<SampleRecord> = []
  private said: Array<Effect.Effect<void>> = []
  /** Records handed over, and stored, since the run began. */
  private handed = 0
  private stored = 0
  private waiters: Array<Waiter> = []
  private wake: (() => void) | undefined = undefined
  private failure: StoreError | undefined = undefined

  constructor(private readonly store: TaskStore["Type"]) {}

  /** Hands records over; `say` publishes that they landed, once they are stored. */
  add(records: ReadonlyArray<SampleRecord>, say: Effect.Effect<void> | undefined): void {
    for (const record of records) this.records.push(record)
    if (say !== undefined) this.said.push(say)
    this.handed += records.length
    const wake = this.wake
    if (wake !== undefined) {
      this.wake = undefined
      wake()
    }
  }

  /** Waits until every record handed over so far is stored (or fails with what the store failed with). */
  readonly settled: Effect.Effect<void, StoreError> = Effect.suspend(() => {
    if (this.failure !== undefined) return Effect.fail(this.failure)
    const upTo = this.handed
    if (this.stored >= upTo) return Effect.void
    return Effect.async<void, StoreError>((resume) => {
      this.waiters.push({ upTo, resume })
    })
  })

  private settle(): void {
    const failure = this.failure
    const left: Array<Waiter> = []
    for (const waiter of this.waiters) {
      if (failure !== undefined) waiter.resume(Effect.fail(failure))
      else if (waiter.upTo <= this.stored) waiter.resume(Effect.void)
      else left.push(waiter)
    }
    this.waiters = left
  }

  /** Stores one batch, then publishes what it said; a store failure ends the landing. */
  private readonly next: Effect.Effect<void> = Effect.suspend(() => {
    if (this.records.length === 0) {
      return Effect.async<void>((resume) => {
        this.wake = () => resume(Effect.void)
        return Effect.sync(() => {
          this.wake = undefined
        })
      })
    }
    const batch = this.records
    const said = this.said
    this.records = []
    this.said = []
    return Effect.matchEffect(this.store.putSamples(batch), {
      onFailure: (error) =>
        Effect.sync(() => {
          this.failure = error
          this.settle()
        }),
      onSuccess: () =>
        Effect.zipRight(
          said.length === 0 ? Effect.void : Effect.forEach(said, (say) => say, { discard: true }),
          Effect.sync(() => {
            this.stored += batch.length
            this.settle()
          })
        )
    })
  })

  /** Runs the landing's fiber in the scope, until the scope closes or the store fails. */
  readonly start: Effect.Effect<void, never, Scope.Scope> = Effect.asVoid(
    Effect.forkScoped(Effect.repeat(this.next, { while: () => this.failure === undefined }))
  )
}
