/**
 * Transcripts as feedback (`feedbackTranscripts`): the end of what a failed attempt's agent left in
 * its trial directory, `agent/terminus_2.pane`, else `agent/trajectory.json`.
 *
 * The agent under test writes these files, so they are read defensively: a file reached through a
 * symbolic link (the file itself or any directory on its way), a path that resolves outside the
 * trial directory, a trial directory outside the jobs directory, or anything but a regular file is
 * refused. A refused, missing, empty or unreadable file gives no feedback; it is never an error of
 * the run. Only the last `maxBytes` bytes are read, whatever the file's size.
 *
 * @since 0.1.0
 */
import type { PlatformError } from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Collation from "./Collation.js"

/**
 * The transcript files of a trial, in order of preference, relative to its directory.
 *
 * @since 0.1.0
 * @category constants
 */
export const files: ReadonlyArray<ReadonlyArray<string>> = [["agent", "terminus_2.pane"], ["agent", "trajectory.json"]]

const decoder = new TextDecoder("utf-8", { ignoreBOM: true })

/**
 * The text of the end of `bytes` that the last `maxBytes` bytes hold, as valid UTF-8: a character
 * split by the cut becomes one U+FFFD, and so does every invalid sequence. Empty when `maxBytes` is
 * 0 or less.
 *
 * @since 0.1.0
 * @category combinators
 */
export const tail = (bytes: Uint8Array, maxBytes: number): string => {
  if (maxBytes <= 0 || bytes.length === 0) return ""
  let start = Math.max(0, bytes.length - maxBytes)
  // the continuation bytes (10xxxxxx) of a character whose first byte was cut off
  let split = false
  if (start > 0) {
    for (let skipped = 0; skipped < 3 && start < bytes.length && (bytes[start]! & 0xc0) === 0x80; skipped++) {
      start++
      split = true
    }
  }
  return (split ? "\uFFFD" : "") + decoder.decode(bytes.subarray(start))
}

/** Whether `child` is `parent` or inside it (both resolved, without symbolic links). */
const within = (path: Path.Path, parent: string, child: string): boolean => {
  const relative = path.relative(parent, child)
  return relative === "" || (!relative.startsWith("..") && !path.isAbsolute(relative))
}

/**
 * Reads the last `maxBytes` bytes of an open regular file, and up to 3 bytes before them: what
 * `tail` needs to tell whether the cut splits a character.
 */
const readEnd = (file: FileSystem.File, maxBytes: number): Effect.Effect<Uint8Array, PlatformError> =>
  Effect.gen(function*() {
    const info = yield* file.stat
    if (info.type !== "File") return new Uint8Array(0)
    const size = Number(info.size)
    const length = Math.min(size, maxBytes + 3)
    const buffer = new Uint8Array(length)
    yield* file.seek(size - length, "start")
    let filled = 0
    while (filled < length) {
      const read = Number(yield* file.read(buffer.subarray(filled)))
      if (read === 0) break
      filled += read
    }
    return buffer.subarray(0, filled)
  })

/**
 * The end of one transcript file at `relative` inside `realTrialDir` (a resolved path), or nothing
 * when it is missing, empty, not a regular file, or reached through a symbolic link.
 */
const readConfined = (
  realTrialDir: string,
  relative: ReadonlyArray<string>,
  maxBytes: number
): Effect.Effect<Option.Option<string>, PlatformError, FileSystem.FileSystem | Path.Path | Scope.Scope> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const expected = path.join(realTrialDir, ...relative)
    if (!(yield* fs.exists(expected))) return Option.none()
    const real = yield* fs.realPath(expected)
    if (real !== expected) {
      yield* Effect.logWarning(`Harbor transcript ${expected} was refused: it is reached through a symbolic link`)
      return Option.none()
    }
    if ((yield* fs.stat(real)).type !== "File") return Option.none()
    const file = yield* fs.open(real, { flag: "r" })
    const text = tail(yield* readEnd(file, maxBytes), maxBytes)
    return text === "" ? Option.none() : Option.some(text)
  })

/**
 * The end of a trial's transcript (`agent/terminus_2.pane` when it is there and not empty, else
 * `agent/trajectory.json`), at most `maxBytes` bytes of it; nothing when `maxBytes` is 0 or less,
 * when no file qualifies, or when the trial directory is not inside `jobsDir`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const read = (options: {
  readonly trialDir: string
  readonly jobsDir: string
  readonly maxBytes: number
}): Effect.Effect<Option.Option<string>, never, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    if (options.maxBytes <= 0) return Option.none()
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const realJobs = yield* fs.realPath(options.jobsDir)
    const realTrial = yield* fs.realPath(options.trialDir)
    if (!within(path, realJobs, realTrial)) {
      yield* Effect.logWarning(`Harbor trial ${options.trialDir} was refused: it resolves outside ${options.jobsDir}`)
      return Option.none()
    }
    for (const relative of files) {
      const text = yield* Effect.scoped(readConfined(realTrial, relative, options.maxBytes))
      if (Option.isSome(text)) return text
    }
    return Option.none()
  }).pipe(Effect.orElseSucceed(() => Option.none()))

/**
 * The feedback of a sample (`feedbackTranscripts`): for a sample that failed (no score, or a score
 * of 0 or less), the end of the transcript of its first failed attempt that has one, in the order
 * the attempts finished; nothing for a sample that scored.
 *
 * @since 0.1.0
 * @category constructors
 */
export const feedback = (options: {
  readonly outcome: Collation.Outcome
  readonly jobsDir: string
  readonly maxBytes: number
  readonly rewardKey?: string | undefined
}): Effect.Effect<Option.Option<string>, never, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const { outcome } = options
    if (options.maxBytes <= 0 || (outcome.score !== undefined && outcome.score > 0)) return Option.none()
    const path = yield* Path.Path
    for (const trial of outcome.attempts) {
      if (!Collation.attemptFailed(trial, options.rewardKey)) continue
      const text = yield* read({
        trialDir: path.dirname(trial.file),
        jobsDir: options.jobsDir,
        maxBytes: options.maxBytes
      })
      if (Option.isSome(text)) return text
    }
    return Option.none()
  })
