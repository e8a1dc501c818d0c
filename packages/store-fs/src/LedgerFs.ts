/**
 * A durable `Ledger` on a file system: an append-only journal of reservations, one JSON line each.
 * A reservation is acknowledged only after its line is fsync'd; concurrent reservations share one
 * fsync (group commit). Opening replays the journal to learn what was spent; limits always come
 * from the configured budgets. One process at a time holds a journal (a lock file naming its holder).
 * A journal that is empty, missing beside a lock that shows it existed, or not a Holdout ledger
 * journal refuses to open (`LedgerCorrupt`) instead of opening as fresh budgets.
 *
 * @since 0.1.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { HoldoutError, Ledger, Model } from "@holdout/core"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Journal from "./internal/journal.js"
import * as Lock from "./internal/lock.js"

/**
 * Options of the file ledger. `path` is the journal file. `onCorrupt` says what to do with a
 * journal that cannot be read: `"fail"` (default) refuses to open with `LedgerCorrupt`;
 * `"exhaust"` moves the file aside for inspection and opens with every budget at 0.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly path: string
  readonly budgets: ReadonlyArray<Model.SplitBudget>
  readonly onCorrupt?: "fail" | "exhaust"
  /** Tells whether the process holding a lock is alive (default: a signal-0 probe). */
  readonly isAlive?: (pid: number) => boolean
  /**
   * Rewrite the journal once it passes this many bytes (default 64 MiB): a clean copy, written
   * aside and renamed over it. The journal is the ledger's history (`reservations()`), so the copy
   * keeps every reservation; it drops repaired and duplicate lines.
   */
  readonly compactAfterBytes?: number
}

/**
 * The journal size past which it is rewritten, unless configured.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultCompactAfterBytes = 64 * 1024 * 1024

/**
 * The first line of a ledger journal. A journal without it is one written before headers existed:
 * its first line is a reservation, and it opens as before.
 *
 * @since 0.1.0
 * @category constants
 */
export const journalHeader = { t: "holdout-ledger", version: 1 } as const

const ReservationLine = Schema.Struct({ t: Schema.Literal("reservation"), ...Model.Reservation.fields })
const ExhaustedLine = Schema.Struct({ t: Schema.Literal("exhausted"), at: Schema.Number, reason: Schema.String })
const JournalLine = Schema.Union(ReservationLine, ExhaustedLine)
const decodeLine = Schema.decodeUnknownEither(JournalLine)

interface State {
  readonly spent: Map<string, { runs: number; samples: number }>
  readonly journal: Array<Model.Reservation>
  readonly byId: Map<string, Model.Reservation>
  exhausted: boolean
}

const emptyState = (): State => ({ spent: new Map(), journal: [], byId: new Map(), exhausted: false })

const apply = (state: State, reservation: Model.Reservation) => {
  const key = Ledger.keyString(reservation)
  let spent = state.spent.get(key)
  if (spent === undefined) {
    spent = { runs: 0, samples: 0 }
    state.spent.set(key, spent)
  }
  spent.runs += 1
  spent.samples += reservation.samples
  state.journal.push(reservation)
  state.byId.set(reservation.id, reservation)
}

/** Rebuilds the state from replayed lines, or says which line is wrong. */
const rebuild = (values: ReadonlyArray<unknown>): Either.Either<State, string> => {
  const state = emptyState()
  for (let index = 0; index < values.length; index++) {
    const decoded = decodeLine(values[index])
    if (Either.isLeft(decoded)) return Either.left(`entry ${index + 1} is not a journal entry of a known shape`)
    const line = decoded.right
    if (line.t === "exhausted") {
      state.exhausted = true
      continue
    }
    const { t: _t, ...reservation } = line
    const seen = state.byId.get(reservation.id)
    if (seen !== undefined) {
      // a reservation queued while a compaction ran is in the snapshot and after it: the same line
      if (JSON.stringify(seen) === JSON.stringify(reservation)) continue
      return Either.left(`reservation "${reservation.id}" appears twice with different contents`)
    }
    apply(state, reservation)
  }
  return Either.right(state)
}

