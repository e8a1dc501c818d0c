import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { version } from "../src/version.js"
import {
  fixtureSources,
  holdout as runHoldout,
  type HoldoutOptions,
  type Outcome,
  root,
  serve as serveSidecar,
  stackFixture,
  stopAll,
  writeConfig
} from "./helpers.js"

/** Runs `holdout`, outside any sidecar unless `options.env` names one (`HOLDOUT_URL`). */
const holdout = (args: ReadonlyArray<string>, options: HoldoutOptions = {}) =>
  runHoldout(args, { ...options, env: { HOLDOUT_URL: undefined, ...options.env } })

/** A failure is exactly one line on stderr, `error: …`, exit code 1 (beside log lines, which `serve` shows). */
const oneLineError = (outcome: Outcome, pattern: RegExp) => {
  assert.strictEqual(outcome.code, 1, outcome.stdout + outcome.stderr)
  const lines = outcome.stderr.trim().split("\n").filter((line) => !line.startsWith("timestamp="))
  assert.strictEqual(lines.length, 1, outcome.stderr)
  assert.match(lines[0]!, /^error: /)
  assert.match(lines[0]!, pattern)
}

/** Starts `holdout serve` in `cwd` and waits until it listens (or exits). */
const serve = (args: ReadonlyArray<string>, cwd: string) => serveSidecar(args, { cwd, env: { HOLDOUT_LOG: undefined } })

/** A directory outside the repository that resolves `@holdout/*` as an installed project would. */
const project = () => {
  const dir = mkdtempSync(join(tmpdir(), "holdout-init-"))
  symlinkSync(join(root, "node_modules"), join(dir, "node_modules"))
  return dir
}

