/**
 * A process that races for a file ledger's lock on command, for tests/adversary/lock-race.test.ts.
 * Reads lines from stdin: `go <dir>` opens the ledger `<dir>/ledger.jsonl` and answers `held` (then
 * holds it until `release`, answering `released`) or `locked <tag>`. While holding, it creates
 * `<dir>/holder` exclusively: `double` says another process held the lock at the same time.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as FileSystem from "@effect/platform/FileSystem"
import { LedgerFs } from "@holdout/store-fs"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createInterface } from "node:readline"

const budgets = [{ datasetId: "ds", split: "train", runs: 5 }]
const say = (line: string) => process.stdout.write(`${line}\n`)
let release: (() => void) | undefined

const race = (dir: string) =>
  Effect.scoped(Effect.gen(function*() {
    yield* Layer.build(LedgerFs.layer({ path: `${dir}/ledger.jsonl`, budgets }))
    const fs = yield* FileSystem.FileSystem
    const alone = yield* fs.writeFileString(`${dir}/holder`, String(process.pid), { flag: "wx" }).pipe(
      Effect.as(true),
      Effect.catchAll(() => Effect.succeed(false))
    )
    yield* fs.writeFileString(`${dir}/holders.log`, `${process.pid}\n`, { flag: "a" })
    say(alone ? "held" : "double")
    yield* Effect.async<void>((resume) => {
      release = () => resume(Effect.void)
    })
    if (alone) yield* fs.remove(`${dir}/holder`)
  })).pipe(Effect.provide(NodeContext.layer))

createInterface({ input: process.stdin }).on("line", (line) => {
  const [command, dir] = line.split(" ")
  if (command === "go" && dir !== undefined) {
    Effect.runPromise(Effect.either(race(dir))).then(
      (outcome) => say(outcome._tag === "Right" ? "released" : `locked ${outcome.left._tag}`),
      (error: unknown) => say(`failed ${String(error).split("\n")[0]}`)
    )
  } else if (command === "release") {
    const done = release
    release = undefined
    done?.()
  } else if (command === "exit") {
    process.exit(0)
  }
})
say("ready")
