/**
 * An append-only journal of JSON lines on a `FileSystem`, with group commit: appends made while a
 * flush is in progress are written and fsync'd together by the next flush, and each `append` is
 * acknowledged only after its line is on disk. Opening replays the lines; a torn last line (a
 * crash mid-append, never acknowledged) is cut off, anything else unreadable is reported.
 *
 * A journal starts with a header line (`{"t":"holdout-ledger","version":1}`), written with the
 * file itself: the header is written to a file beside it, fsync'd and renamed into place, and the
 * directory fsync'd. An existing journal is therefore never legitimately empty, and one whose first
 * line is neither its header nor an entry is not a Holdout journal. Journals written before headers
 * existed start with an entry; they still open, and get their header at their next compaction.
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import { GroupCommit } from "@holdout/core"
import type * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"

/** A line that could not be read, with its 1-based number. */
export interface BadLine {
  readonly line: number
  readonly reason: string
}

/** What replaying a journal found. */
export interface Replay {
  /** The parsed lines, in order. */
  readonly values: ReadonlyArray<unknown>
  /** The first bad line before the end, if any (the journal is corrupt). */
  readonly corrupt: BadLine | undefined
  /** Whether a torn last line was cut off. */
  readonly repairedTail: boolean
  /** Why the whole file is not a usable journal (empty, missing, another format), if it is not. */
  readonly unusable?: string | undefined
  /** Whether a complete last line had lost only its newline (kept, and the newline completed). */
  readonly completedTail?: boolean
}

/** The first line of a journal: which kind of journal it is, and its format version. */
export interface Header {
  readonly t: string
  readonly version: number
}

/** What opening a journal knows beyond the file itself. */
export interface ReplayOptions {
  readonly header: Header
  /**
   * Whether other evidence (the lock left by a previous holder) shows that the journal was
   * created: then a missing journal was deleted, not never written.
   */
  readonly existed: boolean
}

/** An open journal. */
export interface Journal {
  /** Appends one value as a line; succeeds once the line is fsync'd. */
  readonly append: (value: unknown) => Effect.Effect<void, JournalError>
  /**
   * Queues one value synchronously (lines are written in the order they are queued) and returns
   * what to await for its durability; for callers that must order a line with in-memory changes.
   */
  readonly unsafeEnqueue: (value: unknown) => Deferred.Deferred<void, JournalError>
  /** The journal's size in bytes, as written so far. */
  readonly size: () => number
}

/** A failed write or sync. */
export class JournalError {
  readonly _tag = "JournalError"
  constructor(readonly op: string, readonly message: string) {}
}

const encoder = new TextEncoder()

/** Splits journal text into values; see `Replay`. */
export const parse = (text: string): Replay => {
  const values: Array<unknown> = []
  let offset = 0
  let lineNumber = 0
  while (offset < text.length) {
    lineNumber++
    const end = text.indexOf("\n", offset)
    const terminated = end !== -1
    const line = text.slice(offset, terminated ? end : text.length)
    offset = terminated ? end + 1 : text.length
    if (line.trim().length === 0) continue
    let value: unknown
    try {
      value = JSON.parse(line)
    } catch {
      // Only an unterminated last line can be a torn append; anything else is corruption.
      if (!terminated) return { values, corrupt: undefined, repairedTail: true }
      return { values, corrupt: { line: lineNumber, reason: "not valid JSON" }, repairedTail: false }
    }
    values.push(value)
    // A line is a JSON object, and no proper prefix of one parses: an unterminated line that parses
    // is complete (its newline was lost, or was not yet written when it was acknowledged).
    if (!terminated) return { values, corrupt: undefined, repairedTail: false, completedTail: true }
  }
  return { values, corrupt: undefined, repairedTail: false }
}

/** The temporary file a new journal is written to before it is renamed into place. */
export const creationFile = (file: string): string => `${file}.init`

const ioError = (op: string) => (error: { readonly message: string }) => new JournalError(op, error.message)

const headerLine = (header: Header) => JSON.stringify({ t: header.t, version: header.version }) + "\n"

/**
 * Writes `text` to `file` atomically: to a file beside it, fsync'd, renamed over it, and the
 * directory fsync'd. A crash leaves either no file (or the old one) or the whole new one.
 */
const writeAtomically = (fs: FileSystem.FileSystem, path: Path.Path, file: string, aside: string, text: string) =>
  Effect.gen(function*() {
    yield* Effect.scoped(Effect.gen(function*() {
      const handle = yield* fs.open(aside, { flag: "w" })
      yield* handle.writeAll(encoder.encode(text))
      yield* handle.sync
    })).pipe(Effect.mapError(ioError("create")))
    yield* Effect.mapError(fs.rename(aside, file), ioError("create"))
    yield* syncDirectory(fs, path.dirname(file))
  })

