/**
 * File writes off the event loop, for the results directories (`Results`): a worker thread runs a
 * few file-system operations with synchronous calls, one request at a time. Requests go to it in
 * batches (`GroupCommit`: those made while a batch is with the worker go together in the next), and
 * a batch costs the event loop one message each way, where the thread pool costs three round trips
 * a file (open, write, close), each with its callback, and competes with the event loop for the
 * cores. Each request of a batch has its own answer: one that fails fails alone.
 *
 * - One worker per process, started on first use. It keeps the process alive only while a request
 *   is pending. If it dies, the requests pending fail with a `StoreError`, and the next request
 *   starts another worker.
 * - Its code is plain JavaScript run from a string (`eval`), importing only Node's built-in
 *   modules: it needs no file of its own (the bundled `holdout` executable carries none), and runs
 *   on Node and Deno alike.
 * - `FileWorker` is the service `Results` writes through; without one in the context, `shared` is
 *   used. A test provides its own to make a write fail.
 */
import { GroupCommit, HoldoutError } from "@holdout/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import { Worker } from "node:worker_threads"

/**
 * What the worker does:
 * - `writeDirectory`: writes each `[name, text]` of `files` into the directory `partial`, made (with
 *   its `parent` when missing) by the `first` request of a directory, and renames it to `target` with
 *   the `last`: `"moved"`. A directory comes in one request, or in several (a page of files each).
 *   `"exists"` when `target` is already there, at the first request (nothing is made) or at the last
 *   (a concurrent writer was first; `partial` is removed); `"written"` when more is to come. A failed
 *   request removes `partial`.
 * - `remove`: removes `path` and everything in it, if it is there.
 */
export type Request =
  | {
    readonly op: "writeDirectory"
    readonly target: string
    readonly partial: string
    readonly parent: string
    readonly files: ReadonlyArray<readonly [string, string]>
    readonly first: boolean
    readonly last: boolean
  }
  | { readonly op: "remove"; readonly path: string }

/** What each request answers. */
export interface Answers {
  readonly writeDirectory: "moved" | "exists" | "written"
  readonly remove: void
}

/** Runs requests in a worker (`make`, `shared`), or as a test would have them run. */
export class FileWorker extends Context.Tag("@holdout/harness/FileWorker")<FileWorker, {
  readonly run: <R extends Request>(request: R) => Effect.Effect<Answers[R["op"]], HoldoutError.StoreError>
}>() {}

// The worker's code: each message, a batch of requests, is answered with a reply per request, in
// order: `{ value }` or `{ error }` (the error's message, which names the system error: `ENOSPC: no
// space left on device, open …`).
const source = `
Promise.all([import("node:worker_threads"), import("node:fs"), import("node:path")]).then(([threads, fs, path]) => {
  const port = threads.parentPort
  const remove = (dir) => fs.rmSync(dir, { recursive: true, force: true })
  const makeDirectory = (dir, parent) => {
    try {
      fs.mkdirSync(dir)
    } catch (error) {
      if (error.code !== "ENOENT") throw error
      fs.mkdirSync(parent, { recursive: true })
      fs.mkdirSync(dir)
    }
  }
  const writeDirectory = (request) => {
    if (request.first) {
      // only whole directories are ever renamed into place: one that exists is complete
      if (fs.existsSync(request.target)) return "exists"
      makeDirectory(request.partial, request.parent)
    }
    try {
      for (const [name, text] of request.files) fs.writeFileSync(path.join(request.partial, name), text)
      if (!request.last) return "written"
      try {
        fs.renameSync(request.partial, request.target)
        return "moved"
      } catch (error) {
        if (!fs.existsSync(request.target)) throw error
        remove(request.partial)
        return "exists"
      }
    } catch (error) {
      remove(request.partial)
      throw error
    }
  }
  const run = (request) => {
    switch (request.op) {
      case "writeDirectory":
        return writeDirectory(request)
      case "remove":
        return remove(request.path)
    }
    throw new Error("unknown request " + JSON.stringify(request.op))
  }
  port.on("message", (requests) => {
    port.postMessage(requests.map((request) => {
      try {
        return { value: run(request) }
      } catch (error) {
        return { error: String(error.message ?? error) }
      }
    }))
  })
})
`

