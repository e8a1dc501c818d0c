/**
 * `holdout mcp` as a coding agent meets it: spawned over stdio and driven by an independent MCP
 * client (`@modelcontextprotocol/sdk`), on a stack with a viewable, a non_viewable and a no_access split.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Model, SampleIds, View } from "@holdout/core"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { type ChildProcess, spawnSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Mcp, SidecarApi } from "../src/index.js"
import { bin, environment, fixtureStack, root, serve, stackFixture, writeConfig } from "./helpers.js"

/** A fresh stack configuration (its store in its own directory), served with a sidecar on a free port. */
const makeConfig = () => {
  const { dir, file } = writeConfig(
    "holdout-mcp-",
    `${fixtureStack(2)}verifier:
  mode: submit
  selection: { datasetId: qa, split: validation }
  targets: [{ datasetId: qa, split: test, rewardKey: accuracy }]
sidecar: { tokenFile: state/admin.token, port: 0, host: 127.0.0.1 }
`
  )
  return { dir, config: file }
}

const env = environment({ HOLDOUT_LOG: "info" })

/** What a tool call answered. */
interface Answer {
  readonly isError: boolean
  readonly body: unknown
  readonly text: string
}

/** A server spawned over stdio with a client connected to it. */
interface Session {
  readonly client: Client
  readonly pid: number | null
  readonly stderr: () => string
  /** Closes stdin, as a client does at the end; the server is killed if it outlives that. */
  readonly close: () => Promise<void>
}

const connect = async (command: string, args: ReadonlyArray<string>): Promise<Session> => {
  const transport = new StdioClientTransport({ command, args: [...args], cwd: root, env, stderr: "pipe" })
  let stderr = ""
  transport.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")))
  const client = new Client({ name: "holdout-test", version: "0.1.0" })
  await client.connect(transport)
  const pid = transport.pid
  return {
    client,
    pid,
    stderr: () => stderr,
    close: async () => {
      await client.close()
      if (pid !== null && isRunning(pid)) process.kill(pid, "SIGKILL")
    }
  }
}

const isRunning = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Starts `holdout serve` and waits until it listens; the child is returned with its address. */
const serveSidecar = (config: string) => Effect.runPromise(serve(["-c", config], { env: { HOLDOUT_LOG: "info" } }))

/** A port that was free a moment ago. */
const freePort = () =>
  new Promise<number>((resolve) => {
    const server = createServer()
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0))
    })
  })

/** The session the calls go to. */
let session: Session

const call = async (name: string, args: Record<string, unknown> = {}): Promise<Answer> => {
  const result = await session.client.callTool({ name, arguments: args })
  const content = result.content as ReadonlyArray<{ readonly type: string; readonly text: string }>
  assert.strictEqual(content.length, 1)
  assert.strictEqual(content[0]!.type, "text")
  const text = content[0]!.text
  // the structured answer and the text say the same
  assert.deepStrictEqual(JSON.parse(text), result.structuredContent)
  return { isError: result.isError === true, body: result.structuredContent, text }
}

/** A successful answer, decoded by the schema the sidecar's route answers with: the same shape as HTTP. */
const ok = <A, I>(schema: Schema.Schema<A, I>, answer: Answer): A => {
  assert.isFalse(answer.isError, answer.text)
  return Schema.decodeUnknownSync(schema, { onExcessProperty: "error" })(answer.body)
}

const Submitted = Schema.Struct({ submitted: Model.Candidate })

/** A failure is a result with isError, the error's tag and a one-line message. */
const assertFailure = (answer: Answer, tag: string): Mcp.Failure => {
  assert.isTrue(answer.isError, `expected ${tag}, got ${answer.text}`)
  const failure = Schema.decodeUnknownSync(Mcp.Failure)(answer.body)
  assert.strictEqual(failure._tag, tag)
  assert.isAbove(failure.message.length, 0)
  assert.notInclude(failure.message, "\n")
  return failure
}

const remainingRuns = async (split: string) =>
  ok(SidecarApi.Status, await call("status")).splits.find((entry) => entry.split === split)?.remaining.runs

const modes = {
  "in process (-c holdout.yaml)": "in process",
  "through a running sidecar (--url)": "remote"
} as const

