/**
 * A durable `TaskStore` on a file system: one append-only log of JSON lines (runs, run updates and
 * sample records) in a directory, written with group commit. A write is acknowledged only after
 * its line is fsync'd; opening replays the log into memory, so reads and listings never touch the
 * disk. A torn last line (never acknowledged) is discarded; the directory is held by one process.
 *
 * @since 0.1.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { HoldoutError, Model, TaskStore } from "@holdout/core"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Journal from "./internal/journal.js"
import * as Lock from "./internal/lock.js"

/**
 * Options of the file task store: the directory it owns, and how to tell whether the process
 * holding its lock is alive (default: a signal-0 probe).
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly dir: string
  readonly isAlive?: (pid: number) => boolean
  /**
   * Rewrite the log as its live state (one line a run and a sample) once it passes this many
   * bytes (default 64 MiB) and has doubled since the last rewrite.
   */
  readonly compactAfterBytes?: number
}

/**
 * The name of the log file inside the store's directory.
 *
 * @since 0.1.0
 * @category constants
 */
export const logFile = "tasks.jsonl"

/**
 * The first line of a task log; a log without it was written before headers existed.
 *
 * @since 0.1.0
 * @category constants
 */
export const logHeader = { t: "holdout-tasks", version: 1 } as const

const RunLine = Schema.Struct({ t: Schema.Literal("run"), run: Model.RunRecord })
const UpdateLine = Schema.Struct({
  t: Schema.Literal("update"),
  runId: Schema.String,
  status: Schema.optionalWith(Model.RunStatus, { exact: true }),
  finishedAt: Schema.optionalWith(Schema.Number, { exact: true }),
  metrics: Schema.optionalWith(Model.Metrics, { exact: true })
})
const SampleLine = Schema.Struct({ t: Schema.Literal("sample"), sample: Model.SampleRecord })
const MetaLine = Schema.Struct({ t: Schema.Literal("meta"), key: Schema.String, value: Schema.String })
const decodeLine = Schema.decodeUnknownEither(Schema.Union(RunLine, UpdateLine, SampleLine, MetaLine))

/** Rebuilds the state from replayed lines, or says which line is wrong. */
const rebuild = (values: ReadonlyArray<unknown>): Either.Either<TaskStore.MemoryState, string> => {
  const state = TaskStore.makeMemoryState()
  for (let index = 0; index < values.length; index++) {
    const decoded = decodeLine(values[index])
    if (Either.isLeft(decoded)) return Either.left(`entry ${index + 1} is not a log entry of a known shape`)
    const line = decoded.right
    switch (line.t) {
      case "run":
        // a run queued while a compaction ran is in the snapshot and after it: the first one stands
        state.createRun(line.run)
        break
      case "update": {
        const { runId: _runId, t: _t, ...update } = line
        if (state.updateRun(line.runId, update) === undefined) {
          return Either.left(`entry ${index + 1} updates run "${line.runId}", which has no entry`)
        }
        break
      }
      case "sample":
        state.putSample(line.sample)
        break
      case "meta":
        state.putMetaIfAbsent(line.key, line.value)
        break
    }
  }
  return Either.right(state)
}

