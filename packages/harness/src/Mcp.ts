/**
 * `holdout mcp`: the optimizer's operations as MCP tools, for coding agents, over stdio (`@effect/ai`
 * `McpServer`). The tools are `eval`, `status`, `submit`, `runs` and `show`; each calls the operation of
 * `Agent` that the sidecar's HTTP route calls, so answers are projected by tier as over HTTP and fail
 * with the same errors. No tool has an admin power: there is no finalize, no admin evaluation and no
 * listing of the verifier's runs.
 *
 * Two ways to serve: through a running sidecar (`serveRemote`, `holdout mcp --url`), where the MCP
 * process holds nothing but the sidecar's address, as an untrusted optimizer's side must; or in process
 * over a configuration's stack (`serve`, `holdout mcp -c holdout.yaml`), for a local setup where the
 * agent may read the store anyway. Both answer alike.
 *
 * - A tool's result is its answer as JSON, in `structuredContent` and as the text of its content.
 * - A failure is a result with `isError: true` whose body is the HTTP error body: `_tag`, a one-line
 *   `message` and the error's public fields (a store failure's cause stays in the log, on stderr).
 * - Arguments are decoded strictly: a missing, mistyped or unknown field is `InvalidRequest` naming
 *   it, before anything is charged.
 * - stdout carries the protocol only: logs go to stderr, and so does whatever a task module prints
 *   with `console.log` while the server runs.
 *
 * @since 0.1.0
 */
import * as AiError from "@effect/ai/AiError"
import * as McpSchema from "@effect/ai/McpSchema"
import * as McpServer from "@effect/ai/McpServer"
import * as Tool from "@effect/ai/Tool"
import * as Toolkit from "@effect/ai/Toolkit"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeSink from "@effect/platform-node/NodeSink"
import * as NodeStream from "@effect/platform-node/NodeStream"
import * as Path from "@effect/platform/Path"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as RpcServer from "@effect/rpc/RpcServer"
import { Model } from "@holdout/core"
import * as Cause from "effect/Cause"
import * as EffectConfig from "effect/Config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as ParseResult from "effect/ParseResult"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import * as Agent from "./Agent.js"
import { AgentError, EvalResponse, Runs, Shown, Status } from "./SidecarApi.js"
import * as StackConfig from "./StackConfig.js"

/**
 * What a failed tool call answers: the error's `_tag`, a one-line `message`, and its public fields.
 *
 * @since 0.1.0
 * @category models
 */
export const Failure = Schema.Struct({ _tag: Schema.String, message: Schema.String }, {
  key: Schema.String,
  value: Schema.Unknown
})

/**
 * @since 0.1.0
 * @category models
 */
export type Failure = typeof Failure.Type

/**
 * Evaluates a candidate on a split, charging the split's budget.
 *
 * @since 0.1.0
 * @category tools
 */
export const EvalTool = Tool.make("eval", {
  description: "Evaluate a candidate on a dataset split; every call is charged to the split's budget. " +
    "Give the whole split (no sampleIds or numSamples), the first numSamples samples, or sampleIds (viewable " +
    "splits only). The answer shows what the split's tier allows: on a viewable split the run and its metrics " +
    "(use `show` for per-sample results), on a non_viewable split a summary only. Pass an idempotencyKey to " +
    "retry safely: the same key returns the same run and is charged once.",
  parameters: Model.EvalRequest.fields,
  success: EvalResponse,
  failure: Failure
}).annotate(Tool.Title, "Evaluate a candidate").annotate(Tool.Destructive, false)

/**
 * The splits the optimizer may evaluate, with their budgets.
 *
 * @since 0.1.0
 * @category tools
 */
export const StatusTool = Tool.make("status", {
  description: "The splits you may evaluate, each with its tier (viewable or non_viewable) and its budget: " +
    "limits, spent and remaining runs and samples (null means unlimited); and whether submissions are enabled.",
  success: Status,
  failure: Failure
}).annotate(Tool.Title, "Splits and budgets").annotate(Tool.Readonly, true)

