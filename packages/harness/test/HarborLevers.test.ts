/**
 * The Harbor strategy's per-sample levers (`feedbackTranscripts`, `exposeAttemptDetail`) and its
 * infra-retry rounds behind the sidecar and `holdout mcp`, on a stack read from a configuration
 * file, with the fake harbor: a `viewable` split shows the transcripts and attempts per sample; a
 * `non_viewable` split shows neither, in no answer and no results file; a `no_access` split is refused.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpServer from "@effect/platform/HttpServer"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { TaskStore } from "@holdout/core"
import { Sidecar, StackConfig } from "@holdout/harness"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { createServer } from "node:http"
import { createRequire } from "node:module"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { bin, environment, root } from "./helpers.js"

const fakeHarbor = createRequire(import.meta.url).resolve("@holdout/strategy-harbor/fake-harbor")

/** In every transcript the fake agents leave, and in the name of the exception some of them die of. */
const marker = `TRANSCRIPT-MARKER-${Math.random().toString(36).slice(2)}`
const crash = "MarkerAgentCrashError"

const tasks: Record<string, ReadonlyArray<{ readonly name: string; readonly fake: unknown }>> = {
  train: [
    { name: "train-zero", fake: { attempts: [{ rewards: { reward: 0 }, pane: `${marker} train-zero` }] } },
    { name: "train-crash", fake: { attempts: [{ exception: crash, pane: `${marker} train-crash` }] } },
    { name: "train-pass", fake: { attempts: [{ rewards: { reward: 1 }, pane: `${marker} train-pass` }] } },
    // down on the main run (a rate limit), solved by the infra-retry round
    {
      name: "train-flaky",
      fake: { rounds: [[{ exception: "RateLimitError", pane: `${marker} flaky` }], [{ rewards: { reward: 1 } }]] }
    }
  ],
  validation: Array.from({ length: 5 }, (_, index) => ({
    name: `val-task-${index}`,
    fake: {
      attempts: [
        index === 4
          ? { exception: crash, trajectory: `{"marker": "${marker}"}` }
          : { rewards: { reward: index === 0 ? 1 : 0 }, pane: `${marker} val-${index}` }
      ]
    }
  })),
  secret: [{ name: "secret-task", fake: { attempts: [{ rewards: { reward: 0 }, pane: `${marker} secret` }] } }]
}

/** A stack configuration over the fake tasks, in a fresh directory; the levers are on. */
const makeStack = () => {
  const dir = mkdtempSync(join(tmpdir(), "holdout-harbor-levers-"))
  for (const split of Object.values(tasks)) {
    for (const task of split) {
      mkdirSync(join(dir, "tasks", task.name), { recursive: true })
      writeFileSync(join(dir, "tasks", task.name, "task.toml"), "[agent]\ntimeout_sec = 600\n")
      writeFileSync(join(dir, "tasks", task.name, "fake.json"), JSON.stringify(task.fake))
    }
  }
  const partition = Object.fromEntries(Object.entries(tasks).map(([split, list]) => [split, list.map((t) => t.name)]))
  const file = join(dir, "holdout.yaml")
  writeFileSync(
    file,
    `store: { kind: memory }
datasets: { kind: harbor, datasetId: tb, partition: ${JSON.stringify(partition)} }
strategy:
  kind: harbor
  dir: harbor
  harbor:
    taskSource: tasks
    agent: candidate.agent:Agent
    launcher: [${JSON.stringify(fakeHarbor)}]
    timeoutSeconds: 120
    feedbackTranscripts: true
    feedbackMaxBytes: 200
    exposeAttemptDetail: true
    infraRetryRounds: 1
    infraRetryDelaySeconds: 0
budgets:
  - { datasetId: tb, split: train, runs: 3 }
  - { datasetId: tb, split: validation, runs: 3 }
policy: { train: viewable, validation: non_viewable, secret: no_access }
verifier: { mode: submit, targets: [] }
sidecar: { tokenFile: state/admin.token, resultsDir: results }
`
  )
  return { dir, file, results: join(dir, "results") }
}

/** Every file under `dir`, with its text. */
const filesUnder = (dir: string): ReadonlyArray<{ readonly file: string; readonly text: string }> =>
  readdirSync(dir, { recursive: true, encoding: "utf8" })
    .map((name) => join(dir, name))
    .filter((file) => statSync(file).isFile())
    .map((file) => ({ file, text: readFileSync(file, "utf8") }))

/** What no answer about a non_viewable or no_access split may hold. */
const assertNothingPerSample = (text: string, where: string) => {
  for (const secret of [marker, crash, "val-task", `"attempts"`, `"feedback"`, "sampleId", "infraRetry"]) {
    assert.notInclude(text, secret, `${where} shows ${secret}`)
  }
}

interface PerSample {
  readonly sampleId: number
  readonly score?: number
  readonly feedback?: string
  readonly output: {
    readonly attempts?: ReadonlyArray<{ readonly reward: number | null; readonly exception: string | null }>
    readonly infraRetry?: unknown
  }
}

