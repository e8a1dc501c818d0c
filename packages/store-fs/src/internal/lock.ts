/**
 * A single-writer lock: `<target>.lock`, naming its holder by a record of more than its pid. A lock
 * whose holder is gone is stale, and is taken over by exactly one of the processes that find it.
 * Released when the scope closes.
 *
 * The holder. A record is `{ pid, start, boot, host, token }`: `start` is the process's start
 * time (field 22 of `/proc/<pid>/stat`, in clock ticks since boot), `boot` the kernel's boot id,
 * `host` the host name, `token` random. A holder is alive when a process with its pid exists, is not
 * a zombie, and started at the recorded time: a pid reused by another process, or pid 1 of a
 * restarted container, has another start time and counts as dead, and so does any process of an
 * earlier boot. A lock of another host (another container sharing the directory: its pids are not
 * ours) counts as alive. Without `/proc` (macOS, Windows) the only test is a signal-0 probe of the
 * pid, and a holder that cannot be judged counts as alive (fail closed). Within one process, a
 * lock is held while its token is in this module's set of held tokens.
 *
 * Writing the lock file. Every file of the protocol is written whole to a private temporary file
 * and then hard-linked to its name: `link` fails if the name exists, so creation is exclusive and
 * the file is never seen empty or half-written. (Where hard links are unsupported, an exclusive
 * create is used instead, and a lock read empty is re-read before it is judged.)
 *
 * Taking over a stale lock. The naive "read, judge dead, remove, create" races: two processes both
 * judge the same dead holder, the first removes it and creates its own lock, the second then
 * removes the first one's live lock and creates another, and both hold. Here a lock file is never
 * removed by anyone but its live holder. To replace the lock of a dead holder whose token is T, a
 * process must first create the claim file `<lock>.<T>.takeover` (exclusive, with its own record),
 * check that the lock still names T, and then rename its claim over the lock, which replaces the
 * lock and consumes the claim in one atomic step. Why only one process can win:
 * - The lock file's content changes only by (a) an exclusive create while there is no lock file,
 *   (b) its live holder's removal on release (or rewrite with the same token), or (c) the rename of
 *   a claim for the token the lock names. A dead holder does neither (b) nor anything else.
 * - T is random and names one lock instance, so at most one claim for T exists at a time: the
 *   exclusive create admits one claimant. The claimant checks, after it holds the claim, that the
 *   lock still names T. From then until its rename, the lock cannot change: (a) needs no lock file,
 *   (b) needs T's holder, who is dead, and (c) needs the claim for T, which it holds. So its rename
 *   replaces exactly the dead holder's lock, and no one else's.
 * - A process that finds the claim for T taken waits while the claimant is alive, and starts over:
 *   it then sees the claimant's lock, alive, and gives up. A claimant that died before its rename
 *   leaves a claim with its own record; the claim is then itself a stale holder, taken over the same
 *   way with a claim for the claimant's token (`<lock>.<T'>.takeover`), and the check covers the
 *   whole chain (the lock names T, the claim for T names T', ...). Claims are never rewritten, so
 *   the chain is one line and the argument above applies to its last link.
 * - A claim created late, after the lock was already replaced, fails the check (tokens are never
 *   reused) and is removed by its creator; so are claims and temporary files left by dead
 *   processes, by the next holder.
 * Safety rests on judging a live holder alive; a holder wrongly judged dead is the one way to get
 * two holders, which is why the record carries the start time and every doubt counts as alive.
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/** Why a lock could not be taken. */
export type LockFailure =
  | { readonly _tag: "Held"; readonly pid: number | undefined }
  | { readonly _tag: "Io"; readonly message: string }

/** A failed read or write of the lock's files. */
export type IoFailure = Extract<LockFailure, { readonly _tag: "Io" }>

/** What a lock file says about its holder. */
export interface LockRecord {
  readonly pid?: number | undefined
  readonly start?: string | undefined
  readonly boot?: string | undefined
  readonly host?: string | undefined
  readonly token: string
  /** Set once the holder knows the store the lock guards exists (see `Held.markStoreExists`). */
  readonly store?: boolean | undefined
}

