/**
 * One write per charge: replays of one idempotency key answer as the first time and write no new
 * results directory; concurrent evaluations never collide on a results directory.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { readdirSync } from "node:fs"
import { join } from "node:path"
import { at, evaluate, rows, serve, spent } from "./sidecar.js"

const replies = 200

describe("replays", () => {
  it.scoped("200 parallel replays of one key: one charge, one results directory, the same experiment in every reply", () =>
    Effect.gen(function*() {
      const server = yield* serve({ budgets: { train: 3, validation: 2 } })
      const all = yield* Effect.forEach(
        Array.from({ length: replies }, (_, index) => index),
        () => evaluate(server, { split: "train", idempotencyKey: "replay-1" }),
        { concurrency: replies }
      )
      for (const reply of all) assert.strictEqual(reply.status, 200, reply.text)
      const first = all[0]!
      for (const reply of all) {
        assert.deepStrictEqual(at(reply.json, "experiment"), at(first.json, "experiment"))
        assert.strictEqual(at(reply.json, "resultPath"), at(first.json, "resultPath"))
      }
      assert.deepStrictEqual(yield* spent(server, "train"), { runs: 1, samples: 8 })
      const entries = readdirSync(server.resultsDir)
      assert.strictEqual(entries.length, 1, entries.join(" "))
      assert.strictEqual(join(server.resultsDir, entries[0]!), at(first.json, "resultPath"))
      assert.sameMembers(readdirSync(join(server.resultsDir, entries[0]!)), [
        "summary.json",
        ...rows(8).map((row) => `${row.index}.json`)
      ])

      // a replay after the fact answers the same and still writes nothing
      const later = yield* evaluate(server, { split: "train", idempotencyKey: "replay-1" })
      assert.deepStrictEqual([later.status, at(later.json, "experiment")], [200, at(first.json, "experiment")])
      assert.deepStrictEqual(readdirSync(server.resultsDir), entries)
      assert.deepStrictEqual(yield* spent(server, "train"), { runs: 1, samples: 8 })
    }))

  it.scoped("replays of a non_viewable key: one directory holding the summary only", () =>
    Effect.gen(function*() {
      const server = yield* serve()
      const all = yield* Effect.forEach(
        Array.from({ length: 50 }, (_, index) => index),
        () => evaluate(server, { split: "validation", idempotencyKey: "hidden-1" }),
        { concurrency: 50 }
      )
      for (const reply of all) assert.strictEqual(reply.status, 200, reply.text)
      assert.deepStrictEqual(yield* spent(server, "validation"), { runs: 1, samples: 12 })
      const entries = readdirSync(server.resultsDir)
      assert.strictEqual(entries.length, 1, entries.join(" "))
      assert.deepStrictEqual(readdirSync(join(server.resultsDir, entries[0]!)), ["summary.json"])
    }))

  it.scoped("concurrent evaluations of one candidate never collide: every charged request is a 200 with its own directory", () =>
    Effect.gen(function*() {
      const runs = 40
      const server = yield* serve({ budgets: { train: runs, validation: 2 } })
      const all = yield* Effect.forEach(
        Array.from({ length: runs }, (_, index) => index),
        (index) =>
          evaluate(server, index % 2 === 0 ? { split: "train" } : { split: "train", idempotencyKey: `key-${index}` }),
        { concurrency: runs }
      )
      for (const reply of all) assert.strictEqual(reply.status, 200, reply.text)
      const paths = new Set(all.map((reply) => String(at(reply.json, "resultPath"))))
      assert.strictEqual(paths.size, runs)
      const entries = readdirSync(server.resultsDir)
      assert.strictEqual(entries.length, runs, entries.filter((entry) => entry.startsWith(".")).join(" "))
      assert.deepStrictEqual(yield* spent(server, "train"), { runs, samples: runs * 8 })
    }))
})
