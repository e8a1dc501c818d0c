import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import {
  fixtureSources,
  fixtureStack,
  holdout,
  root,
  serve as serveSidecar,
  type Served,
  stackFixture,
  stopAll,
  writeConfig
} from "./helpers.js"

const fakeHarbor = join(root, "packages", "strategy-harbor", "testing", "fake-harbor.mjs")

/** A fresh stack configuration (YAML) in a temporary directory; its state lives there too. */
const makeConfig = (extra = "") =>
  writeConfig(
    "holdout-cli-",
    `${fixtureStack(3)}verifier:
  mode: auto_best
  selection: { datasetId: qa, split: validation }
  targets: [{ datasetId: qa, split: test, rewardKey: accuracy }]
sidecar: { tokenFile: state/admin.token, resultsDir: state/results, port: 0 }
${extra}`
  )

/** Starts `holdout serve` (on Node, or on Deno) and waits until it listens. */
const serve = (config: string, runtime: "node" | "deno" = "node") =>
  serveSidecar(["-c", config], { runtime, timeout: 60_000 })

const kill = (served: Served, signal: NodeJS.Signals) =>
  Effect.async<void>((resume) => {
    if (served.child.exitCode !== null || served.child.signalCode !== null) return resume(Effect.void)
    served.child.once("exit", () => resume(Effect.void))
    served.child.kill(signal)
  })