/** A lock that is held. */
export interface Held {
  /** The record of the dead holder this lock was taken over from, if it was. */
  readonly previous: LockRecord | undefined
  /** Records in the lock that the store it guards exists, so that a later holder can tell it was deleted. */
  readonly markStoreExists: Effect.Effect<void, IoFailure>
  /**
   * Leaves the lock, marked, in place when the scope closes: for a store found damaged, so that
   * the next opener (a dead holder's lock is taken over) finds the same evidence.
   */
  readonly keepOnRelease: Effect.Effect<void>
}

interface ProcessLike {
  readonly pid?: number
  readonly kill?: (pid: number, signal: number) => unknown
}

const currentProcess = (): ProcessLike | undefined => (globalThis as { readonly process?: ProcessLike }).process

/** The pid of this process, where the runtime has one (Node, Deno). */
export const currentPid = (): number | undefined => currentProcess()?.pid

/** Whether a process with this pid exists, by a signal-0 probe; `true` when it cannot be told (fail closed). */
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

/** The tokens of the locks this process holds. */
const heldTokens = new Set<string>()

interface ProcStat {
  readonly state: string
  readonly start: string
}

/** Fields 3 (state) and 22 (start time) of `/proc/<pid>/stat`; field 2 is a name in parentheses that may hold anything. */
export const parseProcStat = (text: string): ProcStat | undefined => {
  const close = text.lastIndexOf(")")
  if (close === -1) return undefined
  const fields = text.slice(close + 1).trim().split(/\s+/)
  const state = fields[0]
  const start = fields[19]
  return state === undefined || start === undefined ? undefined : { state, start }
}

type Probe = { readonly _tag: "Stat"; readonly stat: ProcStat } | { readonly _tag: "Gone" } | {
  readonly _tag: "Unknown"
}

const readTrimmed = (fs: FileSystem.FileSystem, file: string) =>
  fs.readFileString(file).pipe(Effect.map((text) => text.trim()), Effect.option)

const probe = (fs: FileSystem.FileSystem, pid: number | "self"): Effect.Effect<Probe> =>
  fs.readFileString(`/proc/${pid}/stat`).pipe(
    Effect.map((text): Probe => {
      const stat = parseProcStat(text)
      return stat === undefined ? { _tag: "Unknown" } : { _tag: "Stat", stat }
    }),
    Effect.catchAll((error) =>
      Effect.succeed<Probe>(
        error._tag === "SystemError" && error.reason === "NotFound" ? { _tag: "Gone" } : { _tag: "Unknown" }
      )
    )
  )

/** This process, as its lock records name it. */
const describeSelf = (fs: FileSystem.FileSystem) =>
  Effect.gen(function*() {
    const self = yield* probe(fs, "self")
    const boot = yield* readTrimmed(fs, "/proc/sys/kernel/random/boot_id")
    const host = yield* readTrimmed(fs, "/proc/sys/kernel/hostname")
    return {
      procfs: self._tag === "Stat",
      start: self._tag === "Stat" ? self.stat.start : undefined,
      boot: boot._tag === "Some" ? boot.value : undefined,
      host: host._tag === "Some" ? host.value : undefined
    }
  })

type Self = Effect.Effect.Success<ReturnType<typeof describeSelf>>

/** Whether the holder a record names is alive; every doubt counts as alive. */
const holderAlive = (
  fs: FileSystem.FileSystem,
  self: Self,
  record: LockRecord,
  override: ((pid: number) => boolean) | undefined
): Effect.Effect<boolean> =>
  Effect.gen(function*() {
    const pid = record.pid
    if (pid === undefined) return !record.token.startsWith("unreadable:")
    if (pid === currentPid() && (record.start === undefined || record.start === self.start)) {
      return heldTokens.has(record.token)
    }
    if (override !== undefined) return override(pid)
    if (record.host !== undefined && self.host !== undefined && record.host !== self.host) return true
    if (record.boot !== undefined && self.boot !== undefined && record.boot !== self.boot) return false
    if (!self.procfs) return isAlive(pid)
    const found = yield* probe(fs, pid)
    switch (found._tag) {
      case "Gone":
        return false
      case "Unknown":
        return isAlive(pid)
      case "Stat":
        if (found.stat.state === "Z" || found.stat.state === "X" || found.stat.state === "x") return false
        return record.start === undefined || record.start === found.stat.start
    }
  })

