/**
 * The crash test's child: evaluates a 2,000-sample run while 64 fibers reserve against a small
 * budget, printing every acknowledged reservation and sample record. The parent kills it with
 * SIGKILL at a random moment. Usage: child.ts <fs|sqlite|libsql> <dir> <run key>
 */
import { Engine, Ledger } from "@holdout/core"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { datasetId, layer, type StoreKind } from "./stack.js"

const [kind, dir, runKey] = process.argv.slice(2) as [StoreKind, string, string]
const say = (line: string) => process.stdout.write(line + "\n")

const program = Effect.gen(function*() {
  const engine = yield* Engine.Engine
  const ledger = yield* Ledger.Ledger
  say("ready")
  const reservations = Effect.forEach(
    Array.from({ length: 64 }, (_, fiber) => fiber),
    (fiber) =>
      Effect.gen(function*() {
        for (let index = 0; index < 1000; index++) {
          const id = `${runKey}-${fiber}-${index}`
          const outcome = yield* Effect.either(
            ledger.reserve({ datasetId, split: "small", samples: 1, runId: id, reservationId: id })
          )
          if (outcome._tag === "Left") return
          say(`reserved ${id}`)
        }
      }),
    { concurrency: "unbounded", discard: true }
  )
  const run = engine.evaluate({ datasetId, split: "train", candidate: { id: "c" }, idempotencyKey: runKey }).pipe(
    Effect.tap((experiment) => Effect.sync(() => say(`completed ${experiment.run.runId}`)))
  )
  yield* Effect.all([reservations, run], { concurrency: 2, discard: true })
  say("done")
  // stay alive until killed, so that every kill is a real one
  yield* Effect.never
})

Effect.runPromise(
  program.pipe(
    Effect.provide(layer(kind, dir, (runId, sampleId) => say(`sample ${runId} ${sampleId}`))),
    Effect.provide(Logger.minimumLogLevel(LogLevel.Error))
  )
).catch((error: unknown) => {
  process.stderr.write(`child failed: ${String(error)}\n`)
  process.exitCode = 1
})