/** The answer to one request: its value, or the message of its error. */
interface Reply {
  readonly value?: unknown
  readonly error?: string
}

const failure = (message: string) => new HoldoutError.StoreError({ op: "writeResults", message })

/** Outlives every caller: the batching fiber of a writer runs as long as the process. */
const processScope = Effect.runSync(Scope.make())

/**
 * A worker of its own, started on first use (`shared` is the process's); `code` is what it runs
 * (a test's stand-in, by default the requests above). Requests made while a batch is with the worker
 * go to it together in the next (`GroupCommit`): one message each way per batch, not per request.
 */
export const make = (code: string = source): FileWorker["Type"] => {
  let worker: Worker | undefined
  // the batch with the worker, whose replies (or the worker's end) it awaits: one at a time, since
  // `GroupCommit` sends the next batch once this one is answered
  let awaiting: ((replies: ReadonlyArray<Reply> | { readonly ended: string }) => void) | undefined

  const answer = (replies: ReadonlyArray<Reply> | { readonly ended: string }) => {
    const resume = awaiting
    if (resume === undefined) return
    awaiting = undefined
    // the worker holds the process open while, and only while, an answer is awaited
    worker?.unref()
    resume(replies)
  }

  const started = (): Worker => {
    if (worker !== undefined) return worker
    const made = new Worker(code, { eval: true })
    const dead = (message: string) => {
      if (worker === made) worker = undefined
      answer({ ended: message })
    }
    made.on("message", (replies: ReadonlyArray<Reply>) => answer(replies))
    made.on("error", (error) => dead(`the file writer failed: ${error.message}`))
    made.on("exit", (code) => dead(`the file writer stopped (exit code ${code})`))
    made.unref()
    worker = made
    return made
  }

  /** Sends one batch and waits for its replies. */
  const send = (requests: ReadonlyArray<Request>) =>
    Effect.async<ReadonlyArray<Exit.Exit<unknown, HoldoutError.StoreError>>, HoldoutError.StoreError>((resume) => {
      let target: Worker
      try {
        target = started()
      } catch (error) {
        // a runtime that cannot start a worker thread
        return resume(Effect.fail(failure(`the file writer could not start: ${String(error)}`)))
      }
      target.ref()
      awaiting = (replies) =>
        resume(
          "ended" in replies
            ? Effect.fail(failure(replies.ended))
            : Effect.succeed(requests.map((_, index) => {
              const reply = replies[index]
              return reply === undefined || reply.error !== undefined
                ? Exit.fail(failure(reply?.error ?? "the file writer gave no answer"))
                : Exit.succeed(reply.value)
            }))
        )
      target.postMessage(requests)
    })

  // the batching fiber starts with the first request, not when the module is loaded
  let batches: GroupCommit.GroupCommit<Request, unknown, HoldoutError.StoreError> | undefined
  return {
    // an interrupted caller stops waiting; the worker finishes the request regardless
    run: <R extends Request>(request: R) =>
      Effect.suspend(() => {
        batches ??= Effect.runSync(Scope.extend(GroupCommit.make(send), processScope))
        return batches.submit(request) as Effect.Effect<Answers[R["op"]], HoldoutError.StoreError>
      })
  }
}

/** The process's worker. */
export const shared: FileWorker["Type"] = make()

/** The `FileWorker` of the context, else `shared`. */
export const current: Effect.Effect<FileWorker["Type"]> = Effect.map(
  Effect.serviceOption(FileWorker),
  Option.getOrElse(() => shared)
)