const decodeRecord = (text: string): LockRecord | undefined => {
  try {
    const parsed = JSON.parse(text) as Record<string, unknown>
    if (typeof parsed !== "object" || parsed === null) return undefined
    const token = typeof parsed.token === "string" ? parsed.token : `pid:${String(parsed.pid)}`
    return {
      pid: typeof parsed.pid === "number" ? parsed.pid : undefined,
      start: typeof parsed.start === "string" ? parsed.start : undefined,
      boot: typeof parsed.boot === "string" ? parsed.boot : undefined,
      host: typeof parsed.host === "string" ? parsed.host : undefined,
      token,
      store: parsed.store === true
    }
  } catch {
    return undefined
  }
}

const ioFailure = (error: { readonly message: string }): IoFailure => ({ _tag: "Io", message: error.message })

const isReason = (error: unknown, reason: string) =>
  typeof error === "object" && error !== null && "_tag" in error && error._tag === "SystemError" &&
  "reason" in error && error.reason === reason

/** A pause that does not depend on the `Clock` service (tests run with a test clock). */
const pause = (millis: number) =>
  Effect.async<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), millis)
    return Effect.sync(() => clearTimeout(timer))
  })

/** File-name-safe form of a token. */
const keyOf = (token: string) => token.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 120)

type Created = "created" | "exists" | "retry"

