/**
 * One stage of the local pipeline, generic over what it does: the samples that need it are cut
 * into units (one sample, or one chunk for a batch function), and each unit is attempted under the
 * run's concurrency limit (a slot of `Slots`, held for the attempt, and into the next stage when
 * that one is started at once), retried by a `Schedule` for retryable failures (`retryPolicy` of
 * `failure.ts`), turned into records and handed to the run's landing. Inference and scoring are two
 * definitions of this one stage.
 *
 * A unit holds its slot while its task functions run and for nothing else: waiting for a retry
 * happens outside it, and its records are handed to the run's landing (`landing.ts`), which stores
 * them in batches while the unit's fiber goes on, so slow commits do not hold up the task and a
 * store's commit batches are not capped by the concurrency. Samples are taken a page at a time
 * (`runPage`), so the records in hand at once are bounded by the pages in flight.
 */
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Scope from "effect/Scope"
import type { StoreError } from "../HoldoutError.js"
import type { SampleRecord } from "../Model.js"
import type { TaskStore } from "../TaskStore.js"
import { Failed, type RetryPolicy, withHistory } from "./failure.js"
import { attempt, attemptNow, type Guard, Settling } from "./invoke.js"
import { Landing } from "./landing.js"
import { Slots } from "./slots.js"
import { decodeBatch } from "./taskResult.js"
import * as Watchdog from "./watchdog.js"

/**
 * The resolved options of the pipeline (times in milliseconds; `timeoutMs` may be `Infinity`).
 *
 * @internal
 */
export interface Settings {
  readonly concurrency: number
  readonly timeoutMs: number
  readonly maxAttempts: number
  readonly baseDelayMs: number
  readonly maxDelayMs: number
  readonly isRetryable: (error: unknown) => boolean
  readonly batchSize: number
}

/**
 * A sample on its way through the stages: its row, what inference sees of it, and its record so far.
 *
 * @internal
 */
export interface Item {
  readonly sampleId: number
  readonly row: unknown
  readonly input: unknown
  record: SampleRecord | undefined
}

/**
 * The times of a unit's work, for its records.
 *
 * @internal
 */
export interface Times {
  readonly attempts: number
  readonly startedAt: number
  readonly finishedAt: number
}

/**
 * What a stage does: which samples it takes, how it calls the task, and how a result (`F`, the
 * decoded fields) becomes a record.
 *
 * @internal
 */
export interface Definition<F> {
  /** The task function, for messages: `infer`, `inferBatch`, `score` or `scoreBatch`. */
  readonly fn: string
  /** Whether `call` gets a chunk and returns one result per sample. */
  readonly batch: boolean
  readonly unitSize: number
  readonly needs: (item: Item) => boolean
  readonly call: (items: ReadonlyArray<Item>) => unknown
  readonly decode: (value: unknown, fn: string) => F
  readonly failed: (message: string, trace: string) => F
  readonly build: (item: Item, fields: F, times: Times) => SampleRecord
  /** Publishes that a record was stored (none when nobody listens). */
  readonly landed: ((record: SampleRecord) => Effect.Effect<void>) | undefined
}

/**
 * What the stages of one run share.
 *
 * @internal
 */
export interface Runner {
  readonly landing: Landing
  readonly clock: Clock.Clock
  readonly guard: Guard
  readonly slots: Slots
  /** Units a page has in hand at once: those running, and those waiting for a retry. */
  readonly width: number
  readonly retry: RetryPolicy
  /**
   * Run before a unit waits (for an attempt that answers later, or for a retry): its page starts
   * another worker meanwhile if it has units ready (`runPage`).
   */
  readonly suspending: Effect.Effect<void>
}

/**
 * The units a page may have waiting for a retry, beyond those running (each is a fiber).
 *
 * @internal
 */
export const handOff = 64

/**
 * The runner of one run, with its watchdog (stopped with the scope).
 *
 * @internal
 */
export const makeRunner = (
  settings: Settings,
  retry: RetryPolicy,
  store: TaskStore["Type"]
): Effect.Effect<Runner, never, Scope.Scope> =>
  Effect.gen(function*() {
    const watchdog = yield* Watchdog.start(settings.timeoutMs)
    const landing = new Landing(store)
    yield* landing.start
    return {
      landing,
      clock: yield* Effect.clock,
      guard: { watchdog, runtime: yield* Effect.runtime<never>() },
      slots: new Slots(settings.concurrency),
      width: settings.concurrency + handOff,
      retry,
      suspending: Effect.void
    }
  })

