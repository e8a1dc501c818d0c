/**
 * Where runs and their per-sample records live. `putSample` upserts by `(runId, sampleId)` and is
 * atomic: a reader sees the old record or the new one, never a torn one.
 *
 * @since 0.1.0
 */
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Stream from "effect/Stream"
import { StoreError } from "./HoldoutError.js"
import * as RunCodec from "./internal/runCodec.js"
import * as Metrics from "./Metrics.js"
import type { RunProgress, RunRecord, RunUpdate, SampleRecord } from "./Model.js"

/**
 * A page of a run's samples: those with ids after `after` (from the start when absent), at most
 * `limit` of them, by ascending sample id. The next page starts after the last id returned; a
 * page shorter than `limit` is the last.
 *
 * @since 0.1.0
 * @category models
 */
export interface SamplePage {
  readonly after?: number
  readonly limit: number
}

/**
 * The run and sample store. A run read back carries its `progress` (what the store holds of its
 * samples), kept as samples land, so reading a run never re-reads its samples.
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
  /**
   * Stores samples as `putSample` would one after another (a later record of the same sample
   * wins), done when all are stored: a durable store commits them together. Each record is atomic;
   * a batch that fails may have stored some of them.
   */
  readonly putSamples: (samples: ReadonlyArray<SampleRecord>) => Effect.Effect<void, StoreError>
  readonly getSample: (runId: string, sampleId: number) => Effect.Effect<Option.Option<SampleRecord>, StoreError>
  /** One page of the samples of a run, by ascending sample id (see `streamSamples` for all of them). */
  readonly listSamples: (runId: string, page: SamplePage) => Effect.Effect<ReadonlyArray<SampleRecord>, StoreError>
  /**
   * Stores `value` under `key` unless a value is stored there already, and returns the stored one:
   * the first writer wins, also across processes sharing the store. For the store's own state
   * (the secret of the `non_viewable` blocks, the verifier's answer); values are never changed or
   * removed.
   */
  readonly putMetaIfAbsent: (key: string, value: string) => Effect.Effect<string, StoreError>
  /** The value stored under `key` by `putMetaIfAbsent`, if any. */
  readonly getMeta: (key: string) => Effect.Effect<Option.Option<string>, StoreError>
}>() {}

/**
 * The page size `streamSamples` reads with unless told otherwise.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultPageSize = 1000

/**
 * The page of `limit` samples after `after` (from the first when `after` is absent).
 *
 * @since 0.1.0
 * @category constructors
 */
export const pageAfter = (after: number | undefined, limit: number): SamplePage =>
  after === undefined ? { limit } : { after, limit }

/**
 * Reads a run's samples page by page, from after `options.after` (from the first when absent), and
 * hands each page to `visit` until it answers `false` or the last page (a short one) is visited:
 * memory stays flat in the run's size, and a reader that has found what it wanted stops early.
 *
 * @since 0.1.0
 * @category combinators
 */
export const forEachPage = <E, R>(
  store: TaskStore["Type"],
  runId: string,
  visit: (page: ReadonlyArray<SampleRecord>) => Effect.Effect<boolean, E, R>,
  options: { readonly after?: number | undefined; readonly pageSize?: number | undefined } = {}
): Effect.Effect<void, StoreError | E, R> => {
  const pageSize = options.pageSize ?? defaultPageSize
  const from = (after: number | undefined): Effect.Effect<void, StoreError | E, R> =>
    Effect.flatMap(
      store.listSamples(runId, pageAfter(after, pageSize)),
      (page) =>
        Effect.flatMap(visit(page), (more) =>
          more && page.length === pageSize ? from(page[page.length - 1]!.sampleId) : Effect.void)
    )
  return from(options.after)
}

/**
 * Every sample of a run as a stream, read page by page: memory stays flat in the run's size.
 *
 * @since 0.1.0
 * @category combinators
 */
export const streamSamples = (
  store: TaskStore["Type"],
  runId: string,
  pageSize: number = defaultPageSize
): Stream.Stream<SampleRecord, StoreError> =>
  Stream.paginateChunkEffect(undefined as number | undefined, (after) =>
    Effect.map(
      store.listSamples(runId, pageAfter(after, pageSize)),
      (page): readonly [Chunk.Chunk<SampleRecord>, Option.Option<number | undefined>] => [
        Chunk.unsafeFromArray(page.slice()),
        page.length < pageSize ? Option.none() : Option.some(page[page.length - 1]!.sampleId)
      ]
    ))

/**
 * A run record as the JSON text a durable store keeps: its sample ids as ranges, so a large run
 * costs a few bytes and reads back fast; without `progress`, which a store keeps apart.
 *
 * @since 0.1.0
 * @category combinators
 */
export const encodeRun: (run: RunRecord) => string = RunCodec.encode

/**
 * A run record from the text `encodeRun` made (or a plain JSON record).
 *
 * @since 0.1.0
 * @category combinators
 */
export const decodeRun: (text: string) => Either.Either<RunRecord, ParseResult.ParseError> = RunCodec.decode

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
 * A task store's state in memory, changed synchronously: the memory store, and the file store
 * (this state plus its journal), are built on it, so they keep runs, samples, progress and pages
 * alike.
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryState {
  /** Adds a run; false when its id is taken. */
  readonly createRun: (run: RunRecord) => boolean
  readonly getRun: (runId: string) => RunRecord | undefined
  /** The updated run, or undefined when the run is not stored. */
  readonly updateRun: (runId: string, update: RunUpdate) => RunRecord | undefined
  readonly listRuns: () => Array<RunRecord>
  readonly putSample: (sample: SampleRecord) => void
  readonly getSample: (runId: string, sampleId: number) => SampleRecord | undefined
  readonly listSamples: (runId: string, page: SamplePage) => Array<SampleRecord>
  readonly getMeta: (key: string) => string | undefined
  /** Stores the value unless the key has one; returns the stored value. */
  readonly putMetaIfAbsent: (key: string, value: string) => string
  /** Every meta entry, run and sample, for writing the state out whole. */
  readonly entries: () => Iterable<
    | { readonly t: "meta"; readonly key: string; readonly value: string }
    | { readonly t: "run"; readonly run: RunRecord }
    | { readonly t: "sample"; readonly sample: SampleRecord }
  >
}