/**
 * Submits the final candidate.
 *
 * @since 0.1.0
 * @category tools
 */
export const SubmitTool = Tool.make("submit", {
  description: "Submit your final candidate for the verifier. It must have been evaluated; a submission is final.",
  parameters: { candidate: Model.Candidate },
  success: Schema.Struct({ submitted: Model.Candidate }),
  failure: Failure
}).annotate(Tool.Title, "Submit the final candidate").annotate(Tool.Destructive, false)

/**
 * The optimizer's runs.
 *
 * @since 0.1.0
 * @category tools
 */
export const RunsTool = Tool.make("runs", {
  description: "Your runs, oldest first, each with its tier and summary: status, mean score with its 95% " +
    "interval, samples and errors (a non_viewable split's figures are over whole blocks of samples).",
  success: Runs,
  failure: Failure
}).annotate(Tool.Title, "List your runs").annotate(Tool.Readonly, true)

/**
 * One of the optimizer's runs, with a page of its per-sample results on a `viewable` split.
 *
 * @since 0.1.0
 * @category tools
 */
export const ShowTool = Tool.make("show", {
  description: "One of your runs by runId: its summary, and on a viewable split its per-sample results " +
    "(output, score, feedback, errors) in pages by sample id; pass samples.next as `after` for the next page.",
  parameters: {
    runId: Schema.String.pipe(Schema.minLength(1, { message: () => "runId must be a non-empty string" })),
    after: Schema.optional(Schema.Int.pipe(Schema.greaterThanOrEqualTo(0))),
    limit: Schema.optional(Schema.Int.pipe(Schema.between(1, 1000)))
  },
  success: Shown,
  failure: Failure
}).annotate(Tool.Title, "Show a run").annotate(Tool.Readonly, true)

/**
 * The tools, as one toolkit.
 *
 * @since 0.1.0
 * @category tools
 */
export const toolkit = Toolkit.make(EvalTool, StatusTool, SubmitTool, RunsTool, ShowTool)

const encodeError = Schema.encodeUnknownEither(Schema.Union(AgentError, Agent.SidecarUnavailable))

/** An error as a tool answers it: the HTTP error body; anything unforeseen is logged and named only. */
const failureOf = (error: { readonly _tag: string }): Effect.Effect<Failure> =>
  Either.match(encodeError(error), {
    onRight: (body) =>
      Effect.succeed(
        // the public errors carry their message; a client's SidecarUnavailable is told its own
        ("message" in body ? body : { ...body, message: (error as Agent.SidecarUnavailable).message }) as Failure
      ),
    onLeft: () =>
      Effect.as(Effect.logError("MCP: a tool failed unexpectedly", error), {
        _tag: "InternalError",
        message: "The tool failed unexpectedly; the cause is in the server's log. Retry later or tell the operator."
      })
  })

/** An operation whose errors are their public bodies. */
const answered = <A, E extends { readonly _tag: string }>(effect: Effect.Effect<A, E>): Effect.Effect<A, Failure> =>
  Effect.catchAll(effect, (error) => Effect.flatMap(failureOf(error), Effect.fail))

/** The handlers of the tools: each one operation of `agent`. */
const handlers = <E extends { readonly _tag: string }>(agent: Agent.Agent<E>) =>
  toolkit.of({
    eval: (request) => answered(agent.evaluate(request)),
    status: () => answered(agent.status()),
    submit: ({ candidate }) => answered(agent.submit(candidate)),
    runs: () => answered(agent.runs()),
    show: ({ runId, ...page }) => answered(agent.show(runId, page))
  })

/** A tool's input schema: its parameters as JSON Schema (an object without properties when it has none). */
const inputSchema = (tool: Tool.Any) =>
  SchemaAST.getPropertySignatures(tool.parametersSchema.ast).length === 0
    ? { type: "object", properties: {}, required: [], additionalProperties: false }
    : Tool.getJsonSchemaFromSchemaAst(tool.parametersSchema.ast)

const text = (value: unknown) => [{ type: "text", text: JSON.stringify(value) }] as const

