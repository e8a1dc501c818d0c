/** A sidecar served on 127.0.0.1 over a memory stack, and a plain `fetch` client, for the adversary tests. */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpServer from "@effect/platform/HttpServer"
import { DatasetSource, EvalStrategy, HoldoutError, Ledger, LocalStrategy, Stack, TaskStore } from "@holdout/core"
import { Sidecar, Verifier } from "@holdout/harness"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { createServer } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { doubleTask as task, rows } from "../../packages/harness/test/helpers.js"

export { rows }

/**
 * The local strategy, except for candidate "broken" (a StrategyError), "empty" (no sample at all) and
 * "defect" (a bug: the strategy dies with a message the optimizer must not see).
 */
const strategy = Layer.effect(
  EvalStrategy.EvalStrategy,
  Effect.map(EvalStrategy.EvalStrategy, (local) => ({
    name: local.name,
    produce: (plan: EvalStrategy.RunPlan) =>
      plan.candidate.id === "broken"
        ? Effect.fail(new HoldoutError.StrategyError({ strategy: "test", message: "the workers are down" }))
        : plan.candidate.id === "empty"
        ? Effect.void
        : plan.candidate.id === "defect"
        ? Effect.die(new Error("internal detail /srv/holdout/secret"))
        : local.produce(plan)
  }))
).pipe(Layer.provide(LocalStrategy.layer(task)))

/**
 * The memory store, except that it cannot store a run of candidate "store-down": its error names an
 * internal file and carries the driver's error as its cause, neither of which may reach an optimizer.
 */
const store = Layer.effect(
  TaskStore.TaskStore,
  Effect.map(TaskStore.TaskStore, (memory) => ({
    ...memory,
    createRun: (run: Parameters<typeof memory.createRun>[0]) =>
      run.candidate.id === "store-down"
        ? Effect.fail(
          new HoldoutError.StoreError({
            op: "createRun",
            message: "the disk is full at /srv/holdout/state/holdout.db",
            cause: new Error("SQLITE_FULL: database or disk is full (/srv/holdout/state/holdout.db)")
          })
        )
        : memory.createRun(run)
  }))
).pipe(Layer.provide(TaskStore.layerMemory))

export interface Budgets {
  readonly train: number
  readonly validation: number
}

// "holdout-secret" is no_access; "ghost" is tiered but holds no data (a budget for it would be a
// ConfigError at start); "open" is viewable but unbudgeted
const stack = (budgets: Budgets) =>
  Stack.layerWith({
    budgets: [
      { datasetId: "ds", split: "train", runs: budgets.train },
      { datasetId: "ds", split: "validation", runs: budgets.validation }
    ],
    policy: {
      train: "viewable",
      validation: "non_viewable",
      "holdout-secret": "no_access",
      ghost: "viewable",
      open: "viewable"
    },
    ledger: Ledger.layerMemory,
    store,
    datasets: DatasetSource.layerRecords({
      ds: { train: rows(8), validation: rows(12), "holdout-secret": rows(6), open: rows(4) }
    }),
    strategy
  })

export interface Server {
  readonly url: string
  readonly dir: string
  readonly resultsDir: string
  readonly token: string
}

export interface ServeOptions {
  readonly maxBodyBytes?: number
  readonly mode?: "submit" | "auto_best"
  readonly budgets?: Budgets
}

/** A sidecar on 127.0.0.1 (a free port) over a fresh memory stack, writing results under `<dir>/results`. */
export const serve = (options: ServeOptions = {}) =>
  Effect.gen(function*() {
    const dir = mkdtempSync(join(tmpdir(), "holdout-adversary-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
    const tokenFile = join(dir, "token", "admin.token")
    const resultsDir = join(dir, "results")
    const layer = Sidecar.layer({
      tokenFile,
      resultsDir,
      ...(options.maxBodyBytes === undefined ? {} : { maxBodyBytes: options.maxBodyBytes })
    }).pipe(
      Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
      Layer.provide(
        Verifier.layer({
          mode: options.mode ?? "auto_best",
          selection: { datasetId: "ds", split: "validation" },
          targets: [{ datasetId: "ds", split: "holdout-secret", rewardKey: "accuracy" }]
        })
      ),
      Layer.provideMerge(stack(options.budgets ?? { train: 3, validation: 2 })),
      Layer.provide(NodeContext.layer)
    )
    const context = yield* Layer.build(layer)
    const address = Context.get(context, HttpServer.HttpServer).address
    const port = address._tag === "TcpAddress" ? address.port : 0
    return {
      url: `http://127.0.0.1:${port}`,
      dir,
      resultsDir,
      token: readFileSync(tokenFile, "utf8").trim()
    } satisfies Server
  })

export interface Reply {
  readonly status: number
  readonly text: string
  readonly json: unknown
}

/** The value at a dotted path of a decoded JSON document (undefined when absent). */
export const at = (value: unknown, path: string): unknown =>
  path.split(".").reduce<unknown>(
    (
      current,
      key
    ) => (typeof current === "object" && current !== null ? (current as Record<string, unknown>)[key] : undefined),
    value
  )

export const request = (
  server: Server,
  method: string,
  path: string,
  options: { readonly body?: unknown; readonly raw?: string; readonly headers?: Record<string, string> } = {}
) =>
  Effect.promise(async (): Promise<Reply> => {
    const body = options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body))
    const response = await fetch(server.url + path, {
      method,
      headers: { ...(body === undefined ? {} : { "content-type": "application/json" }), ...options.headers },
      ...(body === undefined ? {} : { body })
    })
    const text = await response.text()
    let json: unknown = undefined
    try {
      json = JSON.parse(text)
    } catch {
      // not JSON
    }
    return { status: response.status, text, json }
  })

/** `POST /eval` of candidate "cand-1" on dataset "ds", with `body` on top. */
export const evaluate = (server: Server, body: Record<string, unknown>) =>
  request(server, "POST", "/eval", { body: { datasetId: "ds", candidate: { id: "cand-1" }, ...body } })

/** What `/status` says is spent of a split. */
export const spent = (server: Server, split: string) =>
  Effect.map(request(server, "GET", "/status"), (reply) => {
    const splits = at(reply.json, "splits") as ReadonlyArray<{ readonly split: string; readonly spent: unknown }>
    return splits.find((entry) => entry.split === split)?.spent
  })
