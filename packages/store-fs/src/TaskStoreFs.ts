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

interface State {
  readonly runs: Map<string, Model.RunRecord>
  readonly samples: Map<string, Map<number, Model.SampleRecord>>
  readonly meta: Map<string, string>
}

const putInMemory = (state: State, sample: Model.SampleRecord) => {
  let byId = state.samples.get(sample.runId)
  if (byId === undefined) {
    byId = new Map()
    state.samples.set(sample.runId, byId)
  }
  byId.set(sample.sampleId, sample)
}

const rebuild = (values: ReadonlyArray<unknown>): Either.Either<State, string> => {
  const state: State = { runs: new Map(), samples: new Map(), meta: new Map() }
  for (let index = 0; index < values.length; index++) {
    const decoded = decodeLine(values[index])
    if (Either.isLeft(decoded)) return Either.left(`entry ${index + 1} is not a log entry of a known shape`)
    const line = decoded.right
    switch (line.t) {
      case "run":
        state.runs.set(line.run.runId, line.run)
        break
      case "update": {
        const run = state.runs.get(line.runId)
        if (run === undefined) return Either.left(`entry ${index + 1} updates run "${line.runId}", which has no entry`)
        const { runId: _runId, t: _t, ...update } = line
        state.runs.set(line.runId, TaskStore.applyUpdate(run, update))
        break
      }
      case "sample":
        putInMemory(state, line.sample)
        break
      case "meta":
        if (!state.meta.has(line.key)) state.meta.set(line.key, line.value)
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
      snapshot: () => {
        const lines: Array<unknown> = []
        for (const [key, value] of state.meta) lines.push({ t: "meta", key, value })
        for (const run of state.runs.values()) lines.push({ t: "run", run })
        for (const byId of state.samples.values()) {
          for (const sample of byId.values()) lines.push({ t: "sample", sample })
        }
        return lines
      }
    }, logHeader).pipe(Effect.mapError((error) => openError(error.message)))

    const durable = (op: string, done: Deferred.Deferred<void, Journal.JournalError>) =>
      Deferred.await(done).pipe(
        Effect.mapError((error) =>
          new HoldoutError.StoreError({ op, message: `${file}: ${error.op}: ${error.message}` })
        )
      )

    return {
      // Each write changes memory and queues its line in one synchronous step, so the log keeps
      // the order in which changes were made.
      createRun: (run) =>
        Effect.suspend(() => {
          if (state.runs.has(run.runId)) return Effect.fail(TaskStore.runExists(run.runId))
          state.runs.set(run.runId, run)
          return durable("createRun", journal.unsafeEnqueue({ t: "run", run }))
        }),
      getRun: (runId) => Effect.sync(() => Option.fromNullable(state.runs.get(runId))),
      updateRun: (runId, update) =>
        Effect.suspend(() => {
          const run = state.runs.get(runId)
          if (run === undefined) return Effect.fail(TaskStore.runNotFound(runId))
          const next = TaskStore.applyUpdate(run, update)
          state.runs.set(runId, next)
          return Effect.as(durable("updateRun", journal.unsafeEnqueue({ t: "update", runId, ...update })), next)
        }),
      listRuns: () => Effect.sync(() => Array.from(state.runs.values())),
      putSample: (sample) =>
        Effect.suspend(() => {
          putInMemory(state, sample)
          return durable("putSample", journal.unsafeEnqueue({ t: "sample", sample }))
        }),
      getSample: (runId, sampleId) => Effect.sync(() => Option.fromNullable(state.samples.get(runId)?.get(sampleId))),
      listSamples: (runId) =>
        Effect.sync(() => {
          const byId = state.samples.get(runId)
          return byId === undefined ? [] : Array.from(byId.values()).sort((a, b) => a.sampleId - b.sampleId)
        }),
      putMetaIfAbsent: (key, value) =>
        Effect.suspend(() => {
          const stored = state.meta.get(key)
          if (stored !== undefined) return Effect.succeed(stored)
          state.meta.set(key, value)
          return Effect.as(durable("putMetaIfAbsent", journal.unsafeEnqueue({ t: "meta", key, value })), value)
        })
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