/** Checks the per-sample records of the viewable `train` run. */
const assertTrainSamples = (samples: ReadonlyArray<PerSample>) => {
  const byId = new Map(samples.map((sample) => [sample.sampleId, sample]))
  assert.deepStrictEqual([...byId.keys()].sort(), [0, 1, 2, 3])
  assert.strictEqual(byId.get(0)!.feedback, `${marker} train-zero`)
  assert.deepStrictEqual(byId.get(0)!.output.attempts, [{ reward: 0, exception: null }])
  assert.strictEqual(byId.get(1)!.feedback, `${marker} train-crash`)
  assert.deepStrictEqual(byId.get(1)!.output.attempts, [{ reward: null, exception: crash }])
  assert.isUndefined(byId.get(2)!.feedback, "a sample that scored has no feedback")
  assert.deepStrictEqual(byId.get(2)!.output.attempts, [{ reward: 1, exception: null }])
  // recovered by the infra-retry round
  assert.strictEqual(byId.get(3)!.score, 1)
  assert.deepStrictEqual(byId.get(3)!.output.attempts, [{ reward: 1, exception: null }])
  assert.deepStrictEqual(byId.get(3)!.output.infraRetry, {
    recoveredRound: 1,
    discardedRounds: [["RateLimitError[infra] x1"]]
  })
}

/** The parts of the answers that the tests read (each answer has some of them). */
interface Body {
  readonly _tag?: string
  readonly experiment?: {
    readonly _tag: string
    readonly summary: { readonly runId: string; readonly metrics: { readonly numSamples: number } }
  }
  readonly remaining?: unknown
  readonly resultPath?: string
  readonly splits?: ReadonlyArray<{ readonly split: string; readonly spent: unknown }>
  /** A page of samples (`/runs/{runId}/samples`), or a run shown with its page (`/runs/{runId}`). */
  readonly samples?: ReadonlyArray<PerSample> & { readonly samples: ReadonlyArray<PerSample> }
  readonly runs?: ReadonlyArray<{ readonly split: string }>
}

interface Reply {
  readonly status: number
  readonly text: string
  readonly json: Body
}

const call = (url: string, method: string, path: string, body?: unknown) =>
  Effect.promise(async (): Promise<Reply> => {
    const response = await fetch(url + path, {
      method,
      ...(body === undefined ? {} : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
    })
    const text = await response.text()
    return { status: response.status, text, json: JSON.parse(text) as Body }
  })

describe("Harbor levers behind the sidecar", () => {
  it.scoped("viewable: feedback and attempts per sample; non_viewable: neither anywhere; no_access: refused", () =>
    Effect.gen(function*() {
      const stack = makeStack()
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(stack.dir, { recursive: true, force: true })))
      const loaded = yield* StackConfig.load(stack.file)
      const context = yield* Layer.build(
        Sidecar.layer({ tokenFile: join(stack.dir, "state", "admin.token"), resultsDir: stack.results }).pipe(
          Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
          Layer.provideMerge(StackConfig.verifier(loaded).pipe(Layer.provideMerge(StackConfig.stack(loaded))))
        )
      )
      const address = Context.get(context, HttpServer.HttpServer).address
      const url = `http://127.0.0.1:${address._tag === "TcpAddress" ? address.port : 0}`
      const evaluate = (split: string) =>
        call(url, "POST", "/eval", { datasetId: "tb", split, candidate: { id: "c1" } })

      // viewable
      const train = yield* evaluate("train")
      assert.strictEqual(train.status, 200, train.text)
      assert.strictEqual(train.json.experiment!._tag, "viewable")
      // the infra-retry round charged nothing: one run of the split's budget, its four samples
      assert.deepStrictEqual(train.json.remaining, { runs: 2, samples: null })
      const status = yield* call(url, "GET", "/status")
      const trainStatus = status.json.splits!.find((entry) => entry.split === "train")!
      assert.deepStrictEqual(trainStatus.spent, { runs: 1, samples: 4 })
      const trainRun = encodeURIComponent(train.json.experiment!.summary.runId)
      const samples = yield* call(url, "GET", `/runs/${trainRun}/samples`)
      assert.strictEqual(samples.status, 200, samples.text)
      assertTrainSamples(samples.json.samples!)
      const shown = yield* call(url, "GET", `/runs/${trainRun}`)
      assertTrainSamples(shown.json.samples!.samples)
      const trainFiles = filesUnder(train.json.resultPath!)
      assertTrainSamples(
        trainFiles.filter((entry) => /\/\d+\.json$/.test(entry.file)).map((entry) => JSON.parse(entry.text))
      )

      // non_viewable
      const validation = yield* evaluate("validation")
      assert.strictEqual(validation.status, 200, validation.text)
      assert.strictEqual(validation.json.experiment!._tag, "non_viewable")
      assert.strictEqual(validation.json.experiment!.summary.metrics.numSamples, 5)
      assertNothingPerSample(validation.text, "the non_viewable /eval answer")
      const hidden = encodeURIComponent(validation.json.experiment!.summary.runId)
      const refused = yield* call(url, "GET", `/runs/${hidden}/samples`)
      assert.deepStrictEqual([refused.status, refused.json._tag], [403, "AccessDenied"])
      assertNothingPerSample(refused.text, "the refused samples of a non_viewable run")
      const summary = yield* call(url, "GET", `/runs/${hidden}`)
      assert.strictEqual(summary.status, 200, summary.text)
      assertNothingPerSample(summary.text, "GET /runs/<non_viewable run>")
      const listed = yield* call(url, "GET", "/runs")
      const hiddenListing = JSON.stringify(
        listed.json.runs!.filter((entry) => entry.split === "validation")
      )
      assertNothingPerSample(hiddenListing, "the listing of the non_viewable run")
      // the records behind it do hold the transcripts and attempts: the answers above hide them
      const store = Context.get(context, TaskStore.TaskStore)
      const stored = yield* Effect.orDie(store.listSamples(validation.json.experiment!.summary.runId, { limit: 10 }))
      assert.strictEqual(stored.length, 5)
      assert.isTrue(stored.every((sample) => sample.feedback?.includes(marker) === true || sample.score === 1))
      assert.isTrue(stored.every((sample) => Array.isArray((sample.output as { attempts?: unknown }).attempts)))
      assert.deepStrictEqual(readdirSync(validation.json.resultPath!), ["summary.json"])
      for (const entry of filesUnder(validation.json.resultPath!)) assertNothingPerSample(entry.text, entry.file)

      // no_access
      const secret = yield* evaluate("secret")
      assert.deepStrictEqual([secret.status, secret.json._tag], [403, "AccessDenied"])
      assertNothingPerSample(secret.text, "the no_access answer")
      // the only results files holding a transcript are the viewable run's sample files
      for (const entry of filesUnder(stack.results)) {
        if (entry.text.includes(marker)) assert.match(entry.file, /^.*\/train__[^/]+\/\d+\.json$/)
      }
    }).pipe(Effect.provide(NodeContext.layer)))
})