describe.each(Object.entries(modes))("holdout mcp %s, with an MCP client over stdio", (_, mode) => {
  const { config, dir } = makeConfig()
  let adminRunId: string
  let sidecar: ChildProcess | undefined

  beforeAll(async () => {
    // a verifier's run, made beside the server on the same store: the optimizer must never see it
    const admin = spawnSync(
      "node",
      [
        "--import",
        "tsx",
        bin,
        "run",
        "-c",
        config,
        "--dataset",
        "qa",
        "--split",
        "train",
        "--candidate",
        "exact",
        "--admin"
      ],
      { cwd: root, env, encoding: "utf8" }
    )
    const made = /run (\S+): /.exec(admin.stdout)
    assert.isNotNull(made, admin.stdout + admin.stderr)
    adminRunId = made![1]!
    if (mode === "in process") {
      session = await connect("node", ["--import", "tsx", bin, "mcp", "-c", config])
    } else {
      const served = await serveSidecar(config)
      sidecar = served.child
      session = await connect("node", ["--import", "tsx", bin, "mcp", "--url", served.url])
    }
  })

  afterAll(async () => {
    await session?.close()
    sidecar?.kill("SIGKILL")
    rmSync(dir, { recursive: true, force: true })
  })

  it("initializes as the holdout server and lists the five tools with their input schemas", async () => {
    assert.deepInclude(session.client.getServerVersion(), { name: "holdout" })
    assert.isDefined(session.client.getServerCapabilities()?.tools)
    const { tools } = await session.client.listTools()
    const byName = Object.fromEntries(tools.map((tool) => [tool.name, tool]))
    assert.deepStrictEqual(tools.map((tool) => tool.name).sort(), ["eval", "runs", "show", "status", "submit"])
    for (const tool of tools) {
      assert.isAbove(tool.description?.length ?? 0, 20, tool.name)
      assert.strictEqual(tool.inputSchema.type, "object")
    }
    const evalSchema = byName["eval"]!.inputSchema
    assert.sameMembers([...(evalSchema.required ?? [])], ["datasetId", "split", "candidate"])
    assert.sameMembers(Object.keys(evalSchema.properties ?? {}), [
      "datasetId",
      "split",
      "candidate",
      "sampleIds",
      "numSamples",
      "idempotencyKey"
    ])
    assert.deepInclude(evalSchema.properties?.["sampleIds"] as object, { type: "array" })
    assert.sameMembers([...(byName["submit"]!.inputSchema.required ?? [])], ["candidate"])
    assert.sameMembers([...(byName["show"]!.inputSchema.required ?? [])], ["runId"])
    assert.sameMembers(Object.keys(byName["show"]!.inputSchema.properties ?? {}), ["runId", "after", "limit"])
    assert.deepStrictEqual(byName["status"]!.inputSchema.properties, {})
    assert.deepStrictEqual(byName["runs"]!.inputSchema.properties, {})
    // the reading tools say so; eval and submit do change state
    for (const name of ["status", "runs", "show"]) assert.isTrue(byName[name]!.annotations?.readOnlyHint, name)
    for (const name of ["eval", "submit"]) assert.isFalse(byName[name]!.annotations?.readOnlyHint, name)
  })

  it("status lists the evaluable splits with their budgets, never the no_access one", async () => {
    const answer = await call("status")
    const status = ok(SidecarApi.Status, answer)
    assert.isTrue(status.submitEnabled)
    assert.deepStrictEqual(status.splits.map((entry) => [entry.split, entry.tier, entry.remaining.runs]), [
      ["train", "viewable", 5],
      ["validation", "non_viewable", 2]
    ])
    assert.notInclude(answer.text, "test")
    // a call that sends no arguments at all is a call with none
    const bare = await session.client.callTool({ name: "status" })
    assert.notStrictEqual(bare.isError, true)
    assert.deepStrictEqual(bare.structuredContent, answer.body)
  })

  it("eval on a viewable split answers the run, and show gives its per-sample results", async () => {
    const reply = ok(
      SidecarApi.EvalResponse,
      await call("eval", { datasetId: "qa", split: "train", candidate: { id: "off-by-one" } })
    )
    const experiment = reply.experiment
    if (experiment._tag !== "viewable") return assert.fail(`a viewable experiment was expected: ${experiment._tag}`)
    assert.deepStrictEqual(SampleIds.toArray(experiment.run.sampleIds), [0, 1, 2, 3, 4, 5, 6, 7])
    assert.strictEqual(experiment.summary.metrics.numSamples, 8)
    assert.strictEqual(reply.remaining?.runs, 4)
    const runId = experiment.summary.runId

    const shown = ok(SidecarApi.Shown, await call("show", { runId, limit: 5 }))
    assert.strictEqual(shown.tier, "viewable")
    assert.deepStrictEqual(shown.summary, experiment.summary)
    assert.deepStrictEqual(shown.run?.sampleIds, experiment.run.sampleIds)
    const page = shown.samples!
    assert.deepStrictEqual(page.samples.map((sample) => sample.sampleId), [0, 1, 2, 3, 4])
    assert.strictEqual(page.next, 4)
    // per sample: the output, the score, and the input without its label (3 + 0 off by one)
    const third = page.samples[3]!
    assert.deepInclude(third, { sampleId: 3, score: 0, output: 4 })
    assert.deepStrictEqual(third.input, { a: 3, b: 0 })
    const rest = ok(SidecarApi.Shown, await call("show", { runId, after: page.next }))
    assert.deepStrictEqual(rest.samples?.samples.map((sample) => sample.sampleId), [5, 6, 7])
    assert.isNull(rest.samples?.next)
  })

  it("eval on a non_viewable split answers a summary with no per-sample data, and so do show and runs", async () => {
    const answer = await call("eval", { datasetId: "qa", split: "validation", candidate: { id: "exact" } })
    const experiment = ok(SidecarApi.EvalResponse, answer).experiment
    if (experiment._tag !== "non_viewable") return assert.fail(`a summary was expected: ${experiment._tag}`)
    assert.notInclude(answer.text, "sampleId")
    assert.notInclude(answer.text, "\"run\"")
    if (!("metrics" in experiment.summary)) return assert.fail("metrics were expected")
    assert.strictEqual(experiment.summary.metrics.numSamples, 12)
    const runId = experiment.summary.runId

    const shownAnswer = await call("show", { runId })
    const shown = ok(SidecarApi.Shown, shownAnswer)
    assert.strictEqual(shown.tier, "non_viewable")
    assert.isUndefined(shown.run)
    assert.isUndefined(shown.samples)
    assert.deepStrictEqual(shown.summary, experiment.summary)
    assert.notInclude(shownAnswer.text, "sampleId")

    const runsAnswer = await call("runs")
    const entry = ok(SidecarApi.Runs, runsAnswer).runs.find((run) => run.summary.runId === runId)
    assert.deepStrictEqual(entry, { tier: "non_viewable", summary: experiment.summary })
    assert.notInclude(runsAnswer.text, "sampleId")
  })

  it("eval on a no_access split is AccessDenied, and charges nothing", async () => {
    const before = (await call("status")).body
    assertFailure(await call("eval", { datasetId: "qa", split: "test", candidate: { id: "exact" } }), "AccessDenied")
    assert.deepStrictEqual((await call("status")).body, before)
  })

  it("eval past the budget is BudgetExhausted, and charges nothing", async () => {
    ok(
      SidecarApi.EvalResponse,
      await call("eval", { datasetId: "qa", split: "validation", candidate: { id: "off-by-one" } })
    )
    assert.strictEqual(await remainingRuns("validation"), 0)
    const refused = assertFailure(
      await call("eval", { datasetId: "qa", split: "validation", candidate: { id: "again" } }),
      "BudgetExhausted"
    )
    assert.deepInclude(refused, { datasetId: "qa", split: "validation", reason: "runs" })
    assert.strictEqual(await remainingRuns("validation"), 0)
  })

  it("malformed arguments are InvalidRequest naming the field, before anything is charged", async () => {
    const before = await remainingRuns("train")
    const unknown = await call("eval", { datasetId: "qa", split: "train", candidate: { id: "x" }, budget: 9 })
    assert.include(assertFailure(unknown, "InvalidRequest").message, "budget")
    const missing = await call("eval", { datasetId: "qa", split: "train" })
    assert.include(assertFailure(missing, "InvalidRequest").message, "candidate")
    // and what the engine refuses, as over HTTP
    const outOfRange = await call("eval", {
      datasetId: "qa",
      split: "train",
      candidate: { id: "x" },
      sampleIds: [0, 99]
    })
    assert.include(assertFailure(outOfRange, "InvalidRequest").message, "99")
    assertFailure(await call("eval", { datasetId: "qa", split: "tain", candidate: { id: "x" } }), "AccessDenied")
    assertFailure(await call("show", { runId: "r", limit: 0 }), "InvalidRequest")
    assert.strictEqual(await remainingRuns("train"), before)
  })

  it("runs lists the optimizer's runs only: the verifier's run is as unknown as one never made", async () => {
    const answer = await call("runs")
    const runs = ok(SidecarApi.Runs, answer).runs
    assert.deepStrictEqual(runs.map((run) => [run.tier, run.summary.split, run.summary.candidateId]), [
      ["viewable", "train", "off-by-one"],
      ["non_viewable", "validation", "exact"],
      ["non_viewable", "validation", "off-by-one"]
    ])
    assert.notInclude(answer.text, adminRunId)
    const hidden = assertFailure(await call("show", { runId: adminRunId }), "RunNotFound")
    const never = assertFailure(await call("show", { runId: "no-such-run" }), "RunNotFound")
    // the same answer whatever the reason
    assert.strictEqual(hidden.message.replace(adminRunId, "X"), never.message.replace("no-such-run", "X"))
  })

  it("submit records the final candidate", async () => {
    assert.deepStrictEqual(ok(Submitted, await call("submit", { candidate: { id: "exact" } })), {
      submitted: { id: "exact" }
    })
    assertFailure(await call("submit", {}), "InvalidRequest")
  })

  it("keeps stdout for the protocol: what a task prints goes to stderr, with the logs", async () => {
    const reply = ok(
      SidecarApi.EvalResponse,
      await call("eval", { datasetId: "qa", split: "train", candidate: { id: "noisy-exact" } })
    )
    assert.strictEqual(View.toldMean(reply.experiment.summary), 1)
    // through a sidecar, the task runs (and prints) there
    if (mode === "in process") {
      assert.include(session.stderr(), "noisy output of sample")
      assert.include(session.stderr(), "MCP: serving the stack")
    } else assert.include(session.stderr(), "MCP: serving the sidecar at http://127.0.0.1:")
  })

  it("ends, without failure, when the client closes its stdin", async () => {
    const pid = session.pid!
    await session.client.close()
    assert.isFalse(isRunning(pid))
    assert.include(session.stderr(), "the client closed stdin; the server stops")
    assert.notInclude(session.stderr(), "level=ERROR")
  })
})

