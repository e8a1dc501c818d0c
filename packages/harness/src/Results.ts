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
 * file; the requests of concurrent writes share a message.
 *
 * @since 0.1.0
 */
import * as Path from "@effect/platform/Path"
import type { HoldoutError, Model, SplitAccess } from "@holdout/core"
import { TaskStore, View } from "@holdout/core"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import { createHash } from "node:crypto"
import * as FileWorker from "./internal/fileWorker.js"

const safe = (text: string) => text.replace(/[^A-Za-z0-9._-]/g, "_").replace(/^\.+/, "_").slice(0, 40)

/** `2025-01-02T03:04:05.678Z` as `20250102T030405678Z`. */
const compactTime = (millis: number) => new Date(millis).toISOString().replace(/[-:.]/g, "")

/**
 * The first 16 hex digits of the SHA-256 of the run id: a fixed-length name part, distinct for
 * distinct runs (the run id itself may be long or hold any character).
 */
const runDigest = (runId: string) => createHash("sha256").update(runId).digest("hex").slice(0, 16)

/**
 * The name of a run's results directory (inside the results directory).
 *
 * @since 0.1.0
 * @category constructors
 */
export const directoryName = (run: Model.RunRecord): Effect.Effect<string> =>
  Effect.sync(() =>
    `${safe(run.split)}__${safe(run.candidate.id)}__${compactTime(run.createdAt)}__${runDigest(run.runId)}`
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
    const writer = yield* FileWorker.current
    const path = yield* Path.Path
    const store = yield* TaskStore.TaskStore
    const name = yield* directoryName(experiment.run)
    const target = path.join(dir, name)
    const partial = path.join(dir, `.partial-${name}-${yield* Random.nextIntBetween(0, 1_000_000_000)}`)
    const summary = ["summary.json", JSON.stringify(view.value.summary, null, 2) + "\n"] as const
    // the directory is made by the first request, published by the last, removed by a failed one:
    // a run of a page or less is one request
    let first = true
    let done = false
    const send = (files: ReadonlyArray<readonly [string, string]>, last: boolean) =>
      Effect.map(
        writer.run({ op: "writeDirectory", target, partial, parent: dir, files, first, last }),
        (answer) => {
          first = false
          done = answer !== "written"
          return !done
        }
      )
    const written = view.value._tag === "viewable"
      // page by page from the store: a run of any size is written in flat memory, a page a request
      ? TaskStore.forEachPage(store, experiment.run.runId, (page) => {
        const samples = page.map((sample) =>
          [`${sample.sampleId}.json`, JSON.stringify(sample, null, 2) + "\n"] as const
        )
        // a page shorter than a whole one is the last (after a whole last page comes an empty one)
        return send(first ? [summary, ...samples] : samples, page.length < TaskStore.defaultPageSize)
      })
      : send([summary], true)
    // a write stopped between two requests leaves its partial directory: it is removed
    yield* Effect.ensuring(
      written,
      Effect.suspend(() => done ? Effect.void : writer.run({ op: "remove", path: partial })).pipe(Effect.ignore)
    )
    return Option.some(target)
  })
