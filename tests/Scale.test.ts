import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"

const child = fileURLToPath(new URL("./scale/heap.ts", import.meta.url))

/** Runs the heap child on `samples` generated rows (always under Node, which can expose its collector). */
const heapOf = (samples: number) =>
  Effect.async<{ samples: number; before: number; peak: number }, Error>((resume) => {
    execFile("node", ["--expose-gc", "--import", "tsx", child, String(samples)], { timeout: 240_000 }, (error, out) => {
      if (error !== null) resume(Effect.fail(error))
      else resume(Effect.succeed(JSON.parse(out.trim().split("\n").pop()!)))
    })
  })

describe("a run's memory is flat in its size", () => {
  it.effect(
    "the live heap while 200,000 samples run on SQLite stays within a small bound of 20,000's",
    () =>
      Effect.gen(function*() {
        const small = yield* heapOf(20_000)
        const large = yield* heapOf(200_000)
        assert.strictEqual(small.samples, 20_000)
        assert.strictEqual(large.samples, 200_000)
        const growth = (large.peak - large.before) - (small.peak - small.before)
        // ten times the samples: a run that kept even 100 bytes a sample would grow by 18 MB
        assert.isBelow(growth, 8 * 1024 * 1024, `the live heap grew by ${Math.round(growth / 1024 / 1024)} MB`)
      }),
    { timeout: 600_000 }
  )
})
