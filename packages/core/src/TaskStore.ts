/**
 * Where runs and their per-sample records live. `putSample` upserts by `(runId, sampleId)` and is
 * atomic: a reader sees the old record or the new one, never a torn one.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { StoreError } from "./HoldoutError.js"
import type { RunRecord, RunUpdate, SampleRecord } from "./Model.js"

/**
 * The run and sample store.
 *
 * @since 0.1.0
 * @category tags
 */
export class TaskStore extends Context.Tag("@holdout/core/TaskStore")<TaskStore, {
  /** Stores a new run; a run with the same id already stored is a `StoreError` (op `createRun`). */
  readonly createRun: (run: RunRecord) => Effect.Effect<void, StoreError>
  readonly getRun: (runId: string) => Effect.Effect<Option.Option<RunRecord>, StoreError>
  /** Changes the mutable fields of a stored run and returns it; an unknown run is a `StoreError`. */
  readonly updateRun: (runId: string, update: RunUpdate) => Effect.Effect<RunRecord, StoreError>
  /** Every run, oldest first. */
  readonly listRuns: () => Effect.Effect<ReadonlyArray<RunRecord>, StoreError>
  readonly putSample: (sample: SampleRecord) => Effect.Effect<void, StoreError>
  readonly getSample: (runId: string, sampleId: number) => Effect.Effect<Option.Option<SampleRecord>, StoreError>
  /** The samples of a run, by ascending sample id. */
  readonly listSamples: (runId: string) => Effect.Effect<ReadonlyArray<SampleRecord>, StoreError>
  /**
   * Stores `value` under `key` unless a value is stored there already, and returns the stored one:
   * the first writer wins, also across processes sharing the store. For the store's own state
   * (the secret of the `non_viewable` blocks); values are never changed or removed.
   */
  readonly putMetaIfAbsent: (key: string, value: string) => Effect.Effect<string, StoreError>
}>() {}

/**
 * The error for a second run with an existing id.
 *
 * @since 0.1.0
 * @category errors
 */
export const runExists = (runId: string): StoreError =>
  new StoreError({ op: "createRun", message: `A run with id "${runId}" is already stored; run ids are unique.` })

/**
 * The error for an update of a run that is not stored.
 *
 * @since 0.1.0
 * @category errors
 */
export const runNotFound = (runId: string): StoreError =>
  new StoreError({ op: "updateRun", message: `No run with id "${runId}" is stored; create it first.` })

/**
 * Applies an update to a run record, leaving fields the update does not set unchanged.
 *
 * @since 0.1.0
 * @category combinators
 */
export const applyUpdate = (run: RunRecord, update: RunUpdate): RunRecord => {
  const next: { -readonly [K in keyof RunRecord]: RunRecord[K] } = { ...run }
  if (update.status !== undefined) next.status = update.status
  if (update.finishedAt !== undefined) next.finishedAt = update.finishedAt
  if (update.metrics !== undefined) next.metrics = update.metrics
  return next
}

/**
 * The store kept in memory.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory = (): TaskStore["Type"] => {
  const runs = new Map<string, RunRecord>()
  const samples = new Map<string, Map<number, SampleRecord>>()
  const meta = new Map<string, string>()
  return {
    createRun: (run) =>
      Effect.suspend(() => {
        if (runs.has(run.runId)) return Effect.fail(runExists(run.runId))
        runs.set(run.runId, run)
        return Effect.void
      }),
    getRun: (runId) => Effect.sync(() => Option.fromNullable(runs.get(runId))),
    updateRun: (runId, update) =>
      Effect.suspend(() => {
        const run = runs.get(runId)
        if (run === undefined) return Effect.fail(runNotFound(runId))
        const next = applyUpdate(run, update)
        runs.set(runId, next)
        return Effect.succeed(next)
      }),
    listRuns: () => Effect.sync(() => Array.from(runs.values())),
    putSample: (sample) =>
      Effect.sync(() => {
        let byId = samples.get(sample.runId)
        if (byId === undefined) {
          byId = new Map()
          samples.set(sample.runId, byId)
        }
        byId.set(sample.sampleId, sample)
      }),
    getSample: (runId, sampleId) => Effect.sync(() => Option.fromNullable(samples.get(runId)?.get(sampleId))),
    listSamples: (runId) =>
      Effect.sync(() => {
        const byId = samples.get(runId)
        return byId === undefined ? [] : Array.from(byId.values()).sort((a, b) => a.sampleId - b.sampleId)
      }),
    putMetaIfAbsent: (key, value) =>
      Effect.sync(() => {
        const stored = meta.get(key)
        if (stored !== undefined) return stored
        meta.set(key, value)
        return value
      })
  }
}

/**
 * The in-memory store.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<TaskStore> = Layer.sync(TaskStore, makeMemory)
