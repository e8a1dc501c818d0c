/**
 * `holdout eval --async` and `holdout job`: an evaluation started without waiting, and its result
 * got later, printed as `eval` prints it.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { rmSync } from "node:fs"
import { fixtureStack, holdout, serve, stopAll, writeConfig } from "./helpers.js"

describe("holdout eval --async and holdout job", () => {
  it.live("eval --async prints a job id; job --wait prints its result as eval does; an unknown job is one line", () => {
    const { dir, file } = writeConfig(
      "holdout-cli-jobs-",
      `${fixtureStack(3)}sidecar: { tokenFile: state/admin.token, port: 0 }\n`
    )
    return Effect.gen(function*() {
      const served = yield* serve(["-c", file], { timeout: 60_000 })
      const client = (args: ReadonlyArray<string>) => holdout(args, { env: { HOLDOUT_URL: served.url } })
      const help = yield* client(["job", "--help"])
      assert.strictEqual(help.code, 0, help.stderr)
      assert.include(help.stdout, "$ holdout job")
      assert.include(help.stdout, "--wait")

      const started = yield* client(
        ["eval", "--dataset", "qa", "--split", "train", "--candidate", "off-by-one", "--key", "cli-job", "--async"]
      )
      assert.strictEqual(started.code, 0, started.stderr)
      assert.match(started.stdout, /^job key:cli-job (running|completed)\n/)
      assert.include(started.stdout, "holdout job key:cli-job --wait")

      const waited = yield* client(["job", "key:cli-job", "--wait"])
      assert.strictEqual(waited.code, 0, waited.stderr)
      // what the synchronous eval with the same key prints (charged once)
      const sync = yield* client(
        ["eval", "--dataset", "qa", "--split", "train", "--candidate", "off-by-one", "--key", "cli-job"]
      )
      assert.strictEqual(sync.code, 0, sync.stderr)
      assert.strictEqual(waited.stdout, sync.stdout)
      assert.include(waited.stdout, "samples not fully right: 3, 7")
      assert.include(waited.stdout, "budget left: 4 runs")

      const unknown = yield* client(["job", "key:no-such-job"])
      assert.strictEqual(unknown.code, 1)
      assert.match(unknown.stderr.trim(), /^error: JobNotFound: [^\n]*key:no-such-job[^\n]*$/)
    }).pipe(
      Effect.ensuring(Effect.zipRight(stopAll, Effect.sync(() => rmSync(dir, { recursive: true, force: true }))))
    )
  }, 120_000)
})
