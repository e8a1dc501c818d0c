import { SqlError } from "@effect/sql/SqlError"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { storeOp } from "../src/internal/errors.js"

/** A statement that fails with `failures` in turn, then answers `"done"`; `attempts` counts its runs. */
const statement = (failures: ReadonlyArray<{ readonly code: string; readonly message: string }>) => {
  const state = { attempts: 0 }
  const effect = Effect.suspend(() => {
    const failure = failures[state.attempts++]
    return failure === undefined
      ? Effect.succeed("done")
      : Effect.fail(new SqlError({ cause: failure, message: "Failed to execute statement" }))
  })
  return { state, effect }
}

const busy = { code: "SQLITE_BUSY", message: "database is locked" }
const lost = { code: "ECONNRESET", message: "read ECONNRESET" }
const notApplied = { code: "40001", message: "could not serialize access" }
const constraint = { code: "SQLITE_CONSTRAINT", message: "UNIQUE constraint failed" }

describe("storeOp", () => {
  it.live("retries a busy database until the statement goes through", () =>
    Effect.gen(function*() {
      const { effect, state } = statement([busy, busy])
      assert.strictEqual(yield* storeOp("getRun")(effect), "done")
      assert.strictEqual(state.attempts, 3)
    }))

  it.live("retries what was not applied, also for a write that may run only once", () =>
    Effect.gen(function*() {
      const { effect, state } = statement([notApplied, busy])
      assert.strictEqual(yield* storeOp("write", "once")(effect), "done")
      assert.strictEqual(state.attempts, 3)
    }))

  it.live("retries after a lost connection only what may run again", () =>
    Effect.gen(function*() {
      const safe = statement([lost])
      assert.strictEqual(yield* storeOp("getRun")(safe.effect), "done")
      assert.strictEqual(safe.state.attempts, 2)
      const once = statement([lost])
      const error = yield* Effect.flip(storeOp("write", "once")(once.effect))
      assert.strictEqual(once.state.attempts, 1)
      assert.strictEqual(error._tag, "StoreError")
      assert.strictEqual(error.op, "write")
      assert.match(error.message, /cannot be reached \(Failed to execute statement: read ECONNRESET\)/)
    }))

  it.live("fails at once, as a StoreError with its cause, on anything else", () =>
    Effect.gen(function*() {
      const { effect, state } = statement([constraint])
      const error = yield* Effect.flip(storeOp("createRun")(effect))
      assert.strictEqual(state.attempts, 1)
      assert.strictEqual(error.op, "createRun")
      assert.strictEqual(error.message, "Database: Failed to execute statement: UNIQUE constraint failed")
      assert.instanceOf(error.cause, SqlError)
    }))
})