describe("holdout init, runs, show", () => {
  it.live("init writes a project that runs as it is; runs and show list and project its runs", () => {
    const dir = project()
    return Effect.gen(function*() {
      const init = yield* holdout(["init"], { cwd: dir })
      assert.strictEqual(init.code, 0, init.stderr)
      assert.include(init.stdout, "holdout run -c holdout.yaml --dataset sums --split train --candidate careful")
      // a second init overwrites nothing, in one line
      oneLineError(yield* holdout(["init"], { cwd: dir }), /already exist.*--force/)

      const run = (args: ReadonlyArray<string>) =>
        holdout(["run", "-c", "holdout.yaml", "--dataset", "sums", ...args], { cwd: dir })
      const careful = yield* run(["--split", "train", "--candidate", "careful"])
      assert.strictEqual(careful.code, 0, careful.stderr)
      assert.match(careful.stdout, /careful on sums\/train completed, mean 100\.0% .*over 20 samples \(0 errors\)/)
      assert.notInclude(careful.stderr, "WARN")
      const hasty = yield* run(["--split", "train", "--candidate", "hasty", "--sample-ids", "0,1,2,3"])
      assert.strictEqual(hasty.code, 0, hasty.stderr)
      const hidden = yield* run(["--split", "validation", "--candidate", "hasty"])
      assert.strictEqual(hidden.code, 0, hidden.stderr)
      const hiddenId = /^run (\S+):/m.exec(hidden.stdout)![1]!

      const runs = yield* holdout(["runs", "-c", "holdout.yaml"], { cwd: dir })
      assert.strictEqual(runs.code, 0, runs.stderr)
      const lines = runs.stdout.trim().split("\n")
      assert.match(lines[0]!, /^run\s+status\s+split\s+candidate\s+samples\s+mean ± 95%\s+errors\s+charged$/)
      assert.strictEqual(lines.length, 4)
      assert.match(runs.stdout, /completed\s+sums\/train\s+careful\s+20\s+100\.0% ± 0\.0\s+0\s+yes/)
      assert.match(runs.stdout, /completed\s+sums\/train\s+hasty\s+4\s+[\d.]+%( ± [\d.]+)?\s+0\s+yes/)
      // aligned: every row's "charged" column starts where its header does
      const column = lines[0]!.indexOf("charged")
      for (const line of lines.slice(1)) assert.match(line.slice(column), /^(yes|no)$/, line)
      const json = JSON.parse(
        (yield* holdout(["runs", "-c", "holdout.yaml", "--json"], { cwd: dir })).stdout
      ) as ReadonlyArray<{ readonly candidate: string; readonly charged: boolean; readonly samples: number }>
      assert.deepStrictEqual(json.map((run) => [run.candidate, run.samples, run.charged]), [
        ["careful", 20, true],
        ["hasty", 4, true],
        ["hasty", 20, true]
      ])
      const csv = yield* holdout(["runs", "-c", "holdout.yaml", "--csv", "--split", "validation"], { cwd: dir })
      assert.strictEqual(csv.stdout.trim().split("\n").length, 2, csv.stdout)
      assert.match(csv.stdout, /^runId,status,datasetId,split,candidate,/)

      // show: a viewable run with its per-sample table; a non_viewable one as its summary only
      const carefulId = /^run (\S+):/m.exec(careful.stdout)![1]!
      const shown = yield* holdout(["show", "-c", "holdout.yaml", carefulId, "--limit", "5"], { cwd: dir })
      assert.strictEqual(shown.code, 0, shown.stderr)
      assert.include(shown.stdout, `run ${carefulId} (viewable)`)
      assert.match(shown.stdout, /sample\s+score\s+output/)
      assert.match(shown.stdout, /\n\s+4\s+1\s+\d+/)
      assert.include(shown.stdout, "15 more samples")
      const summary = yield* holdout(["show", "-c", "holdout.yaml", hiddenId], { cwd: dir })
      assert.strictEqual(summary.code, 0, summary.stderr)
      assert.include(summary.stdout, "(non_viewable)")
      assert.notMatch(summary.stdout, /sample\s+score/)
      const admin = yield* holdout(["show", "-c", "holdout.yaml", hiddenId, "--admin", "--json"], { cwd: dir })
      assert.strictEqual((JSON.parse(admin.stdout) as { samples: ReadonlyArray<unknown> }).samples.length, 20)

      // report: whole-split runs and subsets on rows of their own, never averaged together
      const report = yield* holdout(["report", "-c", "holdout.yaml"], { cwd: dir })
      assert.match(report.stdout, /hasty\s+train\s+subset\s+1\s+0/)
      assert.match(report.stdout, /careful\s+train\s+whole\s+1\s+0\s+100\.0%/)
      assert.notMatch(report.stdout, /\b1 runs\b/)
      const reportCsv = yield* holdout(["report", "-c", "holdout.yaml", "--csv"], { cwd: dir })
      assert.match(reportCsv.stdout, /^candidate,datasetId,split,admin,subset,runs,failed,/)
    }).pipe(Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true }))))
  }, 180_000)

  it.live("report counts failed runs, which were charged", () => {
    const dir = project()
    return Effect.gen(function*() {
      yield* holdout(["init"], { cwd: dir })
      writeFileSync(
        join(dir, "task.mjs"),
        `import { Task } from "@holdout/core"
export default Task.make({
  name: "sums",
  labelFields: ["sum"],
  infer: (row, run) => { if (run.candidate.id === "broken") throw new Error("no answer"); return row.a + row.b },
  score: (row, stored) => (stored.output === row.sum ? 1 : 0)
})
`
      )
      const broken = yield* holdout(
        ["run", "-c", "holdout.yaml", "--dataset", "sums", "--split", "train", "--candidate", "broken"],
        { cwd: dir }
      )
      assert.include(broken.stdout, "broken on sums/train failed")
      const report = yield* holdout(["report", "-c", "holdout.yaml"], { cwd: dir })
      assert.match(report.stdout, /broken\s+train\s+whole\s+1\s+1\s+0\.0%/)
      assert.match(report.stdout, /sums\/train\s+viewable\s+\[#+\.*\]\s+49 of 50 runs left/)
    }).pipe(Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true }))))
  }, 120_000)
})

