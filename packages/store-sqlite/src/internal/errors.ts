import type { SqlError } from "@effect/sql/SqlError"
import { HoldoutError } from "@holdout/core"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"

interface DriverError {
  readonly message?: unknown
  readonly code?: unknown
  readonly cause?: unknown
}

const driverError = (error: SqlError): DriverError | undefined =>
  typeof error.cause === "object" && error.cause !== null ? error.cause as DriverError : undefined

const codeOf = (error: SqlError): string => {
  const cause = driverError(error)
  return typeof cause?.code === "string" ? cause.code : ""
}

const messageOf = (error: SqlError): string => {
  const cause = driverError(error)
  const text = typeof cause?.message === "string" && cause.message !== "" ? cause.message : codeOf(error)
  return text === "" ? error.message : `${error.message}: ${text}`
}

/** Whether the database was busy (another process holds the lock): worth another try. */
export const isBusy = (error: SqlError): boolean =>
  /SQLITE_BUSY|database is locked|SQLITE_LOCKED/i.test(messageOf(error))

// PostgreSQL: serialization failure, deadlock, lock not available, server starting up or shutting down
const rolledBackCodes = new Set(["40001", "40P01", "55P03", "57P03"])

/**
 * Whether the server could not be reached or refused the statement before doing anything: nothing
 * was applied, so any operation may be tried again.
 */
export const isNotApplied = (error: SqlError): boolean =>
  rolledBackCodes.has(codeOf(error)) ||
  /^(Failed to acquire connection|PgClient: Failed to connect)/.test(error.message)

/**
 * Whether the connection was lost while a statement ran (the server stopped or restarted, the
 * network broke): whether it was applied is unknown, so only reads and operations idempotent by
 * their id may be tried again.
 */
export const isConnectionLost = (error: SqlError): boolean =>
  /^(08|57P0[12])/.test(codeOf(error)) ||
  ["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT"].includes(codeOf(error)) ||
  /Connection terminated|Connection error|connection is not open|not queryable|Client has encountered a connection error/i
    .test(
      messageOf(error)
    )

/**
 * What may be tried again after a failure: `"safe"` for reads and writes idempotent by id (also
 * after a lost connection), `"once"` for other writes (only when nothing was applied).
 */
export type Retry = "safe" | "once"

const busySchedule = Schedule.exponential("5 millis").pipe(Schedule.jittered, Schedule.upTo("30 seconds"))
// a short outage (a restart, a failover) is ridden out; a longer one is an error the caller sees
const outageSchedule = Schedule.exponential("50 millis").pipe(Schedule.jittered, Schedule.upTo("3 seconds"))

/** Whether a failure is an outage worth waiting out: nothing was applied, or (per `retry`) the connection was lost. */
const outage = (retry: Retry) => (error: SqlError): boolean =>
  isNotApplied(error) || (retry === "safe" && isConnectionLost(error))

const retriable = (retry: Retry) => (error: SqlError): boolean => isBusy(error) || outage(retry)(error)

/** Retries busy and (per `retry`) connection failures with backoff, then maps the `SqlError` to a `StoreError`. */
export const storeOp = (op: string, retry: Retry = "safe") => <A, R>(effect: Effect.Effect<A, SqlError, R>) =>
  effect.pipe(
    // the retries are set up after a first failure, which they are handed to begin with: an operation
    // that succeeds (nearly every one) pays nothing for them
    Effect.catchIf(retriable(retry), (first) => {
      let replay = true
      return Effect.suspend(() => {
        if (!replay) return effect
        replay = false
        return Effect.fail(first)
      }).pipe(
        Effect.retry({ while: isBusy, schedule: busySchedule }),
        Effect.retry({ while: outage(retry), schedule: outageSchedule })
      )
    }),
    Effect.mapError((error) =>
      new HoldoutError.StoreError({
        op,
        message: isNotApplied(error) || isConnectionLost(error)
          ? `The database cannot be reached (${
            messageOf(error)
          }): check that its server runs and the store's URL points to it, then try again.`
          : `Database: ${messageOf(error)}`,
        cause: error
      })
    )
  )

/** A database client that cannot be opened: a `StoreError` saying which file, never a defect. */
export const openError = (filename: string) => (error: unknown): HoldoutError.StoreError =>
  new HoldoutError.StoreError({
    op: "open",
    message: `Cannot open the database ${filename}: ${
      error instanceof Error || (typeof error === "object" && error !== null && "message" in error)
        ? String((error as { readonly message: unknown }).message)
        : String(error)
    }. Check that the path is writable and not held by another program.`,
    cause: error
  })