/** Creates a new, empty journal: its header line, written atomically. */
export const create = (
  fs: FileSystem.FileSystem,
  path: Path.Path,
  file: string,
  header: Header
): Effect.Effect<void, JournalError> => writeAtomically(fs, path, file, creationFile(file), headerLine(header))

/** Whether a replayed value is a journal header (of any kind). */
const headerKind = (value: unknown): string | undefined => {
  if (typeof value !== "object" || value === null || !("t" in value) || !("version" in value)) return undefined
  return typeof value.t === "string" && value.t.startsWith("holdout-") ? value.t : undefined
}

/** Checks and strips the header of replayed values; see `Header`. */
const checkHeader = (result: Replay, header: Header): Replay => {
  const [first, ...rest] = result.values
  const kind = headerKind(first)
  if (kind === undefined) {
    // no header: a journal of the previous format, whose first line is an entry (checked by the caller)
    if (result.values.length === 0 && result.corrupt === undefined) {
      return { ...result, unusable: "it holds no journal header and no entry" }
    }
    return result
  }
  if (kind !== header.t) {
    return { ...result, values: [], unusable: `it is a "${kind}" file, not a "${header.t}" journal` }
  }
  const version = (first as { readonly version: unknown }).version
  if (version !== header.version) {
    return { ...result, values: [], unusable: `its format version ${String(version)} is not supported` }
  }
  return { ...result, values: rest }
}

/**
 * Reads a journal file. A missing file is created (with its header) unless `existed` says it was
 * deleted; an empty file or one that is not this kind of journal is `unusable`. A torn tail is cut
 * off on disk so later appends start on a line of their own; a complete last line that lost its
 * newline gets it back.
 */
export const replay = (
  fs: FileSystem.FileSystem,
  path: Path.Path,
  file: string,
  options: ReplayOptions
): Effect.Effect<Replay, JournalError> =>
  Effect.gen(function*() {
    // a creation that crashed before its rename: nothing was ever written to the journal
    yield* fs.remove(creationFile(file)).pipe(Effect.catchAll(() => Effect.void))
    const exists = yield* fs.exists(file).pipe(Effect.mapError(ioError("open")))
    if (!exists) {
      if (options.existed) {
        return {
          values: [],
          corrupt: undefined,
          repairedTail: false,
          unusable: "it is missing, though its lock shows it existed"
        }
      }
      yield* create(fs, path, file, options.header)
      return { values: [], corrupt: undefined, repairedTail: false }
    }
    const text = yield* fs.readFileString(file).pipe(Effect.mapError(ioError("open")))
    if (text.length === 0) {
      return { values: [], corrupt: undefined, repairedTail: false, unusable: "it is empty (0 bytes)" }
    }
    const result = checkHeader(parse(text), options.header)
    if (result.unusable !== undefined || result.corrupt !== undefined) {
      return result
    }
    if (result.repairedTail) {
      const cut = text.lastIndexOf("\n") + 1
      yield* fs.truncate(file, encoder.encode(text.slice(0, cut)).length).pipe(Effect.mapError(ioError("repair")))
    }
    if (result.completedTail === true) {
      yield* Effect.scoped(Effect.gen(function*() {
        const handle = yield* fs.open(file, { flag: "a" })
        yield* handle.writeAll(encoder.encode("\n"))
        yield* handle.sync
      })).pipe(Effect.mapError(ioError("repair")))
    }
    return result
  })

/** Syncs a directory, so that a file created or renamed in it survives a crash. */
export const syncDirectory = (fs: FileSystem.FileSystem, dir: string): Effect.Effect<void, JournalError> =>
  Effect.scoped(
    Effect.flatMap(fs.open(dir, { flag: "r" }), (handle) => handle.sync)
  ).pipe(Effect.mapError((error) => new JournalError("sync", error.message)))

/** Compaction: past `afterBytes`, the journal is rewritten as `snapshot()` (the live state). */
export interface Compaction {
  readonly afterBytes: number
  /** The values that reproduce the current state; taken between two flushes. */
  readonly snapshot: () => Iterable<unknown>
}

/** The temporary file a compaction writes before renaming it over the journal. */
export const compactionFile = (file: string): string => `${file}.compact`

