import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../../..", import.meta.url))
const main = fileURLToPath(new URL("../src/main.ts", import.meta.url))

const run = (args: ReadonlyArray<string>) =>
  Effect.async<{ readonly code: number | null; readonly output: string }>((resume) => {
    const child = spawn("node", ["--import", "tsx", main, ...args], { cwd: root, stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
    child.on("exit", (code) => resume(Effect.succeed({ code, output })))
  })

describe("examples/harbor", () => {
  it.live("evaluates the Harbor tasks through the fake harbor, and says so", () =>
    Effect.gen(function*() {
      const { code, output } = yield* run(["--fake"])
      assert.strictEqual(code, 0, output)
      assert.include(output, "nested runs by the fake harbor (--fake)")
      assert.match(output, /holdout-examples\/hello-file\s+1\n/)
      assert.match(output, /holdout-examples\/sum-numbers\s+1\n/)
      assert.include(output, "validation (non_viewable): mean 1.000 over 1 task(s), no per-task results")
      // a non_viewable split shows no per-task result: its task never appears
      assert.notInclude(output, "reverse-words")
      assert.match(output, /train\s+2 runs/)
      assert.match(output, /validation\s+0 runs/)
    }), 60_000)
})
