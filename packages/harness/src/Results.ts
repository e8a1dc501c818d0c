/**
 * The results directory an optimizer reads: each evaluation it made, in a directory of its own,
 * projected by the split's tier. `viewable`: `summary.json` and one `<sampleId>.json` per sample;
 * `non_viewable`: `summary.json` only (no sample id, nothing per sample); `no_access` and admin
 * (verifier) runs: nothing at all.
 *
 * Directories are named `<split>__<candidate>__e<N>`, N counting up past the highest already
 * there, so a re-evaluation never overwrites earlier evidence. A directory is written under a
 * hidden temporary name and renamed into place, so a reader never sees a partial one.
 *
 * @since 0.1.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { HoldoutError, type Model, type SplitAccess, View } from "@holdout/core"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Random from "effect/Random"

const safe = (text: string) => text.replace(/[^A-Za-z0-9._-]/g, "_").replace(/^\.+/, "_").slice(0, 40)

/**
 * Writes the optimizer's view of an experiment under `dir`; returns the directory written, or
 * nothing when the optimizer may see nothing of it.
 *
 * @since 0.1.0
 * @category combinators
 */
export const write = (
  dir: string,
  experiment: Model.Experiment
): Effect.Effect<Option.Option<string>, HoldoutError.StoreError, SplitAccess.SplitAccess | FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    if (experiment.run.admin) return Option.none()
    const view = yield* Effect.option(View.experiment(experiment))
    if (Option.isNone(view)) return Option.none()
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    yield* fs.makeDirectory(dir, { recursive: true })
    const prefix = `${safe(experiment.run.split)}__${safe(experiment.run.candidate.id)}__e`
    const partial = path.join(dir, `.partial-${safe(experiment.run.runId)}-${yield* Random.nextIntBetween(0, 1_000_000_000)}`)
    yield* fs.remove(partial, { recursive: true }).pipe(Effect.ignore)
    yield* fs.makeDirectory(partial)
    yield* fs.writeFileString(path.join(partial, "summary.json"), JSON.stringify(view.value.summary, null, 2) + "\n")
    if (view.value._tag === "viewable") {
      for (const sample of view.value.samples) {
        yield* fs.writeFileString(path.join(partial, `${sample.sampleId}.json`), JSON.stringify(sample, null, 2) + "\n")
      }
    }
    // the next free number; a concurrent writer that took it makes the rename fail: take the next
    for (let tries = 0; tries < 100; tries++) {
      let last = 0
      for (const entry of yield* fs.readDirectory(dir)) {
        if (!entry.startsWith(prefix)) continue
        const number = Number(entry.slice(prefix.length))
        if (Number.isInteger(number)) last = Math.max(last, number)
      }
      const target = path.join(dir, `${prefix}${last + 1}`)
      if (yield* fs.exists(target)) continue
      const moved = yield* Effect.either(fs.rename(partial, target))
      if (moved._tag === "Right") return Option.some(target)
    }
    return yield* Effect.fail(new HoldoutError.StoreError({ op: "writeResults", message: `No free directory name under ${dir}.` }))
  }).pipe(
    Effect.catchTags({
      BadArgument: (error) => Effect.fail(new HoldoutError.StoreError({ op: "writeResults", message: error.message })),
      SystemError: (error) => Effect.fail(new HoldoutError.StoreError({ op: "writeResults", message: error.message }))
    })
  )
