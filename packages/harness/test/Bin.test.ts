import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { holdout as runHoldout } from "./helpers.js"

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/entry/${name}`, import.meta.url))

const runArgs = (stack: string) => ["run", "--stack", stack, "--dataset", "qa", "--split", "train", "--candidate", "c"]

/** `holdout …` on Node; `interruptOn` sends SIGINT once stdout shows that text. */
const holdout = (args: ReadonlyArray<string>, env: Record<string, string>, interruptOn?: string) => {
  let interrupted = false
  return runHoldout(args, {
    env,
    onStdout: (stdout, child) => {
      if (interruptOn !== undefined && !interrupted && stdout.includes(interruptOn)) {
        interrupted = true
        // as a terminal's Ctrl-C would (not child.kill, after which Deno reports no exit code)
        process.kill(child.pid!, "SIGINT")
      }
    }
  })
}

describe("the holdout executable", () => {
  it.live("Ctrl-C interrupts the command: its resources are released before the process exits, with code 130", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(join(tmpdir(), "holdout-bin-"))
      const marker = join(dir, "released")
      const outcome = yield* holdout(runArgs(fixture("held.ts")), { HOLDOUT_TEST_MARKER: marker }, "acquired")
      const released = existsSync(marker) ? readFileSync(marker, "utf8") : "not released"
      rmSync(dir, { recursive: true, force: true })
      assert.strictEqual(released, "released", outcome.stderr)
      assert.strictEqual(outcome.code, 130)
    }))

  it.live("a defect is one line on stderr, and exit code 1", () =>
    Effect.gen(function*() {
      const outcome = yield* holdout(runArgs(fixture("dying.ts")), { HOLDOUT_TEST_DEFECT: "plain" })
      assert.strictEqual(outcome.code, 1)
      const errors = outcome.stderr.split("\n").filter((line) => line.startsWith("error: "))
      assert.deepStrictEqual(errors, ["error: Error: the first line"])
      assert.notInclude(outcome.stderr, "the second line")
      assert.notInclude(outcome.stderr, "    at ")
    }))

  it.live("better-sqlite3 without its native module says so, and what to do", () =>
    Effect.gen(function*() {
      const outcome = yield* holdout(runArgs(fixture("dying.ts")), { HOLDOUT_TEST_DEFECT: "sqlite" })
      assert.strictEqual(outcome.code, 1)
      assert.include(
        outcome.stderr,
        "error: better-sqlite3 is not built (its bindings file is missing): allow its install script, " +
          "`npm install-scripts approve better-sqlite3 && npm rebuild better-sqlite3`, or use another store kind\n"
      )
    }))
})
