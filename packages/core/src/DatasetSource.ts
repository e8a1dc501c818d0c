/**
 * Where the rows of a dataset come from: in-memory records, a directory of JSONL files, or a
 * package's own source (Harbor partitions). Rows are addressed by split and integer sample id.
 *
 * @since 0.1.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { InvalidRequest, StoreError, UnknownSplit } from "./HoldoutError.js"
import * as Jsonl from "./internal/jsonl.js"

/**
 * The shape of a dataset as a `DatasetSource` describes it: the size of every split.
 *
 * @since 0.1.0
 * @category models
 */
export const DatasetInfo = Schema.Struct({
  datasetId: Schema.String,
  splits: Schema.Record({ key: Schema.String, value: Schema.Int })
})

/**
 * @since 0.1.0
 * @category models
 */
export type DatasetInfo = typeof DatasetInfo.Type

/**
 * The dataset service.
 *
 * @since 0.1.0
 * @category tags
 */
export class DatasetSource extends Context.Tag("@holdout/core/DatasetSource")<DatasetSource, {
  /** The splits of a dataset and their sizes; an unknown dataset is an `InvalidRequest`. */
  readonly info: (datasetId: string) => Effect.Effect<DatasetInfo, InvalidRequest | StoreError>
  /** The rows with the given ids, in the order asked. */
  readonly rows: (
    datasetId: string,
    split: string,
    ids: ReadonlyArray<number>
  ) => Effect.Effect<ReadonlyArray<unknown>, InvalidRequest | UnknownSplit | StoreError>
}>() {}

/**
 * The error for a dataset the source does not hold.
 *
 * @since 0.1.0
 * @category errors
 */
export const unknownDataset = (datasetId: string, known: ReadonlyArray<string>): InvalidRequest =>
  new InvalidRequest({
    message: `Unknown dataset "${datasetId}". Known datasets: ${known.length === 0 ? "(none)" : known.join(", ")}.`
  })

/** Fails with `InvalidRequest` naming the ids outside `[0, size)`. */
const checkIds = (
  datasetId: string,
  split: string,
  size: number,
  ids: ReadonlyArray<number>
): Effect.Effect<void, InvalidRequest> => {
  const bad: Array<number> = []
  for (const id of ids) if (!(Number.isInteger(id) && id >= 0 && id < size)) bad.push(id)
  return bad.length === 0 ? Effect.void : Effect.fail(
    new InvalidRequest({
      message: `Sample ids ${bad.slice(0, 20).join(", ")}${bad.length > 20 ? ", …" : ""} are outside split ` +
        `"${split}" of dataset "${datasetId}", whose ids are 0..${size - 1}.`
    })
  )
}

const pick = (
  datasetId: string,
  split: string,
  rows: ReadonlyArray<unknown>,
  ids: ReadonlyArray<number>
): Effect.Effect<ReadonlyArray<unknown>, InvalidRequest> =>
  Effect.as(checkIds(datasetId, split, rows.length, ids), ids.map((id) => rows[id]))

/**
 * Builds a source from rows held in memory.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeRecords = (
  records: Readonly<Record<string, Readonly<Record<string, ReadonlyArray<unknown>>>>>
): DatasetSource["Type"] => {
  const datasets = Object.keys(records)
  const dataset = (datasetId: string) =>
    Object.prototype.hasOwnProperty.call(records, datasetId)
      ? Effect.succeed(records[datasetId]!)
      : Effect.fail(unknownDataset(datasetId, datasets))
  return {
    info: (datasetId) =>
      Effect.map(dataset(datasetId), (splits) => ({
        datasetId,
        splits: Object.fromEntries(Object.entries(splits).map(([split, rows]) => [split, rows.length]))
      })),
    rows: (datasetId, split, ids) =>
      Effect.flatMap(
        dataset(datasetId),
        (splits): Effect.Effect<ReadonlyArray<unknown>, InvalidRequest | UnknownSplit> =>
          Object.prototype.hasOwnProperty.call(splits, split)
            ? pick(datasetId, split, splits[split]!, ids)
            : Effect.fail(new UnknownSplit({ datasetId, split, known: Object.keys(splits) }))
      )
  }
}

/**
 * A source of in-memory rows: `{ [datasetId]: { [split]: rows } }`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerRecords = (
  records: Readonly<Record<string, Readonly<Record<string, ReadonlyArray<unknown>>>>>
): Layer.Layer<DatasetSource> => Layer.succeed(DatasetSource, makeRecords(records))

/**
 * Parses the text of a JSONL file: one JSON value a line, blank lines ignored. A bad line is a
 * `StoreError` naming the file and line.
 *
 * @since 0.1.0
 * @category constructors
 */
