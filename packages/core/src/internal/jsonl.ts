/**
 * JSONL files read line by line: one pass builds an index of where each row's line is (and checks
 * that every line is JSON); rows are then read from the file by their byte ranges, neighbours in
 * one read. Memory holds two numbers a row, never the rows themselves.
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { StoreError } from "../HoldoutError.js"

/** Where each row's line is in the file: bytes `[starts[i], ends[i])`; blank lines are not rows. */
export interface Index {
  readonly starts: ReadonlyArray<number>
  readonly ends: ReadonlyArray<number>
}

const newline = 10
const decoder = new TextDecoder()

const ioError = (op: string, file: string) => (error: { readonly message: string }) =>
  new StoreError({ op, message: `Cannot read ${file}: ${error.message}`, cause: error })

const badLine = (file: string, line: number, cause: unknown) =>
  new StoreError({
    op: "rows",
    message: `${file}:${line} is not valid JSON (${String(cause)}). Fix or remove that line.`,
    cause
  })

const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  if (parts.length === 1) return parts[0]!
  let length = 0
  for (const part of parts) length += part.length
  const joined = new Uint8Array(length)
  let offset = 0
  for (const part of parts) {
    joined.set(part, offset)
    offset += part.length
  }
  return joined
}

/** Reads the file once, chunk by chunk, and indexes its rows; a line that is not JSON is a `StoreError`. */
export const index = (fs: FileSystem.FileSystem, file: string): Effect.Effect<Index, StoreError> =>
  Effect.suspend(() => {
    const starts: Array<number> = []
    const ends: Array<number> = []
    let offset = 0
    let lineStart = 0
    let lineNumber = 0
    let pending: Array<Uint8Array> = []
    const line = (bytes: Uint8Array, start: number, end: number): StoreError | undefined => {
      lineNumber++
      const text = decoder.decode(bytes).trim()
      if (text.length === 0) return undefined
      try {
        JSON.parse(text)
      } catch (cause) {
        return badLine(file, lineNumber, cause)
      }
      starts.push(start)
      ends.push(end)
      return undefined
    }
    return Stream.runForEach(
      Stream.mapError(fs.stream(file, { chunkSize: 64 * 1024 }), ioError("rows", file)),
      (chunk) =>
        Effect.suspend(() => {
          let from = 0
          for (let at = chunk.indexOf(newline); at !== -1; at = chunk.indexOf(newline, at + 1)) {
            pending.push(chunk.subarray(from, at))
            const failed = line(concat(pending), lineStart, offset + at)
            if (failed !== undefined) return Effect.fail(failed)
            pending = []
            from = at + 1
            lineStart = offset + from
          }
          if (from < chunk.length) pending.push(chunk.slice(from))
          offset += chunk.length
          return Effect.void
        })
    ).pipe(
      Effect.flatMap(() => {
        const failed = pending.length === 0 ? undefined : line(concat(pending), lineStart, offset)
        return failed === undefined ? Effect.succeed({ starts, ends }) : Effect.fail(failed)
      })
    )
  })

/** Reads longer stretches than this in one read only when the rows in them are all wanted. */
const gapBytes = 16 * 1024

/** The rows at the given positions of the index (each in range), in the order asked. */
export const read = (
  fs: FileSystem.FileSystem,
  file: string,
  rows: Index,
  positions: ReadonlyArray<number>
): Effect.Effect<Array<unknown>, StoreError> =>
  Effect.scoped(Effect.gen(function*() {
    const result: Array<unknown> = new Array(positions.length)
    if (positions.length === 0) return result
    const handle = yield* Effect.mapError(fs.open(file, { flag: "r" }), ioError("rows", file))
    const order = positions.map((_, index) => index).sort((a, b) => positions[a]! - positions[b]!)
    let first = 0
    while (first < order.length) {
      // one read for a run of rows whose lines are close together
      let last = first
      while (
        last + 1 < order.length &&
        rows.starts[positions[order[last + 1]!]!]! - rows.ends[positions[order[last]!]!]! <= gapBytes
      ) last++
      const from = rows.starts[positions[order[first]!]!]!
      const to = rows.ends[positions[order[last]!]!]!
      yield* Effect.mapError(handle.seek(from, "start"), ioError("rows", file))
      const bytes = yield* Effect.mapError(handle.readAlloc(to - from), ioError("rows", file))
      if (bytes._tag === "None" || bytes.value.length < to - from) {
        return yield* new StoreError({
          op: "rows",
          message: `${file} changed while it was being read (it is shorter than when it was indexed). Leave a ` +
            `dataset's files unchanged while Holdout runs.`
        })
      }
      for (let index = first; index <= last; index++) {
        const position = positions[order[index]!]!
        const text = decoder.decode(bytes.value.subarray(rows.starts[position]! - from, rows.ends[position]! - from))
        try {
          result[order[index]!] = JSON.parse(text)
        } catch (cause) {
          return yield* new StoreError({
            op: "rows",
            message: `${file} changed while it was being read (row ${position} is no longer JSON). Leave a ` +
              `dataset's files unchanged while Holdout runs.`,
            cause
          })
        }
      }
      first = last + 1
    }
    return result
  }))