/** The answer of a failed call: a public body with `isError`; anything else is a defect of the server. */
const failed = (failure: unknown) =>
  Effect.gen(function*() {
    // a handler fails with a public body (a plain object); the toolkit's own errors (a result that does
    // not match its schema) are defects, whose details stay in the log
    const body: Failure = !AiError.isAiError(failure) && typeof failure === "object" && failure !== null &&
        "_tag" in failure && typeof failure._tag === "string" && "message" in failure &&
        typeof failure.message === "string"
      ? failure as Failure
      : yield* Effect.as(Effect.logError("MCP: a tool failed unexpectedly", failure), {
        _tag: "InternalError",
        message: "The tool failed unexpectedly; the cause is in the server's log. Retry later or tell the operator."
      })
    return new McpSchema.CallToolResult({ isError: true, structuredContent: body, content: text(body) })
  })

/**
 * Registers the toolkit with the MCP server. Unlike `McpServer.toolkit`, arguments are decoded
 * strictly, and a failure is the error's public body with `isError: true`.
 */
const register = Effect.gen(function*() {
  const server = yield* McpServer.McpServer
  const built = yield* toolkit
  // by name, as the server calls it (the toolkit's own signature is keyed by its literal names)
  const handle = built.handle as (
    name: string,
    params: unknown
  ) => Effect.Effect<Tool.HandlerResult<Tool.Any>, unknown>
  for (const tool of Object.values(built.tools) as ReadonlyArray<Tool.Any>) {
    const decode = Schema.decodeUnknownEither(tool.parametersSchema as Schema.Schema<unknown, unknown>, {
      errors: "all",
      onExcessProperty: "error"
    })
    yield* server.addTool({
      tool: new McpSchema.Tool({
        name: tool.name,
        description: tool.description ?? "",
        inputSchema: inputSchema(tool),
        annotations: new McpSchema.ToolAnnotations({
          title: Context.getOrElse(tool.annotations, Tool.Title, () => tool.name),
          readOnlyHint: Context.get(tool.annotations, Tool.Readonly),
          destructiveHint: Context.get(tool.annotations, Tool.Destructive),
          idempotentHint: Context.get(tool.annotations, Tool.Idempotent),
          openWorldHint: false
        })
      }),
      handle: (input: unknown) => {
        // a call without arguments is a call with none
        const payload = input ?? {}
        return Either.match(decode(payload), {
          onLeft: (error): Effect.Effect<unknown, unknown> =>
            Effect.fail({
              _tag: "InvalidRequest",
              message: `The arguments of ${tool.name} are not valid: ${
                Agent.describeIssues(ParseResult.ArrayFormatter.formatErrorSync(error))
              }. Fix them and call it again; nothing was charged or recorded.`
            }),
          onRight: () => Effect.map(handle(tool.name, payload), (result) => result.encodedResult)
        }).pipe(
          Effect.matchEffect({
            onFailure: failed,
            onSuccess: (encoded) =>
              Effect.succeed(
                new McpSchema.CallToolResult({ isError: false, structuredContent: encoded, content: text(encoded) })
              )
          })
        )
      }
    })
  }
})

/**
 * Everything a task module prints with `console.log` while the server runs goes to stderr: stdout is
 * the protocol's.
 */
const consoleToStderr = Layer.scopedDiscard(Effect.acquireRelease(
  Effect.sync(() => {
    const global = globalThis.console
    const saved = { log: global.log, info: global.info, debug: global.debug, warn: global.warn }
    Object.assign(global, { log: global.error, info: global.error, debug: global.error, warn: global.error })
    return saved
  }),
  (saved) => Effect.sync(() => Object.assign(globalThis.console, saved))
))

/**
 * NDJSON-RPC, except that a `tools/call` without `arguments` (the protocol lets a client leave them
 * out) is read as a call with none: `McpServer`'s schema requires the field.
 */
