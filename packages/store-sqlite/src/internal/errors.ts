import type { SqlError } from "@effect/sql/SqlError"
import { HoldoutError } from "@holdout/core"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"

const messageOf = (error: SqlError): string => {
  const cause = error.cause as { readonly message?: unknown } | undefined
  return typeof cause?.message === "string" ? `${error.message}: ${cause.message}` : error.message
}

/** Whether the database was busy (another process holds the lock): worth another try. */
export const isBusy = (error: SqlError): boolean =>
  /SQLITE_BUSY|database is locked|SQLITE_LOCKED/i.test(messageOf(error))

/** Retries busy failures with backoff, then maps the `SqlError` to a `StoreError`. */
export const storeOp = (op: string) => <A, R>(effect: Effect.Effect<A, SqlError, R>) =>
  effect.pipe(
    Effect.retry({
      while: isBusy,
      schedule: Schedule.exponential("5 millis").pipe(Schedule.jittered, Schedule.upTo("30 seconds"))
    }),
    Effect.mapError((error) =>
      new HoldoutError.StoreError({ op, message: `Database: ${messageOf(error)}`, cause: error })
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