interface RunState {
  /** Undefined while only samples of the run are stored. */
  run: RunRecord | undefined
  /** Changed in place as samples land; copied when shown. */
  readonly progress: { -readonly [K in keyof RunProgress]: RunProgress[K] }
  readonly samples: Map<number, SampleRecord>
  maxSampleId: number
}

const withoutProgress = (run: RunRecord): RunRecord => {
  if (run.progress === undefined) return run
  const { progress: _progress, ...rest } = run
  return rest
}

/**
 * An empty in-memory task store state.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemoryState = (): MemoryState => {
  const runs = new Map<string, RunState>()
  const meta = new Map<string, string>()
  const shown = (run: RunRecord, entry: RunState): RunRecord => ({ ...run, progress: { ...entry.progress } })
  const runState = (runId: string): RunState => {
    let entry = runs.get(runId)
    if (entry === undefined) {
      // a sample of a run not (yet) created: kept, and counted once the run exists
      entry = { run: undefined, progress: { ...Metrics.emptyProgress }, samples: new Map(), maxSampleId: -1 }
      runs.set(runId, entry)
    }
    return entry
  }
  return {
    createRun: (run) => {
      const entry = runs.get(run.runId)
      if (entry?.run !== undefined) return false
      if (entry === undefined) {
        runs.set(run.runId, {
          run: withoutProgress(run),
          progress: { ...Metrics.emptyProgress },
          samples: new Map(),
          maxSampleId: -1
        })
      } else entry.run = withoutProgress(run)
      return true
    },
    getRun: (runId) => {
      const entry = runs.get(runId)
      return entry?.run === undefined ? undefined : shown(entry.run, entry)
    },
    updateRun: (runId, update) => {
      const entry = runs.get(runId)
      if (entry?.run === undefined) return undefined
      const next = applyUpdate(entry.run, update)
      entry.run = next
      return shown(next, entry)
    },
    listRuns: () => {
      const result: Array<RunRecord> = []
      for (const entry of runs.values()) if (entry.run !== undefined) result.push(shown(entry.run, entry))
      return result
    },
    putSample: (sample) => {
      const entry = runState(sample.runId)
      const previous = entry.samples.get(sample.sampleId)
      if (previous !== undefined) Metrics.addInPlace(entry.progress, previous, -1)
      Metrics.addInPlace(entry.progress, sample, 1)
      entry.samples.set(sample.sampleId, sample)
      if (sample.sampleId > entry.maxSampleId) entry.maxSampleId = sample.sampleId
    },
    getSample: (runId, sampleId) => runs.get(runId)?.samples.get(sampleId),
    listSamples: (runId, page) => {
      const entry = runs.get(runId)
      const result: Array<SampleRecord> = []
      if (entry === undefined) return result
      for (let id = Math.max(0, Math.floor((page.after ?? -1) + 1)); id <= entry.maxSampleId; id++) {
        if (result.length >= page.limit) break
        const sample = entry.samples.get(id)
        if (sample !== undefined) result.push(sample)
      }
      return result
    },
    getMeta: (key) => meta.get(key),
    putMetaIfAbsent: (key, value) => {
      const stored = meta.get(key)
      if (stored !== undefined) return stored
      meta.set(key, value)
      return value
    },
    *entries() {
      for (const [key, value] of meta) yield { t: "meta" as const, key, value }
      for (const { run } of runs.values()) if (run !== undefined) yield { t: "run" as const, run }
      for (const entry of runs.values()) {
        for (const sample of entry.samples.values()) yield { t: "sample" as const, sample }
      }
    }
  }
}

/**
 * The store kept in memory.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory = (): TaskStore["Type"] => {
  const state = makeMemoryState()
  return {
    createRun: (run) => Effect.suspend(() => state.createRun(run) ? Effect.void : Effect.fail(runExists(run.runId))),
    getRun: (runId) => Effect.sync(() => Option.fromNullable(state.getRun(runId))),
    updateRun: (runId, update) =>
      Effect.suspend(() => {
        const next = state.updateRun(runId, update)
        return next === undefined ? Effect.fail(runNotFound(runId)) : Effect.succeed(next)
      }),
    listRuns: () => Effect.sync(() => state.listRuns()),
    putSample: (sample) => Effect.sync(() => state.putSample(sample)),
    putSamples: (samples) =>
      Effect.sync(() => {
        for (const sample of samples) state.putSample(sample)
      }),
    getSample: (runId, sampleId) => Effect.sync(() => Option.fromNullable(state.getSample(runId, sampleId))),
    listSamples: (runId, page) => Effect.sync(() => state.listSamples(runId, page)),
    putMetaIfAbsent: (key, value) => Effect.sync(() => state.putMetaIfAbsent(key, value)),
    getMeta: (key) => Effect.sync(() => Option.fromNullable(state.getMeta(key)))
  }
}

/**
 * The in-memory store.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<TaskStore> = Layer.sync(TaskStore, makeMemory)