describe("holdout mcp --url without a sidecar", () => {
  afterAll(async () => {
    await session?.close()
  })

  it("answers SidecarUnavailable in one line, with what to do", async () => {
    // a port nothing listens on: the sidecar is not started
    const port = await freePort()
    session = await connect("node", ["--import", "tsx", bin, "mcp", "--url", `http://127.0.0.1:${port}`])
    const { tools } = await session.client.listTools()
    assert.strictEqual(tools.length, 5)
    const failure = assertFailure(await call("status"), "SidecarUnavailable")
    assert.include(failure.message, `http://127.0.0.1:${port}`)
    assert.include(failure.message, "ECONNREFUSED")
    assert.include(failure.message, "holdout serve")
  })
})

describe("holdout mcp on Deno", () => {
  const denoDir = mkdtempSync(join(tmpdir(), "holdout-mcp-deno-"))
  const denoConfig = join(denoDir, "holdout.yaml")

  beforeAll(async () => {
    writeFileSync(
      denoConfig,
      `store: { kind: sqlite, filename: state/holdout.db }
datasets: { kind: jsonl, dir: ${JSON.stringify(join(stackFixture, "data"))} }
strategy: { kind: task, module: ${JSON.stringify(join(stackFixture, "task.ts"))} }
budgets: [{ datasetId: qa, split: train, runs: 1 }]
policy: { train: viewable, test: no_access }
`
    )
    session = await connect(join(root, "node_modules", ".bin", "deno"), [
      "run",
      "-A",
      "--sloppy-imports",
      bin,
      "mcp",
      "-c",
      denoConfig
    ])
  })

  afterAll(async () => {
    await session?.close()
    rmSync(denoDir, { recursive: true, force: true })
  })

  it("serves the same tools, answers and errors", async () => {
    const { tools } = await session.client.listTools()
    assert.deepStrictEqual(tools.map((tool) => tool.name).sort(), ["eval", "runs", "show", "status", "submit"])
    const reply = ok(
      SidecarApi.EvalResponse,
      await call("eval", { datasetId: "qa", split: "train", candidate: { id: "exact" } })
    )
    assert.strictEqual(reply.experiment._tag, "viewable")
    const shown = ok(SidecarApi.Shown, await call("show", { runId: reply.experiment.summary.runId }))
    assert.strictEqual(shown.samples?.samples.length, 8)
    assertFailure(await call("eval", { datasetId: "qa", split: "test", candidate: { id: "exact" } }), "AccessDenied")
    assertFailure(
      await call("eval", { datasetId: "qa", split: "train", candidate: { id: "exact" } }),
      "BudgetExhausted"
    )
  })
})