describe("holdout: mistakes are one line, the cause first, with a hint", () => {
  it.live(
    "eval needs a candidate, sample ids are integers, no sidecar has a hint, HOLDOUT_URL is read",
    () =>
      Effect.gen(function*() {
        const dead = { HOLDOUT_URL: "http://127.0.0.1:9" }
        oneLineError(
          yield* holdout(["eval", "--dataset", "qa", "--split", "train"], { env: dead }),
          /no candidate given: pass --candidate <id>, or --commit <ref>/
        )
        oneLineError(
          yield* holdout(["eval", "--dataset", "qa", "--split", "train", "--candidate", "c", "--sample-ids", "1,2,x"], {
            env: dead
          }),
          /`x` is not a sample id \(integers, comma separated/
        )
        oneLineError(
          yield* holdout(["status"], { env: dead }),
          /^error: no sidecar at http:\/\/127\.0\.0\.1:9 \(the connection was refused\): .*holdout serve -c .* or set HOLDOUT_URL/
        )
      }),
    60_000
  )

  it.live("split and config typos get a did-you-mean; a budget for a missing split is a ConfigError at start", () => {
    const dir = mkdtempSync(join(tmpdir(), "holdout-typo-"))
    const config = (budgets: string, extra = "") => {
      const file = join(dir, `${Math.random().toString(36).slice(2)}.yaml`)
      writeFileSync(
        file,
        `store: { kind: memory }
datasets: { kind: jsonl, dir: ${JSON.stringify(join(stackFixture, "data"))} }
strategy: { kind: task, module: ${JSON.stringify(join(stackFixture, "task.ts"))} }
budgets: ${budgets}
policy: { train: viewable, validation: non_viewable, test: no_access }
${extra}`
      )
      return file
    }
    const good = config("[{ datasetId: qa, split: train, runs: 5 }]")
    return Effect.gen(function*() {
      const run = (file: string, split: string) =>
        holdout(["run", "-c", file, "--dataset", "qa", "--split", split, "--candidate", "exact"])
      oneLineError(yield* run(good, "valdation"), /UnknownSplit: .*"valdation".*Did you mean "validation"\?/)
      oneLineError(
        yield* run(config("[{ datasetId: qa, split: valdation, runs: 5 }]"), "train"),
        /ConfigError: A budget names split "valdation" of dataset "qa".*Did you mean "validation"\?/
      )
      oneLineError(
        yield* run(config("[{ datasetId: qa, split: train, runs: 5 }]", "polcy: {}"), "train"),
        /unknown field "polcy" \(did you mean "policy"\?\)/
      )
      const wrongType = config("[{ datasetId: qa, split: train, runs: 5 }]")
      writeFileSync(wrongType, readFileSync(wrongType, "utf8").replace("store: { kind: memory }", "store: 3"))
      const section = yield* run(wrongType, "train")
      oneLineError(section, /"store" expected a mapping with kind sqlite \| postgres \| fs \| memory, actual 3/)
      assert.isBelow(section.stderr.length, 300, "the schema's signature was printed")
      // serve without a sidecar section says what to add
      oneLineError(
        yield* holdout(["serve", "-c", good]),
        /ConfigError: .* has no "sidecar" section: add one, e\.g\. sidecar: \{ tokenFile/
      )
    }).pipe(Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true }))))
  }, 120_000)
})

