import { assert, describe, it } from "@effect/vitest"
import { Ledger, TaskStore } from "@holdout/core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { render, type Report, session } from "../src/session.js"
import { budgets, classify, make, type Settings, splits } from "../src/stack.js"

// the stack the quickstart runs on SQLite, here on memory layers
const memory = make(Layer.merge(Ledger.layerMemory(budgets), TaskStore.layerMemory))

const remaining = (report: Report) =>
  Object.fromEntries(report.budgets.map((split) => [split.split, split.remaining.runs]))

describe("quickstart: the search on memory layers", () => {
  it.effect("spends the budgets over sessions, replays earlier work for free, and ends with budget-exhausted messages", () =>
    Effect.gen(function*() {
      const first = yield* session()
      assert.deepStrictEqual(first.charged, { train: 10, validation: 3 })
      assert.deepStrictEqual(remaining(first), { train: 6, validation: 1 })
      assert.deepStrictEqual(first.exhausted, [])
      assert.strictEqual(first.testRefusal, "AccessDenied")
      assert.strictEqual(first.rows.length, 10)
      const validated = first.rows.filter((row) => row.validation !== undefined)
      assert.strictEqual(validated.length, 3)
      // the verifier's score is the chosen settings' true accuracy on test
      const chosen = [...validated].sort((a, b) => b.validation! - a.validation!)[0]!
      assert.strictEqual(first.verifier?.candidate, chosen.candidate)
      const [, k, metric, features] = /^knn-k(\d+)-(\w+)-(\w+)$/.exec(chosen.candidate)!
      const settings = { k: Number(k), metric, features } as Settings
      const correct = splits.test.filter((flower) => classify(settings, flower) === flower.species).length
      assert.strictEqual(first.verifier?.score, correct / splits.test.length)
      assert.strictEqual(first.verifier?.samples, 30)

      const second = yield* session()
      assert.deepStrictEqual(second.charged, { train: 6, validation: 1 })
      assert.deepStrictEqual(remaining(second), { train: 0, validation: 0 })
      assert.strictEqual(second.rows.length, 16)
      assert.strictEqual(second.exhausted.length, 2)
      assert.include(second.exhausted[0], `"train"`)
      assert.include(second.exhausted[1], `"validation"`)

      const third = yield* session()
      assert.deepStrictEqual(third.charged, { train: 0, validation: 0 })
      assert.strictEqual(third.verifier?.candidate, second.verifier?.candidate)
      const text = render(third)
      assert.include(text, "validation (non_viewable)")
      assert.include(text, "budget left")
      assert.include(text, "verifier: ")
      assert.include(text, "budget exhausted: No runs left")
    }).pipe(Effect.provide(memory)))
})

const root = fileURLToPath(new URL("../../..", import.meta.url))
const main = fileURLToPath(new URL("../src/main.ts", import.meta.url))

const run = (runtime: "node" | "deno", dir: string) =>
  Effect.async<{ readonly code: number | null; readonly output: string }>((resume) => {
    const [command, args] = runtime === "node"
      ? ["node", ["--import", "tsx", main]] as const
      : [join(root, "node_modules", ".bin", "deno"), ["run", "-A", "--sloppy-imports", main]] as const
    const child = spawn(command, args, {
      cwd: root,
      env: { ...process.env, HOLDOUT_DIR: dir },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
    child.on("exit", (code) => resume(Effect.succeed({ code, output })))
  })

describe("quickstart: the program on its embedded SQLite store", () => {
  it.live(
    "prints the table, the budget left and the final score; runs again on Node and Deno until the budgets are spent",
    () => {
      const dir = mkdtempSync(join(tmpdir(), "holdout-quickstart-"))
      return Effect.gen(function*() {
        const first = yield* run("node", dir)
        assert.strictEqual(first.code, 0, first.output)
        assert.include(first.output, "train (viewable)")
        assert.include(first.output, "this session charged 10 train and 3 validation evaluation(s)")
        assert.match(first.output, /train\s+6 of 16 runs/)
        assert.match(first.output, /verifier: knn-\S+ scores \d+\.\d% on the hidden test split/)
        assert.notInclude(first.output, "budget exhausted")

        const second = yield* run("node", dir)
        assert.strictEqual(second.code, 0, second.output)
        assert.include(second.output, "this session charged 6 train and 1 validation evaluation(s)")
        assert.include(second.output, `budget exhausted: No runs left for the "train" split`)

        // Deno opens the same database through libsql
        const third = yield* run("deno", dir)
        assert.strictEqual(third.code, 0, third.output)
        assert.include(third.output, "this session charged 0 train and 0 validation evaluation(s)")
        assert.include(third.output, `budget exhausted: No runs left for the "validation" split`)
        for (const output of [first.output, second.output, third.output]) {
          assert.notMatch(output, /quickstart failed|\n\s+at /, "a stack trace was printed")
        }
      }).pipe(Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true }))))
    },
    120_000
  )
})