/**
 * Opens a journal for appending, with one writer fiber that batches appends into one write and one
 * fsync. With `compaction`, the writer rewrites the journal between two flushes once it passes the
 * threshold: snapshot to a temporary file, fsync, rename over the journal, fsync the directory.
 * A crash at any point leaves either the old journal or the new one. Closed with the scope.
 */
export const open = (
  fs: FileSystem.FileSystem,
  path: Path.Path,
  file: string,
  compaction?: Compaction,
  header?: Header
): Effect.Effect<Journal, JournalError, Scope.Scope> =>
  Effect.gen(function*() {
    const dir = path.dirname(file)
    const temporary = compactionFile(file)
    // a compaction that crashed before its rename: the journal itself is intact
    yield* fs.remove(temporary).pipe(Effect.catchAll(() => Effect.void))
    const existed = yield* fs.exists(file).pipe(Effect.orElseSucceed(() => false))
    if (!existed && header !== undefined) yield* create(fs, path, file, header)

    const openHandle = Effect.gen(function*() {
      const scope = yield* Scope.make()
      const handle = yield* fs.open(file, { flag: "a" }).pipe(
        Scope.extend(scope),
        Effect.mapError(ioError("open")),
        Effect.tapError(() => Scope.close(scope, Exit.void))
      )
      const stat = yield* Effect.mapError(handle.stat, ioError("open"))
      return { handle, scope, size: Number(stat.size) }
    })
    let current = yield* openHandle
    yield* Effect.addFinalizer(() => Scope.close(current.scope, Exit.void))
    if (!existed) yield* syncDirectory(fs, dir)
    // set once a compaction renamed the journal but could not reopen it: nothing more may be written
    let broken: JournalError | undefined
    // the next compaction waits until the journal has doubled, so a large live state is not rewritten
    // after every flush
    let compactAt = compaction === undefined ? Infinity : Math.max(compaction.afterBytes, 2 * current.size)
    const flush = (lines: ReadonlyArray<string>) => {
      let text = ""
      for (const line of lines) text += line
      const bytes = encoder.encode(text)
      return broken !== undefined
        ? Effect.fail(broken)
        : Effect.zipRight(current.handle.writeAll(bytes), current.handle.sync).pipe(
          Effect.tap(() => Effect.sync(() => current.size += bytes.length)),
          Effect.mapError(ioError("append"))
        )
    }

    const compact = (settings: Compaction) =>
      Effect.gen(function*() {
        let text = header === undefined ? "" : headerLine(header)
        for (const value of settings.snapshot()) text += JSON.stringify(value) + "\n"
        yield* Effect.scoped(Effect.gen(function*() {
          const handle = yield* fs.open(temporary, { flag: "w" })
          yield* handle.writeAll(encoder.encode(text))
          yield* handle.sync
        })).pipe(Effect.mapError(ioError("compact")))
        yield* Effect.mapError(fs.rename(temporary, file), ioError("compact"))
        yield* syncDirectory(fs, dir)
        const previous = current
        const reopened = yield* Effect.either(openHandle)
        if (reopened._tag === "Left") {
          broken = reopened.left
          return yield* Effect.logError(`Journal ${file}: compacted but cannot reopen it: ${reopened.left.message}`)
        }
        current = reopened.right
        compactAt = Math.max(settings.afterBytes, 2 * current.size)
        yield* Scope.close(previous.scope, Exit.void)
        yield* Effect.logDebug(`Journal ${file} compacted to ${current.size} bytes`)
      }).pipe(
        Effect.catchAll((error) =>
          Effect.zipRight(
            fs.remove(temporary).pipe(Effect.catchAll(() => Effect.void)),
            Effect.logWarning(`Journal ${file}: compaction failed, appending to the old journal: ${error.message}`)
          ).pipe(Effect.zipRight(Effect.sync(() => {
            compactAt = 2 * current.size
          })))
        )
      )

    // One batch a flush: every line queued while the previous flush ran shares one write and fsync.
    const commit = (lines: ReadonlyArray<string>) =>
      Effect.map(
        Effect.zipRight(
          flush(lines),
          compaction !== undefined && broken === undefined && current.size > compactAt
            // a compaction runs to its end: closing the journal waits rather than leave its temporary file
            ? Effect.uninterruptible(compact(compaction))
            : Effect.void
        ),
        () => lines.map(() => Exit.void)
      )
    const group = yield* GroupCommit.make(commit, { maxBatch: 8192 })

    const unsafeEnqueue = (value: unknown) => group.unsafeSubmit(JSON.stringify(value) + "\n")
    const append = (value: unknown) => group.submit(JSON.stringify(value) + "\n")
    return { append, unsafeEnqueue, size: () => current.size }
  })