/**
 * One unit of work: its samples, and its attempts so far. A class with methods rather than
 * closures: a run makes one or two units a sample.
 */
class Unit<F> implements Started {
  attempts = 0
  startedAt = 0
  /** The messages of the failed attempts, once one failed. */
  earlier: Array<string> | undefined = undefined

  constructor(
    readonly runner: Runner,
    readonly stage: Definition<F>,
    readonly items: ReadonlyArray<Item>,
    readonly next: Stage | undefined
  ) {}

  /** One attempt in a slot (for retries): the slot is held for the attempt only. */
  get once(): Effect.Effect<unknown, Failed> {
    const release = this.runner.slots.release
    return Effect.zipRight(
      this.runner.slots.take,
      Effect.matchEffect(Effect.suspend(() => this.attempt()), {
        onFailure: (failure) => Effect.zipRight(release, Effect.fail(failure)),
        onSuccess: (value) => Effect.as(release, value)
      })
    )
  }

  attempt(): Effect.Effect<unknown, Failed> {
    const now = this.runner.clock.unsafeCurrentTimeMillis()
    if (this.attempts === 0) this.startedAt = now
    this.attempts++
    return attempt(() => this.stage.call(this.items), now, this.runner.guard)
  }

  /** `Effect.retry` takes over after a first failure (which it is handed to begin with). */
  retry(first: Failed): Effect.Effect<unknown, Failed> {
    const earlier = this.earlier = [first.message]
    const again = Effect.tapError(this.once, (failure) => Effect.sync(() => earlier.push(failure.message)))
    let replay = true
    return Effect.retry(
      Effect.suspend(() => {
        if (!replay) return again
        replay = false
        return Effect.fail(first)
      }),
      this.runner.retry
    )
  }

  failed(failure: Failed): Effect.Effect<ReadonlyArray<Item>, StoreError> {
    const last = withHistory(failure, this.earlier?.slice(0, -1) ?? [])
    const fields = this.stage.failed(last.message, last.trace)
    return this.land(() => fields, undefined, false)
  }

  succeeded(
    value: unknown,
    earlier?: Effect.Effect<void>,
    holding = false
  ): Effect.Effect<ReadonlyArray<Item>, StoreError> {
    const stage = this.stage
    if (!stage.batch) return this.land(() => stage.decode(value, stage.fn), earlier, holding)
    const results = decodeBatch(value, stage.fn, this.items.length)
    if (Either.isLeft(results)) {
      const fields = stage.failed(results.left, results.left)
      return this.land(() => fields, earlier, holding)
    }
    return this.land((index) => stage.decode(results.right[index], stage.fn), earlier, holding)
  }

  /**
   * Records the fields of each sample, hands the records to the store, and says they landed.
   *
   * A single sample whose next stage takes single samples goes on to it at once, in the slot of
   * its answer (`holding`: an answer of a first attempt keeps its slot until here) or in a free
   * one: when that stage answers at once, only its record is stored (one write a sample, not two;
   * what the earlier record said is published with it); otherwise this record is stored while the
   * next stage's attempt goes on.
   */
  land(
    fieldsAt: (index: number) => F,
    earlier: Effect.Effect<void> | undefined,
    holding: boolean
  ): Effect.Effect<ReadonlyArray<Item>, StoreError> {
    const { items, next, runner, stage } = this
    const times: Times = {
      attempts: this.attempts,
      startedAt: this.startedAt,
      finishedAt: runner.clock.unsafeCurrentTimeMillis()
    }
    for (let index = 0; index < items.length; index++) {
      const item = items[index]!
      item.record = stage.build(item, fieldsAt(index), times)
    }
    if (
      next !== undefined && items.length === 1 && next.needs(items[0]!) &&
      (holding || runner.slots.unsafeTryTake())
    ) {
      const unit = next.unit(runner, items)
      const first = unit.first()
      if (first instanceof Settling || first instanceof Failed) {
        return Effect.zipRight(this.store(earlier), unit.proceed(first))
      }
      return unit.succeeded(first, this.published(earlier), true)
    }
    if (holding) runner.slots.unsafeRelease()
    return this.store(earlier)
  }