const call = (url: string, method: string, path: string, options: { body?: unknown; token?: string } = {}) =>
  Effect.promise(async () => {
    const response = await fetch(url + path, {
      method,
      headers: {
        ...(options.body === undefined ? {} : { "content-type": "application/json" }),
        ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` })
      },
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) })
    })
    return { status: response.status, json: (await response.json()) as Record<string, unknown> }
  })

interface SplitState {
  readonly split: string
  readonly spent: { readonly runs: number }
}

const spentRuns = (url: string) =>
  Effect.map(
    call(url, "GET", "/status"),
    (reply) =>
      Object.fromEntries(
        (reply.json["splits"] as ReadonlyArray<SplitState>).map((split) => [split.split, split.spent.runs])
      )
  )

describe("holdout CLI", () => {
  it.live("every command has --help", () =>
    Effect.gen(function*() {
      const top = yield* holdout(["--help"])
      assert.strictEqual(top.code, 0, top.stderr)
      for (
        const command of [
          "run",
          "race",
          "resume",
          "serve",
          "mcp",
          "eval",
          "samples",
          "compare",
          "status",
          "submit",
          "finalize",
          "report",
          "init",
          "runs",
          "show",
          "view"
        ]
      ) {
        assert.match(top.stdout, new RegExp(`\\n  ${command} +\\S`), command)
        const help = yield* holdout([command, "--help"])
        assert.strictEqual(help.code, 0, `${command}: ${help.stderr}`)
        assert.include(help.stdout, "DESCRIPTION", command)
        // the executable's name in the usage and the examples, no filler
        assert.include(help.stdout, `$ holdout ${command}`, command)
        assert.include(help.stdout, "EXAMPLES", command)
        assert.notInclude(help.stdout, "A user-defined piece of text", command)
        assert.notInclude(help.stdout, "This setting is optional", command)
        assert.notInclude(help.stdout, "--wizard", command)
      }
      assert.include(top.stdout, "$ holdout init")
      assert.include(top.stdout, "HOLDOUT_URL")
    }), 120_000)

  it.live("run prints the samples of a viewable split, shows progress on long runs, and report renders", () => {
    const { dir, file } = makeConfig()
    return Effect.gen(function*() {
      const train = yield* holdout([
        "run",
        "-c",
        file,
        "--dataset",
        "qa",
        "--split",
        "train",
        "--candidate",
        "off-by-one"
      ])
      assert.strictEqual(train.code, 0, train.stderr)
      assert.match(
        train.stdout,
        /off-by-one on qa\/train completed, mean 75\.0% \(95% interval 36\.3%–113\.7%, SE 16\.4%\) over 8 samples/
      )
      assert.match(train.stdout, /\n\s+3\s+0\n/)
      // 12 samples of 400 ms at concurrency 4: longer than a second, so a progress line is shown
      const slow = yield* holdout([
        "run",
        "-c",
        file,
        "--dataset",
        "qa",
        "--split",
        "validation",
        "--candidate",
        "slow-exact"
      ])
      assert.strictEqual(slow.code, 0, slow.stderr)
      assert.match(
        slow.stderr,
        /progress: inferred \[[#-]+\] \d+\/12 .* \| scored \[[#-]+\] \d+\/12 .* errors? \| \d+s/
      )
      assert.notMatch(slow.stdout, /\n\s+\d+\s+[01]\n/, "per-sample results of a non_viewable split were printed")
      // the same from a stack module instead of a configuration file
      const fromModule = yield* holdout([
        "run",
        "--stack",
        join(stackFixture, "stack.ts"),
        "--dataset",
        "qa",
        "--split",
        "train",
        "--candidate",
        "exact"
      ])
      assert.strictEqual(fromModule.code, 0, fromModule.stderr)
      assert.include(fromModule.stdout, "exact on qa/train completed, mean 100.0% (95% interval 100.0%–100.0%")
      const html = join(dir, "report.html")
      const report = yield* holdout(["report", "-c", file, "--html", html])
      assert.strictEqual(report.code, 0, report.stderr)
      assert.match(
        report.stdout,
        /off-by-one\s+train\s+whole\s+1\s+0\s+75\.0%\s+75\.0%\s+75\.0%\s+\[36\.3%, 113\.7%\]\s+16\.4%/
      )
      assert.match(report.stdout, /qa\/validation\s+non_viewable\s+\[#+\.+\]\s+2 of 3 runs left/)
      // the budgeted viewable split is no warning on every command
      for (const outcome of [train, slow, report]) assert.notInclude(outcome.stderr, "WARN")
      // the viewer's page with the data embedded (its views are checked in Chromium by Viewer.test.ts)
      const page = readFileSync(html, "utf8")
      assert.include(page, `<script type="application/json" id="holdout-data">`)
      assert.include(page, "slow-exact")
      assert.include(page, "connect-src 'none'", "the report may fetch nothing")
      assert.notMatch(page, /(src|href)="(https?:)?\/\//, "the report is not self-contained")
    }).pipe(Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true }))))
  }, 120_000)

  it.live(
    "a Harbor stack from YAML: a partition of tasks run by nested `harbor run`, paths relative to the file",
    () => {
      const dir = mkdtempSync(join(tmpdir(), "holdout-cli-harbor-"))
      symlinkSync(join(root, "examples", "harbor", "tasks"), join(dir, "tasks"))
      const file = join(dir, "harbor.yaml")
      writeFileSync(
        file,
        `store: { kind: memory }
datasets:
  kind: harbor
  datasetId: tasks
  partition:
    train:
      - { include: hello-file, resultKey: holdout-examples/hello-file }
      - { include: sum-numbers, resultKey: holdout-examples/sum-numbers }
strategy:
  kind: harbor
  dir: jobs
  harbor: { taskSource: tasks, agent: oracle, launcher: [${JSON.stringify(fakeHarbor)}], timeoutSeconds: 120 }
budgets: [{ datasetId: tasks, split: train, runs: 1 }]
policy: { train: viewable }
`
      )
      return Effect.gen(function*() {
        const outcome = yield* holdout([
          "run",
          "-c",
          file,
          "--dataset",
          "tasks",
          "--split",
          "train",
          "--candidate",
          "oracle"
        ])
        assert.strictEqual(outcome.code, 0, outcome.stderr)
        assert.match(outcome.stdout, /oracle on tasks\/train completed, mean 100\.0% .*over 2 samples/)
        // the nested run got the task directory resolved against the configuration's directory
        assert.isTrue(readdirSync(join(dir, "jobs", "runs")).length === 1)
      }).pipe(Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true }))))
    },
    120_000
  )

  it.live("failures are one line on stderr and exit code 1, never a stack trace", () => {
    const { dir, file } = makeConfig()
    const broken = join(dir, "broken.yaml")
    writeFileSync(broken, readFileSync(file, "utf8").replace("budgets:", "budgets_typo: 1\nbudgets:"))
    return Effect.gen(function*() {
      const denied = yield* holdout(["run", "-c", file, "--dataset", "qa", "--split", "test", "--candidate", "exact"])
      assert.strictEqual(denied.code, 1)
      assert.match(denied.stderr, /^error: AccessDenied: Split "test" of dataset "qa" is no_access/m)
      const config = yield* holdout([
        "run",
        "-c",
        broken,
        "--dataset",
        "qa",
        "--split",
        "train",
        "--candidate",
        "exact"
      ])
      assert.strictEqual(config.code, 1)
      assert.include(config.stderr, "error: ConfigError")
      assert.include(config.stderr, "budgets_typo")
      const both = yield* holdout([
        "run",
        "-c",
        file,
        "--stack",
        join(stackFixture, "stack.ts"),
        "--dataset",
        "qa",
        "--split",
        "train",
        "--candidate",
        "x"
      ])
      assert.strictEqual(both.code, 1)
      assert.include(both.stderr, "--config and --stack both given")
      const offline = yield* holdout(["status", "--url", "http://127.0.0.1:9"])
      assert.strictEqual(offline.code, 1)
      assert.match(offline.stderr, /^error: /m)
      for (const outcome of [denied, config, both, offline]) assert.notMatch(outcome.stderr, /\n\s+at /)
    }).pipe(Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true }))))
  }, 120_000)
})

describe("holdout eval and samples: per-sample results through the sidecar, in pages", () => {
  it.live("eval names the samples not fully right; samples prints a page and its cursor, or every page", () => {
    const { dir, file } = makeConfig()
    return Effect.gen(function*() {
      const served = yield* serve(file)
      const client = (args: ReadonlyArray<string>) => holdout(args, { env: { HOLDOUT_URL: served.url } })
      const evaluated = yield* client(["eval", "--dataset", "qa", "--split", "train", "--candidate", "off-by-one"])
      assert.strictEqual(evaluated.code, 0, evaluated.stderr)
      assert.include(evaluated.stdout, "samples not fully right: 3, 7")
      const runId = /holdout samples (\S+)/.exec(evaluated.stdout)?.[1]
      assert.isDefined(runId, evaluated.stdout)
      const first = yield* client(["samples", runId!, "--limit", "3"])
      assert.strictEqual(first.code, 0, first.stderr)
      const ids = (text: string) =>
        text.trim().split("\n").map((line) => (JSON.parse(line) as { sampleId: number }).sampleId)
      assert.deepStrictEqual(ids(first.stdout), [0, 1, 2])
      assert.include(first.stderr, "next page: --after 2")
      const next = yield* client(["samples", runId!, "--limit", "3", "--after", "2"])
      assert.deepStrictEqual(ids(next.stdout), [3, 4, 5])
      const all = yield* client(["samples", runId!, "--limit", "3", "--all"])
      assert.deepStrictEqual(ids(all.stdout), [0, 1, 2, 3, 4, 5, 6, 7])
      // a non_viewable run's samples are refused, in one line
      const hidden = yield* client(["eval", "--dataset", "qa", "--split", "validation", "--candidate", "exact"])
      assert.notInclude(hidden.stdout, "holdout samples")
      const refused = yield* client(["samples", "no-such-run"])
      assert.strictEqual(refused.code, 1)
      assert.match(refused.stderr, /^error: RunNotFound: /m)
      yield* kill(served, "SIGTERM")
    }).pipe(
      Effect.ensuring(Effect.zipRight(stopAll, Effect.sync(() => rmSync(dir, { recursive: true, force: true }))))
    )
  }, 120_000)
})

describe("holdout compare, intervals and release mechanisms", () => {
  it.live("means come with their interval; compare pairs runs; a thresholdout split tells its mean only", () => {
    const { dir, file } = makeConfig(`releases:
  validation: { kind: thresholdout, reference: train, threshold: 0.04, sigma: 0.01, overfitBudget: 3 }
`)
    return Effect.gen(function*() {
      const served = yield* serve(file)
      const client = (args: ReadonlyArray<string>) => holdout(args, { env: { HOLDOUT_URL: served.url } })
      const runIds: Array<string> = []
      for (const candidate of ["exact", "off-by-one"]) {
        const evaluated = yield* client(["eval", "--dataset", "qa", "--split", "train", "--candidate", candidate])
        assert.strictEqual(evaluated.code, 0, evaluated.stderr)
        assert.match(
          evaluated.stdout,
          /\(viewable\): mean \d+\.\d% \(95% interval [\d.]+%–[\d.]+%, SE [\d.]+%\) over 8/
        )
        runIds.push(/holdout samples (\S+)/.exec(evaluated.stdout)![1]!)
      }
      const compared = yield* client(["compare", runIds[1]!, runIds[0]!])
      assert.strictEqual(compared.code, 0, compared.stderr)
      assert.include(compared.stdout, "on qa/train, 8 shared samples")
      assert.include(compared.stdout, "mean A 75.0%, mean B 100.0%")
      assert.include(compared.stdout, "difference A − B −25.0%, 95% bootstrap interval [")
      assert.include(compared.stdout, "one-sided (A no better than B): 1.0000 (permutation, exact)")
      const json = yield* client(["compare", runIds[0]!, runIds[1]!, "--json"])
      assert.strictEqual(json.code, 0, json.stderr)
      const parsed = JSON.parse(json.stdout) as {
        split: string
        comparison: { shared: number; difference: number; pValueGreater: number }
      }
      assert.deepStrictEqual(
        [parsed.split, parsed.comparison.shared, parsed.comparison.difference, parsed.comparison.pValueGreater],
        ["train", 8, 0.25, 0.25]
      )

      // through thresholdout: the mean it tells, nothing else
      const told = yield* client(["eval", "--dataset", "qa", "--split", "validation", "--candidate", "exact"])
      assert.strictEqual(told.code, 0, told.stderr)
      assert.match(told.stdout, /\(non_viewable\): thresholdout tells mean \d+\.\d%/)
      assert.notInclude(told.stdout, "interval")
      const status = yield* client(["status"])
      assert.match(status.stdout, /qa\/validation\s+non_viewable\s+2 runs\s+unlimited\s+[0-3] of 3/)
      // an optimizer compares viewable runs only, in one line
      const experiments = yield* call(served.url, "GET", "/experiments", {
        token: readFileSync(join(dir, "state", "admin.token"), "utf8").trim()
      })
      const hidden = (experiments.json["experiments"] as ReadonlyArray<{ runId: string; split: string }>)
        .find((entry) => entry.split === "validation")!.runId
      const refused = yield* client(["compare", hidden, runIds[0]!])
      assert.strictEqual(refused.code, 1)
      assert.match(refused.stderr, /^error: AccessDenied: /m)
      yield* kill(served, "SIGTERM")

      // the operator, from the store: any split; `run` tells what the optimizer was told
      const run = yield* holdout([
        "run",
        "-c",
        file,
        "--dataset",
        "qa",
        "--split",
        "validation",
        "--candidate",
        "off-by-one"
      ])
      assert.strictEqual(run.code, 0, run.stderr)
      assert.match(run.stdout, /completed, thresholdout tells mean \d+\.\d% \(the exact mean is withheld\)/)
      const second = /^run (\S+):/m.exec(run.stdout)![1]!
      const local = yield* holdout(["compare", "-c", file, hidden, second])
      assert.strictEqual(local.code, 0, local.stderr)
      assert.include(local.stdout, "on qa/validation, 12 shared samples")
      assert.include(local.stdout, "mean A 100.0%, mean B 75.0%")
      const report = yield* holdout(["report", "-c", file])
      assert.strictEqual(report.code, 0, report.stderr)
      assert.match(report.stdout, /off-by-one\s+validation\s+whole\s+1\s+0\s+75\.0%/)
      assert.match(
        report.stdout,
        /qa\/validation\s+non_viewable\s+\[#+\.+\]\s+1 of 3 runs left\s+overfitting budget [0-3] of 3 left/
      )
    }).pipe(
      Effect.ensuring(Effect.zipRight(stopAll, Effect.sync(() => rmSync(dir, { recursive: true, force: true }))))
    )
  }, 180_000)
})

describe("holdout race", () => {
  it.live(
    "races candidates on a viewable split, charged per round; stops in one line when the budget cannot pay",
    () => {
      const { dir, file } = makeConfig()
      return Effect.gen(function*() {
        const race = (args: ReadonlyArray<string>) => holdout(["race", "-c", file, "--dataset", "qa", ...args])
        const raced = yield* race(["--split", "train", "--candidates", "off-by-one,exact"])
        assert.strictEqual(raced.code, 0, raced.stderr)
        assert.include(raced.stdout, "round 1: 2 candidates on 8 samples")
        assert.match(raced.stdout, /winner exact: mean 100\.0% .*over 8 samples/)
        assert.include(raced.stdout, "spent 16 samples in 2 runs")
        const json = yield* race(["--split", "train", "--candidates", "exact,off-by-one", "--json", "--seed", "3"])
        assert.strictEqual(json.code, 0, json.stderr)
        const result = JSON.parse(json.stdout) as { winner: { candidate: { id: string } }; runsSpent: number }
        assert.deepStrictEqual([result.winner.candidate.id, result.runsSpent], ["exact", 2])
        // 4 of 5 runs spent: a round of two cannot be paid for
        const stopped = yield* race(["--split", "train", "--candidates", "exact,off-by-one"])
        assert.strictEqual(stopped.code, 1)
        assert.match(stopped.stderr, /^error: RaceStopped: The race on split "train" stopped/m)
        // an optimizer races on viewable splits only; the verifier anywhere, uncharged
        const denied = yield* race(["--split", "validation", "--candidates", "exact,off-by-one"])
        assert.match(denied.stderr, /^error: AccessDenied: /m)
        const admin = yield* race(["--split", "validation", "--candidates", "exact,off-by-one", "--admin"])
        assert.strictEqual(admin.code, 0, admin.stderr)
        assert.include(admin.stdout, "winner exact")
        for (const outcome of [stopped, denied]) assert.notMatch(outcome.stderr, /\n\s+at /)
      }).pipe(Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true }))))
    },
    120_000
  )
})

describe("holdout serve: restart safety", () => {
  it.live(
    "killed with SIGKILL mid-evaluation and restarted (on Node, then on Deno): budgets, runs and the finalize answer survive",
    () => {
      const { dir, file } = makeConfig()
      const token = () => readFileSync(join(dir, "state", "admin.token"), "utf8").trim()
      return Effect.gen(function*() {
        const first = yield* serve(file)
        const client = (args: ReadonlyArray<string>) => holdout(args, { env: { HOLDOUT_URL: first.url } })
        const evaluated = yield* client(["eval", "--dataset", "qa", "--split", "validation", "--candidate", "exact"])
        assert.strictEqual(evaluated.code, 0, evaluated.stderr)
        assert.match(evaluated.stdout, /\(non_viewable\): mean 100\.0% .*over 12 samples/)
        // a slow evaluation, cut short by SIGKILL
        const pending = call(first.url, "POST", "/eval", {
          body: { datasetId: "qa", split: "validation", candidate: { id: "slow-off-by-one" } }
        }).pipe(Effect.either, Effect.fork)
        yield* pending
        yield* Effect.sleep("800 millis")
        yield* kill(first, "SIGKILL")
        const before = { validation: 2, train: 0 }

        // the same store, a new process
        const second = yield* serve(file)
        assert.deepStrictEqual(yield* spentRuns(second.url), before, "the charges did not survive")
        const listed = yield* call(second.url, "GET", "/experiments", { token: token() })
        const experiments = listed.json["experiments"] as ReadonlyArray<
          { candidateId: string; status: string; runId: string }
        >
        assert.deepStrictEqual(
          experiments.map((entry) => [entry.candidateId, entry.status]),
          [["exact", "completed"], ["slow-off-by-one", "running"]]
        )
        const answer = yield* call(second.url, "POST", "/finalize", { token: token() })
        assert.strictEqual(answer.status, 200)
        assert.strictEqual(answer.json["candidate"], "exact")
        yield* kill(second, "SIGKILL")

        // resume finishes the interrupted run without a new charge
        const resumed = yield* holdout(["resume", "-c", file, experiments[1]!.runId])
        assert.strictEqual(resumed.code, 0, resumed.stderr)
        assert.include(resumed.stdout, "slow-off-by-one on qa/validation completed")

        // and under Deno, on the same database: same budgets, same answer, even from a new token
        const third = yield* serve(file, "deno")
        assert.deepStrictEqual(yield* spentRuns(third.url), before)
        const again = yield* call(third.url, "POST", "/finalize", { token: token() })
        assert.deepStrictEqual(again.json, answer.json)
        yield* kill(third, "SIGTERM")
        const reward = join(dir, "reward.json")
        const fourth = yield* serve(file)
        const finalized = yield* holdout(
          ["finalize", "--token-file", join(dir, "state", "admin.token"), "--output", reward],
          { env: { HOLDOUT_URL: fourth.url } }
        )
        yield* kill(fourth, "SIGTERM")
        assert.strictEqual(finalized.code, 0, finalized.stderr)
        assert.deepStrictEqual(JSON.parse(readFileSync(reward, "utf8")), answer.json["rewards"])
      }).pipe(
        Effect.ensuring(Effect.zipRight(stopAll, Effect.sync(() => rmSync(dir, { recursive: true, force: true }))))
      )
    },
    240_000
  )
})

describe("holdout status with a reserve and a free baseline", () => {
  it.live("tells the reserve left for the verifier and the splits whose free baseline evaluation is left", () => {
    const { dir, file } = writeConfig(
      "holdout-cli-levers-",
      `${fixtureSources()}budgets:
  - { datasetId: qa, split: train, runs: 5 }
  - { datasetId: qa, split: validation, runs: 4, reservedForFinalize: { runs: 2 } }
policy: { train: viewable, validation: non_viewable, test: no_access }
verifier:
  mode: auto_best
  selection: { datasetId: qa, split: validation }
  targets: [{ datasetId: qa, split: test, rewardKey: accuracy }]
  baseline: exact
  freeBaseline: true
sidecar: { tokenFile: state/admin.token, port: 0 }
`
    )
    return Effect.gen(function*() {
      const served = yield* serve(file)
      const client = (args: ReadonlyArray<string>) => holdout(args, { env: { HOLDOUT_URL: served.url } })
      const before = yield* client(["status"])
      assert.strictEqual(before.code, 0, before.stderr)
      assert.match(before.stdout, /qa\/validation\s+non_viewable\s+2 runs\s+unlimited/)
      assert.include(before.stdout, "qa/validation: 2 runs and 0 samples left in reserve for the verifier's finalize")
      assert.include(before.stdout, "free baseline evaluation left on qa/train, qa/validation")
      const evaluated = yield* client(["eval", "--dataset", "qa", "--split", "train", "--candidate", "exact"])
      assert.strictEqual(evaluated.code, 0, evaluated.stderr)
      const after = yield* client(["status"])
      assert.match(after.stdout, /qa\/train\s+viewable\s+5 runs/)
      assert.include(after.stdout, "free baseline evaluation left on qa/validation")
      yield* kill(served, "SIGTERM")
    }).pipe(
      Effect.ensuring(Effect.zipRight(stopAll, Effect.sync(() => rmSync(dir, { recursive: true, force: true }))))
    )
  }, 120_000)
})