/**
 * Opens (or creates) the journal and builds the ledger service.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<
  Ledger.Ledger["Type"],
  HoldoutError.LedgerCorrupt | HoldoutError.LedgerLocked | HoldoutError.ConfigError,
  FileSystem.FileSystem | Path.Path | Scope.Scope
> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const budgets = yield* Ledger.validateBudgets(options.budgets)
    const location = options.path
    const corrupt = (message: string) => new HoldoutError.LedgerCorrupt({ location, message })

    yield* fs.makeDirectory(path.dirname(location), { recursive: true }).pipe(
      Effect.mapError((error) => corrupt(`cannot create its directory: ${error.message}`))
    )
    const lock = yield* Lock.acquire(fs, path, location, options.isAlive).pipe(
      Effect.mapError((failure) =>
        failure._tag === "Held"
          ? new HoldoutError.LedgerLocked({ location })
          : corrupt(`cannot take its lock: ${failure.message}`)
      )
    )

    const replayed = yield* Journal.replay(fs, path, location, {
      header: journalHeader,
      existed: lock.previous?.store === true
    }).pipe(Effect.mapError((error) => corrupt(error.message)))
    if (replayed.unusable !== undefined) {
      // keep the evidence: the next opener must find the same
      yield* lock.keepOnRelease
      return yield* corrupt(
        `The ledger journal is not usable: ${replayed.unusable}. Nothing was changed. Restore it from a backup, or ` +
          `to start over with fresh budgets, move it and its lock file (${location}.lock) aside.`
      )
    }
    yield* lock.markStoreExists.pipe(
      Effect.mapError((failure) => corrupt(`cannot update its lock: ${failure.message}`))
    )
    if (replayed.completedTail === true) {
      yield* Effect.logWarning(`Ledger ${location}: completed the newline of its last line (the line is kept)`)
    }
    if (replayed.repairedTail) {
      yield* Effect.logWarning(`Ledger ${location}: discarded a torn last line (an append that was never acknowledged)`)
    }
    const rebuilt = replayed.corrupt !== undefined
      ? Either.left(`line ${replayed.corrupt.line} is ${replayed.corrupt.reason}`)
      : rebuild(replayed.values)

    let state: State
    let exhaustReason: string | undefined
    if (Either.isLeft(rebuilt)) {
      const message =
        `The ledger journal cannot be read: ${rebuilt.left}. Nothing was changed. Restore the file from ` +
        `a backup, or open it with onCorrupt: "exhaust" to set it aside and continue with every budget at 0.`
      if (options.onCorrupt !== "exhaust") return yield* corrupt(message)
      const aside = `${location}.corrupt-${yield* Clock.currentTimeMillis}`
      yield* fs.rename(location, aside).pipe(
        Effect.mapError((error) => corrupt(`cannot move it aside: ${error.message}`))
      )
      yield* Effect.logError(
        `Ledger ${location} is corrupt (${rebuilt.left}); moved to ${aside}; every budget is now 0`
      )
      state = emptyState()
      state.exhausted = true
      exhaustReason = `journal corrupt (${rebuilt.left}); the old journal is at ${aside}`
    } else {
      state = rebuilt.right
    }

    const journal = yield* Journal.open(fs, path, location, {
      afterBytes: options.compactAfterBytes ?? defaultCompactAfterBytes,
      snapshot: () => {
        const lines: Array<unknown> = state.exhausted
          ? [{ t: "exhausted", at: 0, reason: exhaustReason ?? "exhausted before a compaction" }]
          : []
        for (const reservation of state.journal) lines.push({ t: "reservation", ...reservation })
        return lines
      }
    }, journalHeader).pipe(Effect.mapError((error) => corrupt(error.message)))
    if (exhaustReason !== undefined) {
      yield* journal.append({ t: "exhausted", at: yield* Clock.currentTimeMillis, reason: exhaustReason }).pipe(
        Effect.mapError((error) => corrupt(error.message))
      )
    }

    // A reservation is acknowledged once durable; a repeat of one still in flight waits for it.
    const durable = new Map<string, Deferred.Deferred<void, Journal.JournalError>>()
    const storeError = (error: Journal.JournalError) =>
      new HoldoutError.StoreError({
        op: "reserve",
        message: `Ledger ${location}: ${error.op} failed: ${error.message}`
      })
    // what the running step must wait for before its outcome is acknowledged
    let awaited: Deferred.Deferred<void, Journal.JournalError> | undefined
    let appended: string | undefined
    const takePending = (): readonly [
      Deferred.Deferred<void, Journal.JournalError> | undefined,
      string | undefined
    ] => {
      const pending = [awaited, appended] as const
      awaited = undefined
      appended = undefined
      return pending
    }
    const view: Ledger.DriverView = {
      find: (reservationId) => {
        const found = state.byId.get(reservationId)
        if (found !== undefined) awaited = durable.get(reservationId) ?? awaited
        return found
      },
      spent: (key) => state.spent.get(key) ?? Ledger.nothingSpent,
      append: (reservation) => {
        apply(state, reservation)
        const done = journal.unsafeEnqueue({ t: "reservation", ...reservation })
        durable.set(reservation.id, done)
        awaited = done
        appended = reservation.id
      }
    }

    const driver: Ledger.Driver = {
      // The step and the in-memory debit are one synchronous block; then the line is awaited on disk.
      transact: (_reservationId, step) =>
        Effect.suspend(() => {
          const outcome = step(view)
          const [wait, written] = takePending()
          if (wait === undefined) return outcome
          return Deferred.await(wait).pipe(
            Effect.ensuring(Effect.sync(() => written !== undefined && durable.delete(written))),
            Effect.mapError(storeError),
            Effect.zipRight(outcome)
          )
        }),
      spent: Effect.sync(() => state.spent),
      reservations: (key) =>
        Effect.sync(() =>
          key === undefined
            ? state.journal.slice()
            : state.journal.filter((entry) => entry.datasetId === key.datasetId && entry.split === key.split)
        ),
      exhausted: state.exhausted
    }
    return Ledger.unsafeMake(budgets, driver)
  })

/**
 * The file ledger as a layer; the journal's lock is held until the layer is released.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<
  Ledger.Ledger,
  HoldoutError.LedgerCorrupt | HoldoutError.LedgerLocked | HoldoutError.ConfigError,
  FileSystem.FileSystem | Path.Path
> => Layer.scoped(Ledger.Ledger, make(options))