/**
 * Opens (or creates) the store's directory and builds the service.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<
  TaskStore.TaskStore["Type"],
  HoldoutError.StoreError,
  FileSystem.FileSystem | Path.Path | Scope.Scope
> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const file = path.join(options.dir, logFile)
    const openError = (message: string) => new HoldoutError.StoreError({ op: "open", message: `${file}: ${message}` })

    yield* fs.makeDirectory(options.dir, { recursive: true }).pipe(Effect.mapError((error) => openError(error.message)))
    const lock = yield* Lock.acquire(fs, path, file, options.isAlive).pipe(
      Effect.mapError((failure) =>
        openError(
          failure._tag === "Held"
            ? `held by another process (pid ${failure.pid ?? "unknown"}); stop it or use another directory`
            : `cannot take its lock: ${failure.message}`
        )
      )
    )
    const replayed = yield* Journal.replay(fs, path, file, {
      header: logHeader,
      existed: lock.previous?.store === true
    })
      .pipe(Effect.mapError((error) => openError(error.message)))
    if (replayed.unusable !== undefined) {
      yield* lock.keepOnRelease
      return yield* openError(
        `the log is not usable: ${replayed.unusable}. Nothing was changed; restore it from a backup, or to start ` +
          `over, move it and its lock file aside.`
      )
    }
    yield* lock.markStoreExists.pipe(
      Effect.mapError((failure) => openError(`cannot update its lock: ${failure.message}`))
    )
    if (replayed.repairedTail) {
      yield* Effect.logWarning(`Task store ${file}: discarded a torn last line (a write that was never acknowledged)`)
    }
    const rebuilt = replayed.corrupt !== undefined
      ? Either.left(`line ${replayed.corrupt.line} is ${replayed.corrupt.reason}`)
      : rebuild(replayed.values)
    if (Either.isLeft(rebuilt)) {
      return yield* openError(`the log cannot be read: ${rebuilt.left}. Nothing was changed; restore it from a backup.`)
    }
    const state = rebuilt.right
    const journal = yield* Journal.open(fs, path, file, {
      afterBytes: options.compactAfterBytes ?? 64 * 1024 * 1024,
      snapshot: state.entries
    }, logHeader).pipe(Effect.mapError((error) => openError(error.message)))

    const durable = (op: string, done: Deferred.Deferred<void, Journal.JournalError>) =>
      Deferred.await(done).pipe(
        Effect.mapError((error) =>
          new HoldoutError.StoreError({ op, message: `${file}: ${error.op}: ${error.message}`, cause: error })
        )
      )

    // Reads come from the state in memory. Each write changes it and queues its line in one
    // synchronous step, so the log keeps the order in which changes were made.
    return {
      createRun: (run) =>
        Effect.suspend(() =>
          state.createRun(run)
            ? durable("createRun", journal.unsafeEnqueue({ t: "run", run }))
            : Effect.fail(TaskStore.runExists(run.runId))
        ),
      getRun: (runId) => Effect.sync(() => Option.fromNullable(state.getRun(runId))),
      updateRun: (runId, update) =>
        Effect.suspend(() => {
          const next = state.updateRun(runId, update)
          if (next === undefined) return Effect.fail(TaskStore.runNotFound(runId))
          return Effect.as(durable("updateRun", journal.unsafeEnqueue({ t: "update", runId, ...update })), next)
        }),
      listRuns: () => Effect.sync(() => state.listRuns()),
      putSample: (sample) =>
        Effect.suspend(() => {
          state.putSample(sample)
          return durable("putSample", journal.unsafeEnqueue({ t: "sample", sample }))
        }),
      putSamples: (samples) =>
        Effect.suspend(() => {
          const queued = samples.map((sample) => {
            state.putSample(sample)
            return journal.unsafeEnqueue({ t: "sample", sample })
          })
          return Effect.forEach(queued, (done) => durable("putSamples", done), { discard: true })
        }),
      getSample: (runId, sampleId) => Effect.sync(() => Option.fromNullable(state.getSample(runId, sampleId))),
      listSamples: (runId, page) => Effect.sync(() => state.listSamples(runId, page)),
      putMetaIfAbsent: (key, value) =>
        Effect.suspend(() => {
          if (state.getMeta(key) !== undefined) return Effect.succeed(state.putMetaIfAbsent(key, value))
          state.putMetaIfAbsent(key, value)
          return Effect.as(durable("putMetaIfAbsent", journal.unsafeEnqueue({ t: "meta", key, value })), value)
        }),
      getMeta: (key) => Effect.sync(() => Option.fromNullable(state.getMeta(key)))
    } satisfies TaskStore.TaskStore["Type"]
  })

/**
 * The file task store as a layer; its directory is held until the layer is released.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<TaskStore.TaskStore, HoldoutError.StoreError, FileSystem.FileSystem | Path.Path> =>
  Layer.scoped(TaskStore.TaskStore, make(options))