  /** What says that this unit's records (as they are now) landed, after `earlier`. */
  published(earlier: Effect.Effect<void> | undefined): Effect.Effect<void> | undefined {
    const landed = this.stage.landed
    if (landed === undefined) return earlier
    const records = this.items.map((item) => item.record!)
    const own = records.length === 1
      ? Effect.suspend(() => landed(records[0]!))
      : Effect.forEach(records, landed, { discard: true })
    return earlier === undefined ? own : Effect.zipRight(earlier, own)
  }

  /**
   * Hands the records to the run's landing, which stores them and then says they landed (after
   * `earlier`); the samples go on at once.
   */
  store(earlier: Effect.Effect<void> | undefined): Effect.Effect<ReadonlyArray<Item>, StoreError> {
    const { items, runner } = this
    runner.landing.add(items.map((item) => item.record!), this.published(earlier))
    return Effect.succeed(items)
  }

  /**
   * Attempts the unit until it succeeds or may not be retried, then lands its records. The first
   * attempt is made at once in a slot; an answer that is ready lands without another step.
   */
  run(): Effect.Effect<ReadonlyArray<Item>, StoreError> {
    return Effect.flatMap(this.runner.slots.take, () => this.proceed(this.first()))
  }

  /** The first attempt, made at once in a slot the caller took: its answer, `Failed` or `Settling`. */
  first(): unknown {
    const now = this.runner.clock.unsafeCurrentTimeMillis()
    this.startedAt = now
    this.attempts = 1
    return attemptNow(() => this.stage.call(this.items), now, this.runner.guard)
  }

  /**
   * Goes on from the first attempt: a failure gives its slot back and is retried; an answer lands
   * holding the slot (`land` gives it back, or goes on in it to the next stage).
   */
  proceed(first: unknown): Effect.Effect<ReadonlyArray<Item>, StoreError> {
    const { runner } = this
    if (!(first instanceof Settling)) {
      if (first instanceof Failed) {
        runner.slots.unsafeRelease()
        return this.afterFailure(first)
      }
      return this.succeeded(first, undefined, true)
    }
    return Effect.zipRight(
      runner.suspending,
      Effect.matchEffect(Effect.onInterrupt(first.effect, () => runner.slots.release), {
        onFailure: (failure) => Effect.zipRight(runner.slots.release, this.afterFailure(failure)),
        onSuccess: (value) => this.succeeded(value, undefined, true)
      })
    )
  }

  afterFailure(first: Failed): Effect.Effect<ReadonlyArray<Item>, StoreError> {
    return Effect.zipRight(
      this.runner.suspending,
      Effect.matchEffect(this.retry(first), {
        onFailure: (failure) => this.failed(failure),
        onSuccess: (value) => this.succeeded(value)
      })
    )
  }
}

/**
 * A stage, ready to run units of the samples it needs.
 *
 * @internal
 */
export interface Stage {
  readonly unitSize: number
  readonly needs: (item: Item) => boolean
  readonly run: (runner: Runner, items: ReadonlyArray<Item>) => Effect.Effect<ReadonlyArray<Item>, StoreError>
  /** A unit of this stage, to be started by a stage before it. */
  readonly unit: (runner: Runner, items: ReadonlyArray<Item>) => Started
}

/**
 * A unit of a stage as a stage before it starts it: its first attempt is made in a slot the
 * caller took; `proceed` goes on from there, and `succeeded` lands an answer that came at once,
 * saying first what `earlier` says.
 *
 * @internal
 */
export interface Started {
  readonly first: () => unknown
  readonly proceed: (first: unknown) => Effect.Effect<ReadonlyArray<Item>, StoreError>
  readonly succeeded: (
    value: unknown,
    earlier: Effect.Effect<void> | undefined,
    holding: boolean
  ) => Effect.Effect<ReadonlyArray<Item>, StoreError>
}

/**
 * Makes a stage of its definition. With `next`, a stage of single samples whose next stage also
 * takes single samples hands each sample on to it at once (`Unit.land`).
 *
 * @internal
 */
export const make = <F>(definition: Definition<F>, next?: Stage): Stage => {
  const fused = next !== undefined && definition.unitSize === 1 && !definition.batch && next.unitSize === 1
    ? next
    : undefined
  return {
    unitSize: definition.unitSize,
    needs: definition.needs,
    run: (runner, items) => new Unit(runner, definition, items, fused).run(),
    unit: (runner, items) => new Unit(runner, definition, items, undefined)
  }
}