export const parseJsonl = (location: string, text: string): Effect.Effect<ReadonlyArray<unknown>, StoreError> =>
  Effect.suspend(() => {
    const rows: Array<unknown> = []
    const lines = text.split("\n")
    for (let index = 0; index < lines.length; index++) {
      const line = lines[index]!.trim()
      if (line.length === 0) continue
      try {
        rows.push(JSON.parse(line))
      } catch (cause) {
        return Effect.fail(
          new StoreError({
            op: "rows",
            message: `${location}:${index + 1} is not valid JSON (${String(cause)}). Fix or remove that line.`
          })
        )
      }
    }
    return Effect.succeed(rows)
  })

/**
 * A source reading `<dir>/<datasetId>/<split>.jsonl`: one directory a dataset, one JSONL file a
 * split, the line order giving the sample ids (blank lines skipped). A file is read line by line
 * once, on first use, to index its rows and check that each is JSON; rows are then read from the
 * file as they are asked for, so memory does not grow with the dataset.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerJsonlDir = (options: {
  readonly dir: string
}): Layer.Layer<DatasetSource, never, FileSystem.FileSystem | Path.Path> =>
  Layer.effect(
    DatasetSource,
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const indexes = new Map<string, Jsonl.Index>()
      const lock = yield* Effect.makeSemaphore(1)
      const ioError = (op: string, target: string) => (error: { readonly message: string }) =>
        new StoreError({ op, message: `Cannot read ${target}: ${error.message}`, cause: error })

      const datasetIds = fs.readDirectory(options.dir).pipe(
        Effect.mapError(ioError("info", options.dir)),
        Effect.flatMap((names) =>
          Effect.filter(names, (name) =>
            fs.stat(path.join(options.dir, name)).pipe(
              Effect.map((info) => info.type === "Directory"),
              Effect.orElseSucceed(() => false)
            ))
        )
      )
      const splitsOf = (datasetId: string) =>
        Effect.gen(function*() {
          const known = yield* datasetIds
          if (!known.includes(datasetId)) return yield* Effect.fail(unknownDataset(datasetId, known))
          const dir = path.join(options.dir, datasetId)
          const names = yield* Effect.mapError(fs.readDirectory(dir), ioError("info", dir))
          return names.filter((name) => name.endsWith(".jsonl")).map((name) => name.slice(0, -".jsonl".length)).sort()
        })
      const load = (datasetId: string, split: string) =>
        lock.withPermits(1)(Effect.gen(function*() {
          const file = path.join(options.dir, datasetId, `${split}.jsonl`)
          const cached = indexes.get(file)
          if (cached !== undefined) return { file, rows: cached }
          const splits = yield* splitsOf(datasetId)
          if (!splits.includes(split)) return yield* Effect.fail(new UnknownSplit({ datasetId, split, known: splits }))
          const rows = yield* Jsonl.index(fs, file)
          indexes.set(file, rows)
          return { file, rows }
        }))

      return {
        info: (datasetId) =>
          Effect.gen(function*() {
            const splits = yield* splitsOf(datasetId)
            const sizes: Record<string, number> = {}
            for (const split of splits) {
              // a split listed a moment ago is there: UnknownSplit cannot happen, but a file can vanish
              const loaded = yield* Effect.catchTag(load(datasetId, split), "UnknownSplit", () =>
                Effect.succeed(undefined))
              sizes[split] = loaded?.rows.starts.length ?? 0
            }
            return { datasetId, splits: sizes }
          }),
        rows: (datasetId, split, ids) =>
          Effect.flatMap(load(datasetId, split), ({ file, rows }) =>
            Effect.flatMap(
              checkIds(datasetId, split, rows.starts.length, ids),
              () =>
                Jsonl.read(fs, file, rows, ids)
            ))
      }
    })
  )
