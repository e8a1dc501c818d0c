import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as FileWorker from "../src/internal/fileWorker.js"

const isDeno = "Deno" in globalThis
const root = join(import.meta.dirname, "..", "..", "..")

/** A fresh temporary directory, removed when the test's scope closes. */
const scratch = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "holdout-file-worker-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

describe("FileWorker: file writes off the event loop", () => {
  it.scoped("makes a directory (and its missing parent), writes files, publishes it once, removes", () =>
    Effect.gen(function*() {
      const dir = yield* scratch
      const files = FileWorker.make()
      const parent = join(dir, "results")
      const partial = join(parent, ".partial")
      yield* files.run({ op: "makeDirectory", path: partial, parent })
      yield* files.run({ op: "writeFiles", dir: partial, files: [["a.json", "{}\n"], ["b.json", "[]\n"]] })
      assert.deepStrictEqual(readdirSync(partial).sort(), ["a.json", "b.json"])
      assert.strictEqual(readFileSync(join(partial, "b.json"), "utf8"), "[]\n")
      const target = join(parent, "run")
      assert.isFalse(yield* files.run({ op: "exists", path: target }))
      assert.strictEqual(yield* files.run({ op: "publish", from: partial, to: target }), "moved")
      assert.isTrue(yield* files.run({ op: "exists", path: target }))
      // a second directory for the same target is not published over the first
      const second = join(parent, ".second")
      yield* files.run({ op: "makeDirectory", path: second, parent })
      yield* files.run({ op: "writeFiles", dir: second, files: [["c.json", "{}\n"]] })
      assert.strictEqual(yield* files.run({ op: "publish", from: second, to: target }), "exists")
      assert.deepStrictEqual(readdirSync(target).sort(), ["a.json", "b.json"])
      yield* files.run({ op: "remove", path: second })
      yield* files.run({ op: "remove", path: join(parent, "never-made") })
      assert.deepStrictEqual(readdirSync(parent), ["run"])
    }))

  it.scoped("a failed operation is a StoreError saying what went wrong", () =>
    Effect.gen(function*() {
      const dir = yield* scratch
      const file = join(dir, "file")
      writeFileSync(file, "")
      // a directory cannot be made inside a file
      const error = yield* Effect.flip(
        FileWorker.make().run({ op: "makeDirectory", path: join(file, "x"), parent: file })
      )
      assert.strictEqual(error._tag, "StoreError")
      assert.strictEqual(error.op, "writeResults")
      assert.match(error.message, /ENOTDIR/)
    }))

  it.effect("a worker that dies fails what is pending with a StoreError; the next request starts another", () =>
    Effect.gen(function*() {
      // a stand-in worker that stops at the request for "die" and answers true to any other
      const files = FileWorker.make(`
import("node:worker_threads").then(({ parentPort }) => parentPort.on("message", ({ id, request }) => {
  if (request.path === "die") process.exit(3)
  parentPort.postMessage({ id, value: true })
}))`)
      const died = yield* Effect.flip(files.run({ op: "exists", path: "die" }))
      assert.strictEqual(died._tag, "StoreError")
      assert.match(died.message, /the file writer stopped \(exit code 3\)/)
      assert.isTrue(yield* files.run({ op: "exists", path: "alive" }))
    }))

  it.scoped(
    "keeps the process alive while a request is pending, and lets it end afterwards",
    () =>
      Effect.gen(function*() {
        const dir = yield* scratch
        const script = join(import.meta.dirname, "fixtures", "fileWorkerChild.ts")
        const [command, args] = isDeno
          ? [join(root, "node_modules", ".bin", "deno"), [
            "run",
            "-A",
            "--sloppy-imports",
            "--conditions",
            "@holdout/source"
          ]]
          : ["node", ["--import", "tsx", "--conditions=@holdout/source"]]
        const { code, out } = yield* Effect.async<{ readonly code: number | null; readonly out: string }>((resume) => {
          const child = spawn(command, [...args, script, dir], { cwd: root, stdio: ["ignore", "pipe", "inherit"] })
          let out = ""
          child.stdout.setEncoding("utf8").on("data", (chunk: string) => out += chunk)
          child.on("exit", (code) => resume(Effect.succeed({ code, out })))
          return Effect.sync(() => child.kill("SIGKILL"))
        }).pipe(
          // a worker that held the process open would never let it end
          Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error("the process did not end") })
        )
        assert.strictEqual(code, 0)
        assert.strictEqual(out.trim(), "done")
        assert.isTrue(existsSync(join(dir, "made")))
      }),
    { timeout: 60_000 }
  )
})