/** Takes the lock of `target`, or fails. */
export const acquire = (
  fs: FileSystem.FileSystem,
  path: Path.Path,
  target: string,
  alive?: (pid: number) => boolean
): Effect.Effect<Held, LockFailure, Scope.Scope> =>
  Effect.gen(function*() {
    const lockFile = `${target}.lock`
    const dir = path.dirname(lockFile)
    const prefix = `${path.basename(lockFile)}.`
    const self = yield* describeSelf(fs)
    const token = `${currentPid() ?? "unknown"}-${globalThis.crypto.randomUUID()}`
    let record: LockRecord = { pid: currentPid(), start: self.start, boot: self.boot, host: self.host, token }
    let written = 0
    const temporary = () => `${lockFile}.${token}.${written++}.tmp`
    const claimOf = (holderToken: string) => `${lockFile}.${keyOf(holderToken)}.takeover`

    const writeTemporary = (file: string, content: LockRecord) =>
      Effect.scoped(Effect.gen(function*() {
        const handle = yield* fs.open(file, { flag: "w" })
        yield* handle.writeAll(new TextEncoder().encode(JSON.stringify(content) + "\n"))
        yield* handle.sync
      }))

    /** Creates `file` holding `content`, whole, if it does not exist. */
    const createExclusive = (file: string, content: LockRecord): Effect.Effect<Created, LockFailure> => {
      const aside = temporary()
      return writeTemporary(aside, content).pipe(
        Effect.zipRight(fs.link(aside, file)),
        Effect.as<Created>("created"),
        Effect.catchAll((error): Effect.Effect<Created, LockFailure> => {
          if (isReason(error, "AlreadyExists")) return Effect.succeed("exists")
          // our temporary file was swept by a new holder: try again
          if (isReason(error, "NotFound")) return Effect.succeed("retry")
          // no hard links here: an exclusive create, whose content a reader may briefly see empty
          return fs.writeFileString(file, JSON.stringify(content) + "\n", { flag: "wx" }).pipe(
            Effect.as<Created>("created"),
            Effect.catchAll((fallback) =>
              isReason(fallback, "AlreadyExists") ? Effect.succeed<Created>("exists") : Effect.fail(ioFailure(fallback))
            )
          )
        }),
        Effect.ensuring(fs.remove(aside).pipe(Effect.ignore))
      )
    }

    /** The record in `file`: undefined when there is no file; a stand-in when it stays unreadable. */
    const readRecord = (file: string): Effect.Effect<LockRecord | undefined, LockFailure> =>
      Effect.gen(function*() {
        for (let tries = 0;; tries++) {
          const text = yield* fs.readFileString(file).pipe(
            Effect.map((text): string | undefined => text),
            Effect.catchAll((error) =>
              isReason(error, "NotFound") ? Effect.succeed(undefined) : Effect.fail(ioFailure(error))
            )
          )
          if (text === undefined) return undefined
          const decoded = decodeRecord(text)
          if (decoded !== undefined) return decoded
          // being written without hard links, or left empty by a crash in the middle of that
          if (tries >= 5) return { token: `unreadable:${text.length}:${text.slice(0, 40)}` }
          yield* pause(20)
        }
      })

    const tokenIn = (file: string) => Effect.map(readRecord(file), (found) => found?.token)

    // One takeover attempt: "held" (taken), "locked" (a live holder), or "again" (the state moved on).
    const attempt: Effect.Effect<
      { readonly _tag: "Taken"; readonly previous: LockRecord | undefined } | {
        readonly _tag: "Locked"
        readonly pid: number | undefined
      } | { readonly _tag: "Again" },
      LockFailure
    > = Effect.gen(function*() {
      const created = yield* createExclusive(lockFile, record)
      if (created === "created") return { _tag: "Taken", previous: undefined } as const
      if (created === "retry") return { _tag: "Again" } as const
      const current = yield* readRecord(lockFile)
      if (current === undefined) return { _tag: "Again" } as const
      if (yield* holderAlive(fs, self, current, alive)) return { _tag: "Locked", pid: current.pid } as const
      // the chain: the dead holder, then every claimant that died before its rename
      const chain: Array<LockRecord> = [current]
      while (chain.length <= 8) {
        const claim = claimOf(chain[chain.length - 1]!.token)
        const claimed = yield* createExclusive(claim, record)
        if (claimed === "retry") return { _tag: "Again" } as const
        if (claimed === "created") {
          let intact = (yield* tokenIn(lockFile)) === chain[0]!.token
          for (let index = 1; intact && index < chain.length; index++) {
            intact = (yield* tokenIn(claimOf(chain[index - 1]!.token))) === chain[index]!.token
          }
          if (!intact) {
            yield* fs.remove(claim).pipe(Effect.ignore)
            return { _tag: "Again" } as const
          }
          yield* fs.rename(claim, lockFile).pipe(Effect.mapError(ioFailure))
          return { _tag: "Taken", previous: chain[0] } as const
        }
        const claimant = yield* readRecord(claim)
        if (claimant === undefined) return { _tag: "Again" } as const
        if (yield* holderAlive(fs, self, claimant, alive)) {
          yield* pause(10 + Math.random() * 20)
          return { _tag: "Again" } as const
        }
        chain.push(claimant)
      }
      return { _tag: "Locked", pid: current.pid } as const
    })

    const take = Effect.gen(function*() {
      for (let round = 0; round < 200; round++) {
        const outcome = yield* attempt
        if (outcome._tag === "Locked") return yield* Effect.fail<LockFailure>({ _tag: "Held", pid: outcome.pid })
        if (outcome._tag === "Taken") {
          heldTokens.add(token)
          return outcome.previous
        }
      }
      return yield* Effect.fail<LockFailure>({ _tag: "Held", pid: undefined })
    })

    // Claims and temporary files of the protocol other than ours are dead weight once we hold the lock.
    const sweep = fs.readDirectory(dir).pipe(
      Effect.flatMap((names) =>
        Effect.forEach(
          names.filter((name) =>
            name.startsWith(prefix) && !name.includes(keyOf(token)) &&
            (name.endsWith(".takeover") || name.endsWith(".tmp"))
          ),
          (name) => fs.remove(path.join(dir, name)).pipe(Effect.ignore),
          { discard: true }
        )
      ),
      Effect.ignore
    )

    let keep = false
    const release = Effect.gen(function*() {
      heldTokens.delete(token)
      if (keep) return
      const found = yield* tokenIn(lockFile)
      if (found === token) yield* fs.remove(lockFile)
    }).pipe(Effect.ignore)

    const previous = yield* Effect.acquireRelease(take, () => release)
    if (previous !== undefined) {
      yield* Effect.logWarning(`Took over the stale lock ${lockFile} of process ${previous.pid ?? "unknown"}`)
    }
    yield* sweep

    const markStoreExists = Effect.suspend(() => {
      if (record.store === true) return Effect.void
      record = { ...record, store: true }
      const aside = temporary()
      return writeTemporary(aside, record).pipe(
        Effect.zipRight(fs.rename(aside, lockFile)),
        Effect.mapError(ioFailure),
        Effect.tapError(() => fs.remove(aside).pipe(Effect.ignore))
      )
    })
    return {
      previous,
      markStoreExists,
      keepOnRelease: Effect.zipRight(
        Effect.ignore(markStoreExists),
        Effect.sync(() => {
          keep = true
        })
      )
    } satisfies Held
  })