const serialization = Layer.succeed(
  RpcSerialization.RpcSerialization,
  (() => {
    const inner = RpcSerialization.ndJsonRpc()
    const withArguments = (message: unknown): unknown =>
      Predicate.isRecord(message) && message["_tag"] === "Request" && message["tag"] === "tools/call" &&
        Predicate.isRecord(message["payload"]) && message["payload"]["arguments"] === undefined
        ? { ...message, payload: { ...message["payload"], arguments: {} } }
        : message
    return RpcSerialization.RpcSerialization.of({
      ...inner,
      unsafeMake: () => {
        const parser = inner.unsafeMake()
        return { decode: (data) => parser.decode(data).map(withArguments), encode: (message) => parser.encode(message) }
      }
    })
  })()
)

/** `McpServer.layerStdio`, reading calls without `arguments` as calls with none. */
const stdioServer = McpServer.layer({ name: "holdout", version: "0.1.0" }).pipe(
  Layer.provide(RpcServer.layerProtocolStdio({ stdin: NodeStream.stdin, stdout: NodeSink.stdout })),
  Layer.provide(serialization),
  // stdout is the protocol's: no logger writes there
  Layer.provideMerge(Logger.remove(Logger.defaultLogger)),
  Layer.provideMerge(Logger.remove(Logger.prettyLoggerDefault))
)

/**
 * The MCP server over stdio, serving the optimizer's operations it is given: `Agent.make` over a stack
 * in process, or `Agent.remote` through a running sidecar.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerStdio = <E extends { readonly _tag: string }, R>(
  agent: Effect.Effect<Agent.Agent<E>, never, R>
): Layer.Layer<never, never, R> =>
  Layer.effectDiscard(register).pipe(
    Layer.provide(toolkit.toLayer(Effect.map(agent, handlers))),
    Layer.provide(stdioServer),
    Layer.provide(consoleToStderr)
  )

/**
 * Runs a server until the client closes stdin. The end of stdin interrupts the fiber that built the
 * server: that is the end of the session, not a failure, so the server runs in a fiber of its own and
 * its interruption ends this one without failure.
 */
const untilClosed = <E, R>(server: Layer.Layer<never, E, R>) =>
  Effect.gen(function*() {
    const exit = yield* Effect.flatMap(Effect.fork(Layer.launch(server)), Fiber.await)
    if (Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause)) return yield* Effect.failCause(exit.cause)
    yield* Effect.logInfo("MCP: the client closed stdin; the server stops")
  })

/**
 * Serves the stack of a configuration file, in process, over stdio until the client closes stdin;
 * evaluations are written to the config's `sidecar.resultsDir` when it has one. The server reads the
 * store and the data itself: for an optimizer that must not, serve through a sidecar (`serveRemote`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const serve = (file: string) =>
  Effect.gen(function*() {
    const loaded = yield* StackConfig.load(file)
    const path = yield* Path.Path
    const resultsDir = loaded.config.sidecar?.resultsDir
    const stack = StackConfig.verifier(loaded).pipe(Layer.provideMerge(StackConfig.stack(loaded)))
    const agent = Agent.make(resultsDir === undefined ? {} : { resultsDir: path.resolve(loaded.baseDir, resultsDir) })
    yield* Effect.logInfo(`MCP: serving the stack of ${file} over stdio`)
    yield* untilClosed(layerStdio(agent).pipe(Layer.provide(stack)))
  })

/**
 * Serves the optimizer's operations of the sidecar at `url` (default `$HOLDOUT_URL`, else
 * `http://127.0.0.1:8000`) over stdio until the client closes stdin: the process holds no store, no
 * data and no token, only the sidecar's address.
 *
 * @since 0.1.0
 * @category constructors
 */
export const serveRemote = (url?: string) =>
  Effect.gen(function*() {
    const baseUrl = url ?? (yield* EffectConfig.string("HOLDOUT_URL").pipe(
      EffectConfig.withDefault("http://127.0.0.1:8000")
    ))
    yield* Effect.logInfo(`MCP: serving the sidecar at ${baseUrl} over stdio`)
    yield* untilClosed(layerStdio(Agent.remote(baseUrl)).pipe(Layer.provide(NodeHttpClient.layer)))
  })