describe("holdout serve: request log, OpenAPI, port in use", () => {
  it.live("logs a line per request, documents every endpoint and response, and a taken port is one line", () => {
    const dir = project()
    return Effect.gen(function*() {
      yield* holdout(["init"], { cwd: dir })
      const served = yield* serve(["-c", "holdout.yaml", "--port", "0"], dir)
      const openapi = (yield* Effect.promise(() => fetch(`${served.url}/openapi.json`).then((r) => r.json()))) as {
        info: { title: string; version: string }
        paths: Record<
          string,
          Record<string, { description?: string; responses: Record<string, { description: string }> }>
        >
      }
      assert.deepStrictEqual([openapi.info.title, openapi.info.version], ["Holdout sidecar", version])
      // the optimizer's run listing and run view are among the endpoints checked below
      assert.includeMembers(Object.keys(openapi.paths), ["/runs", "/runs/{runId}", "/runs/{runId}/samples"])
      for (const [path, methods] of Object.entries(openapi.paths)) {
        for (const [method, operation] of Object.entries(methods)) {
          assert.isString(operation.description, `${method} ${path}`)
          for (const [status, response] of Object.entries(operation.responses)) {
            assert.notMatch(response.description, /^(Success|Error|[A-Z]\w+)$/, `${method} ${path} ${status}`)
          }
        }
      }
      assert.property(openapi.paths["/eval"]!["post"]!.responses, "413")
      const refused = yield* holdout(["eval", "--dataset", "sums", "--split", "test", "--candidate", "careful"], {
        env: { HOLDOUT_URL: served.url }
      })
      oneLineError(refused, /AccessDenied/)
      yield* Effect.sleep("200 millis")
      assert.match(served.output(), /GET \/openapi\.json 200 \d+ms/)
      assert.match(served.output(), /POST \/eval 403 \d+ms AccessDenied/)
      // the same port again
      const port = new URL(served.url).port
      oneLineError(
        yield* holdout(["serve", "-c", "holdout.yaml", "--port", port], { cwd: dir }),
        new RegExp(`port ${port} on 127\\.0\\.0\\.1 is in use: .*--port`)
      )
    }).pipe(
      Effect.ensuring(Effect.zipRight(stopAll, Effect.sync(() => rmSync(dir, { recursive: true, force: true }))))
    )
  }, 120_000)
})

describe("holdout run: Ctrl-C", () => {
  it.live("prints the run id and the command that resumes it, which finishes the run without a new charge", () => {
    const { dir, file } = writeConfig(
      "holdout-interrupt-",
      `${fixtureSources(1)}budgets: [{ datasetId: qa, split: validation, runs: 3 }]
policy: { train: viewable, validation: non_viewable }
`
    )
    return Effect.gen(function*() {
      let sent = false
      const interrupted = yield* holdout(
        ["run", "-c", file, "--dataset", "qa", "--split", "validation", "--candidate", "slow-exact"],
        {
          onStderr: (text, child) => {
            // once the run has started (its first progress line), as a user would press Ctrl-C
            if (!sent && /progress/.test(text)) {
              sent = true
              // as a terminal's Ctrl-C would (not child.kill, after which Deno reports no exit code)
              process.kill(child.pid!, "SIGINT")
            }
          }
        }
      )
      assert.isTrue(sent, interrupted.stderr)
      const match = /interrupted: run (\S+) is unfinished/.exec(interrupted.stderr)
      assert.isNotNull(match, interrupted.stderr)
      assert.include(interrupted.stderr, `holdout resume -c ${file} ${match![1]}`)
      assert.strictEqual(interrupted.code, 130)
      const resumed = yield* holdout(["resume", "-c", file, match![1]!])
      assert.strictEqual(resumed.code, 0, resumed.stderr)
      assert.include(resumed.stdout, "slow-exact on qa/validation completed")
      const runs = JSON.parse((yield* holdout(["runs", "-c", file, "--json"])).stdout) as ReadonlyArray<unknown>
      assert.strictEqual(runs.length, 1)
    }).pipe(Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true }))))
  }, 120_000)
})

describe("version", () => {
  it("is the package's", () => {
    const pkg = JSON.parse(readFileSync(fileURLToPath(new URL("../package.json", import.meta.url)), "utf8")) as {
      version: string
    }
    assert.strictEqual(version, pkg.version)
  })
})
