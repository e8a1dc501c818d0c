import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
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

/** A scratch directory holding a `file`, and a writer of its own. */
const withFile = Effect.map(scratch, (dir) => {
  const file = join(dir, "file")
  writeFileSync(file, "")
  return { dir, file, files: FileWorker.make() }
})

/** A directory `run` in `parent`, with `files`, in one request (written aside as `.partial`). */
const wholeDirectory = (
  parent: string,
  files: ReadonlyArray<readonly [string, string]> = [["a.json", "{}\n"]]
): FileWorker.Request => ({
  op: "writeDirectory",
  target: join(parent, "run"),
  partial: join(parent, ".partial"),
  parent,
  files,
  first: true,
  last: true
})

describe("FileWorker: file writes off the event loop", () => {
  it.scoped("writes a directory under a partial name (its missing parent made) and publishes it once", () =>
    Effect.gen(function*() {
      const dir = yield* scratch
      const files = FileWorker.make()
      const parent = join(dir, "results")
      const target = join(parent, "run")
      const write = (partial: string, names: ReadonlyArray<string>, first: boolean, last: boolean) =>
        files.run({
          op: "writeDirectory",
          target,
          partial: join(parent, partial),
          parent,
          files: names.map((name) => [name, `${name}\n`] as const),
          first,
          last
        })
      // in one request
      assert.strictEqual(yield* write(".one", ["a.json", "b.json"], true, true), "moved")
      assert.deepStrictEqual(readdirSync(parent), ["run"])
      assert.deepStrictEqual(readdirSync(target).sort(), ["a.json", "b.json"])
      assert.strictEqual(readFileSync(join(target, "b.json"), "utf8"), "b.json\n")
      // a directory that is there is not written again: nothing is made
      assert.strictEqual(yield* write(".two", ["c.json"], true, true), "exists")
      assert.deepStrictEqual(readdirSync(parent), ["run"])
      // in pages: published by the last; a concurrent writer's directory is not published over it
      rmSync(target, { recursive: true })
      assert.strictEqual(yield* write(".paged", ["a.json"], true, false), "written")
      assert.strictEqual(yield* write(".paged", ["b.json"], false, false), "written")
      assert.deepStrictEqual(readdirSync(parent), [".paged"])
      assert.strictEqual(yield* write(".other", ["z.json"], true, true), "moved")
      assert.strictEqual(yield* write(".paged", ["c.json"], false, true), "exists")
      assert.deepStrictEqual(readdirSync(parent), ["run"])
      assert.deepStrictEqual(readdirSync(target), ["z.json"])
      yield* files.run({ op: "remove", path: target })
      yield* files.run({ op: "remove", path: join(parent, "never-made") })
      assert.deepStrictEqual(readdirSync(parent), [])
    }))

  it.scoped("a failed request is a StoreError saying what went wrong, and removes the partial directory", () =>
    Effect.gen(function*() {
      const { dir, file, files } = yield* withFile
      // a directory cannot be made inside a file
      const error = yield* Effect.flip(files.run(wholeDirectory(file)))
      assert.strictEqual(error._tag, "StoreError")
      assert.strictEqual(error.op, "writeResults")
      assert.match(error.message, /ENOTDIR/)
      // a file that cannot be written (its directory is missing), after others were
      const failed = yield* Effect.flip(
        files.run(wholeDirectory(dir, [["a.json", "{}\n"], ["missing/b.json", "{}\n"]]))
      )
      assert.match(failed.message, /ENOENT/)
      assert.deepStrictEqual(readdirSync(dir), ["file"])
    }))

  it.effect("a worker that dies fails what is pending with a StoreError; the next request starts another", () =>
    Effect.gen(function*() {
      // a stand-in worker that stops at a batch holding "die" and answers true to any other
      const files = FileWorker.make(`
import("node:worker_threads").then(({ parentPort }) => parentPort.on("message", (requests) => {
  if (requests.some((request) => request.path === "die")) process.exit(3)
  parentPort.postMessage(requests.map(() => ({ value: true })))
}))`)
      const died = yield* Effect.flip(files.run({ op: "remove", path: "die" }))
      assert.strictEqual(died._tag, "StoreError")
      assert.match(died.message, /the file writer stopped \(exit code 3\)/)
      assert.isTrue((yield* files.run({ op: "remove", path: "alive" })) as unknown)
    }))

  it.effect("requests made together go to the worker in one message, each with its own answer", () =>
    Effect.gen(function*() {
      // a stand-in worker that answers each request with the size of the batch it came in
      const files = FileWorker.make(`
import("node:worker_threads").then(({ parentPort }) => parentPort.on("message", (requests) => {
  parentPort.postMessage(requests.map(() => ({ value: requests.length })))
}))`)
      const sizes = yield* Effect.forEach(
        Array.from({ length: 20 }, (_, index) => index),
        (index) => files.run({ op: "remove", path: `p${index}` }) as Effect.Effect<unknown, unknown>,
        { concurrency: "unbounded" }
      )
      assert.isAbove(Math.max(...sizes.map(Number)), 1)
    }))

  it.scoped("a request that fails does not fail the others of its batch", () =>
    Effect.gen(function*() {
      const { dir, file, files } = yield* withFile
      const write = (parent: string) => files.run(wholeDirectory(parent))
      // a directory cannot be made inside a file
      const [good, bad] = yield* Effect.all([Effect.either(write(dir)), Effect.either(write(file))], {
        concurrency: "unbounded"
      })
      assert.deepStrictEqual(good, Either.right("moved"))
      assert.isTrue(Either.isLeft(bad) && /ENOTDIR/.test(bad.left.message))
      assert.deepStrictEqual(readdirSync(join(dir, "run")), ["a.json"])
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