// the same configuration as above, whose records hold transcripts and attempts (checked there)
describe("Harbor levers behind holdout mcp", () => {
  const stack = makeStack()
  let client: Client
  let transport: StdioClientTransport

  beforeAll(async () => {
    transport = new StdioClientTransport({
      command: "node",
      args: ["--import", "tsx", bin, "mcp", "-c", stack.file],
      cwd: root,
      env: environment({ HOLDOUT_LOG: "info" }),
      stderr: "pipe"
    })
    client = new Client({ name: "holdout-test", version: "0.1.0" })
    await client.connect(transport)
  }, 60_000)

  afterAll(async () => {
    await client?.close()
    const pid = transport?.pid
    if (pid !== null && pid !== undefined) {
      try {
        process.kill(pid, "SIGKILL")
      } catch {
        // already gone
      }
    }
    rmSync(stack.dir, { recursive: true, force: true })
  })

  const tool = async (name: string, args: Record<string, unknown>) => {
    const result = await client.callTool({ name, arguments: args })
    const content = result.content as ReadonlyArray<{ readonly text: string }>
    return { isError: result.isError === true, text: content[0]!.text, body: result.structuredContent as Body }
  }

  it(
    "the eval and show tools show the levers on a viewable split and nothing of them on a non_viewable one",
    async () => {
      const train = await tool("eval", { datasetId: "tb", split: "train", candidate: { id: "c1" } })
      assert.isFalse(train.isError, train.text)
      const shown = await tool("show", { runId: train.body.experiment!.summary.runId })
      assert.isFalse(shown.isError, shown.text)
      assertTrainSamples(shown.body.samples!.samples)

      const validation = await tool("eval", { datasetId: "tb", split: "validation", candidate: { id: "c1" } })
      assert.isFalse(validation.isError, validation.text)
      assert.strictEqual(validation.body.experiment!._tag, "non_viewable")
      assertNothingPerSample(validation.text, "the non_viewable eval tool answer")
      const hidden = await tool("show", { runId: validation.body.experiment!.summary.runId })
      assertNothingPerSample(hidden.text, "the show tool on the non_viewable run")
      const runs = await tool("runs", {})
      assertNothingPerSample(
        JSON.stringify(runs.body.runs!.filter((entry) => entry.split === "validation")),
        "the runs tool's listing of the non_viewable run"
      )
      for (const entry of filesUnder(join(stack.results))) {
        if (entry.text.includes(marker)) assert.match(entry.file, /^.*\/train__[^/]+\/\d+\.json$/)
      }

      const secret = await tool("eval", { datasetId: "tb", split: "secret", candidate: { id: "c1" } })
      assert.isTrue(secret.isError)
      assert.strictEqual(secret.body._tag, "AccessDenied")
      assertNothingPerSample(secret.text, "the no_access eval tool answer")
    },
    60_000
  )
})
