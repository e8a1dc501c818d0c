/**
 * The results directory an optimizer reads: each evaluation it made, in a directory of its own,
 * projected by the split's tier. `viewable`: `summary.json` and one `<sampleId>.json` per sample;
 * `non_viewable`: `summary.json` only (no sample id, nothing per sample); `no_access` and admin
 * (verifier) runs: nothing at all.
 *
 * A directory belongs to one run: `<split>__<candidate>__<created>__<run>`, where `<created>` is the
 * run's creation time (UTC, `20250102T030405678Z`, so that a listing sorts by time) and `<run>` is
 * derived from the run id. The same run always maps to the same directory, and it is written once:
 * a replay of an idempotency key (which returns the same run) finds its directory there and writes
 * nothing; two runs never share a directory, so concurrent evaluations never collide and nothing is
 * overwritten. A directory is written under a hidden `.partial-*` name and renamed into place, so a
 * reader never sees a partial one; the partial one is removed when the write fails.
 *
 * The files are written by a worker thread (`internal/fileWorker`), a page of samples a request, so
 * that the event loop serving requests spends a message per page on them, not a file operation per
 * file.
 *
 * @since 0.1.0
 */
import * as Path from "@effect/platform/Path"
import type { HoldoutError, Model, SplitAccess } from "@holdout/core"
import { TaskStore, View } from "@holdout/core"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as FileWorker from "./internal/fileWorker.js"

const safe = (text: string) => text.replace(/[^A-Za-z0-9._-]/g, "_").replace(/^\.+/, "_").slice(0, 40)

/** `2025-01-02T03:04:05.678Z` as `20250102T030405678Z`. */
const compactTime = (millis: number) => new Date(millis).toISOString().replace(/[-:.]/g, "")

/**
 * The first 16 hex digits of the SHA-256 of the run id: a fixed-length name part, distinct for
 * distinct runs (the run id itself may be long or hold any character).
 */
const runDigest = (runId: string) =>
  Effect.map(
    Effect.promise(() => globalThis.crypto.subtle.digest("SHA-256", new TextEncoder().encode(runId))),
    (digest) => Array.from(new Uint8Array(digest).slice(0, 8), (byte) => byte.toString(16).padStart(2, "0")).join("")
  )

/**
 * The name of a run's results directory (inside the results directory).
 *
 * @since 0.1.0
 * @category constructors
 */
export const directoryName = (run: Model.RunRecord): Effect.Effect<string> =>
  Effect.map(
    runDigest(run.runId),
    (digest) => `${safe(run.split)}__${safe(run.candidate.id)}__${compactTime(run.createdAt)}__${digest}`
  )

/**
 * Writes the optimizer's view of an experiment under `dir`, once per run; returns the run's
 * directory (also when it was already there), or nothing when the optimizer may see nothing of it.
 *
 * @since 0.1.0
 * @category combinators
 */
export const write = (
  dir: string,
  experiment: Model.Experiment
): Effect.Effect<
  Option.Option<string>,
  HoldoutError.StoreError,
  SplitAccess.SplitAccess | TaskStore.TaskStore | Path.Path
> =>
  Effect.gen(function*() {
    if (experiment.run.admin) return Option.none()
    const view = yield* Effect.option(View.experiment(experiment))
    if (Option.isNone(view)) return Option.none()
    const files = yield* FileWorker.current
    const path = yield* Path.Path
    const store = yield* TaskStore.TaskStore
    const name = yield* directoryName(experiment.run)
    const target = path.join(dir, name)
    // only whole directories are ever renamed into place: one that exists is this run's, complete
    if (yield* files.run({ op: "exists", path: target })) return Option.some(target)
    const partial = path.join(dir, `.partial-${name}-${yield* Random.nextIntBetween(0, 1_000_000_000)}`)
    // the results directory is made when the first write finds it missing, not on every write
    yield* files.run({ op: "makeDirectory", path: partial, parent: dir })
    let published = false
    const written = Effect.gen(function*() {
      yield* files.run({
        op: "writeFiles",
        dir: partial,
        files: [["summary.json", JSON.stringify(view.value.summary, null, 2) + "\n"]]
      })
      if (view.value._tag === "viewable") {
        // page by page from the store: a run of any size is written in flat memory, a page a request
        yield* TaskStore.forEachPage(store, experiment.run.runId, (page) =>
          Effect.as(
            files.run({
              op: "writeFiles",
              dir: partial,
              files: page.map((sample) => [`${sample.sampleId}.json`, JSON.stringify(sample, null, 2) + "\n"] as const)
            }),
            true
          ))
      }
      // "exists": a concurrent writer of the same run was first (its directory is not replaced)
      published = (yield* files.run({ op: "publish", from: partial, to: target })) === "moved"
      return Option.some(target)
    })
    // what a failed, interrupted or pre-empted write left is removed (nothing is left after a rename)
    return yield* Effect.ensuring(
      written,
      Effect.suspend(() => published ? Effect.void : files.run({ op: "remove", path: partial })).pipe(Effect.ignore)
    )
  })
