/**
 * A single-writer lock: `<target>.lock`, created exclusively and holding the owner's pid. A lock
 * whose owner is no longer alive is stale and taken over. Released when the scope closes.
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/** Why a lock could not be taken. */
export type LockFailure =
  | { readonly _tag: "Held"; readonly pid: number | undefined }
  | { readonly _tag: "Io"; readonly message: string }

interface ProcessLike {
  readonly pid?: number
  readonly kill?: (pid: number, signal: number) => unknown
}

const currentProcess = (): ProcessLike | undefined =>
  (globalThis as { readonly process?: ProcessLike }).process

/** The pid of this process, where the runtime has one (Node, Deno). */
export const currentPid = (): number | undefined => currentProcess()?.pid

/** Whether a process with this pid is alive; `true` when it cannot be told (fail closed). */
export const isAlive = (pid: number): boolean => {
  const kill = currentProcess()?.kill
  if (kill === undefined) return true
  try {
    kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: it exists but belongs to someone else
    return (error as { readonly code?: unknown }).code === "EPERM"
  }
}

const ioFailure = (error: { readonly message: string }): LockFailure => ({ _tag: "Io", message: error.message })

/** Takes the lock of `target`, or fails. */
export const acquire = (
  fs: FileSystem.FileSystem,
  target: string,
  alive: (pid: number) => boolean = isAlive
): Effect.Effect<void, LockFailure, Scope.Scope> => {
  const lockFile = `${target}.lock`
  const token = `${currentPid() ?? "unknown"}:${globalThis.crypto.randomUUID()}`
  const create = fs.writeFileString(lockFile, JSON.stringify({ pid: currentPid(), token }) + "\n", { flag: "wx" })
  const holder = fs.readFileString(lockFile).pipe(
    Effect.map((text) => {
      try {
        const parsed = JSON.parse(text) as { readonly pid?: unknown }
        return typeof parsed.pid === "number" ? parsed.pid : undefined
      } catch {
        return undefined
      }
    }),
    Effect.orElseSucceed(() => undefined)
  )
  const attempt = (retakes: number): Effect.Effect<void, LockFailure> =>
    create.pipe(
      Effect.catchAll((error): Effect.Effect<void, LockFailure> => {
        if (error._tag !== "SystemError" || error.reason !== "AlreadyExists") return Effect.fail(ioFailure(error))
        return Effect.flatMap(holder, (pid) => {
          const stale = pid !== undefined && pid !== currentPid() && !alive(pid)
          if (!stale || retakes === 0) return Effect.fail<LockFailure>({ _tag: "Held", pid })
          return fs.remove(lockFile).pipe(
            Effect.catchAll(() => Effect.void),
            Effect.zipRight(Effect.logWarning(`Took over the stale lock ${lockFile} of process ${pid}`)),
            Effect.zipRight(attempt(retakes - 1))
          )
        })
      })
    )
  const release = fs.readFileString(lockFile).pipe(
    Effect.flatMap((text) => text.includes(token) ? fs.remove(lockFile) : Effect.void),
    Effect.catchAll(() => Effect.void)
  )
  return Effect.acquireRelease(attempt(1), () => release)
}
