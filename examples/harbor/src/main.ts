/**
 * Holdout with Harbor: the samples are the Harbor tasks in `tasks/`, each scored by its own
 * verifier inside a nested `harbor run`. The candidate here is Harbor's `oracle` agent (it runs
 * each task's reference solution), so every task should pass.
 *
 * With the `harbor` CLI installed (and Docker running) the nested runs are real. Without it, or
 * with `--fake`, the fake harbor of `@holdout/strategy-harbor/fake-harbor` stands in: it parses
 * the same command and writes job directories in Harbor's format, with scores from each task's
 * `fake.json`. The first line of the output says which one ran.
 *
 *   npm run example:harbor [-- --fake]
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Command from "@effect/platform/Command"
import { Engine, Ledger, Stack, TaskStore, View, Workspace } from "@holdout/core"
import { HarborDataset, HarborStrategy } from "@holdout/strategy-harbor"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Stream from "effect/Stream"
import { createRequire } from "node:module"
import { fileURLToPath } from "node:url"

const exampleDir = fileURLToPath(new URL("..", import.meta.url))
const tasksDir = fileURLToPath(new URL("../tasks", import.meta.url))
const fakeHarbor = createRequire(import.meta.url).resolve("@holdout/strategy-harbor/fake-harbor")

// The tasks declare `[task].name = "holdout-examples/…"`: `-i` matches the directory name, while
// Harbor records results under the declared name, so each task maps one to the other.
const task = (dir: string) => ({ include: dir, resultKey: `holdout-examples/${dir}` })
const partition = {
  train: [task("hello-file"), task("sum-numbers")],
  validation: [task("reverse-words")]
}

/** The real `harbor` when `harbor --version` answers, unless `--fake` is given. */
const chooseHarbor = Effect.gen(function*() {
  if (process.argv.includes("--fake")) return { launcher: [fakeHarbor], label: "the fake harbor (--fake)" }
  const version = yield* Command.string(Command.make("harbor", "--version")).pipe(
    Effect.timeout("30 seconds"),
    Effect.option
  )
  return version._tag === "Some"
    ? { launcher: ["harbor"], label: `the real harbor CLI (${version.value.trim()})` }
    : { launcher: [fakeHarbor], label: "the fake harbor: `harbor` is not installed (no containers are run)" }
})

const stack = (launcher: ReadonlyArray<string>) =>
  Stack.layerWith({
    budgets: [
      { datasetId: "tasks", split: "train", runs: 3 },
      { datasetId: "tasks", split: "validation", runs: 1 }
    ],
    policy: { train: "viewable", validation: "non_viewable" },
    ledger: Ledger.layerMemory,
    store: TaskStore.layerMemory,
    datasets: HarborDataset.layer({ datasetId: "tasks", partition }),
    strategy: HarborStrategy.layer({
      config: {
        taskSource: tasksDir,
        agent: "oracle",
        environment: "docker",
        attempts: 1,
        concurrency: 2,
        launcher: [...launcher] as [string, ...Array<string>],
        timeoutSeconds: 1800
      },
      dir: `${exampleDir}/.holdout`
    })
  }).pipe(Layer.provide(Workspace.layerStatic(exampleDir)), Layer.provide(NodeContext.layer))

const program = Effect.gen(function*() {
  const engine = yield* Engine.Engine
  const candidate = { id: "oracle" }

  const train = yield* View.experiment(yield* engine.evaluate({ datasetId: "tasks", split: "train", candidate }))
  yield* Console.log(`\ntrain (viewable): mean ${View.toldMean(train.summary).toFixed(3)}`)
  if (train._tag === "viewable") {
    // per-task results are read from the store as a stream, page by page
    const store = yield* TaskStore.TaskStore
    yield* Stream.runForEach(TaskStore.streamSamples(store, train.run.runId), (sample) => {
      const name = (sample.input as { readonly resultKey: string }).resultKey
      return Console.log(`  ${name.padEnd(32)} ${sample.score === undefined ? `error: ${sample.error}` : sample.score}`)
    })
  }

  const validation = yield* View.experiment(
    yield* engine.evaluate({ datasetId: "tasks", split: "validation", candidate })
  )
  yield* Console.log(
    `validation (non_viewable): mean ${View.toldMean(validation.summary).toFixed(3)} over ` +
      `${"metrics" in validation.summary ? validation.summary.metrics.numSamples : "its"} task(s), no per-task results`
  )

  yield* Console.log("\nbudgets left")
  for (const split of yield* engine.status()) {
    yield* Console.log(`  ${split.split.padEnd(11)} ${split.remaining.runs ?? "unlimited"} runs`)
  }
})

const main = Effect.gen(function*() {
  const harbor = yield* chooseHarbor
  yield* Console.log(`Holdout x Harbor: tasks in ${tasksDir}, nested runs by ${harbor.label}`)
  yield* program.pipe(Effect.provide(stack(harbor.launcher)))
})

// Ctrl-C interrupts the program, so the strategy's finalizers stop the nested `harbor run` jobs
NodeRuntime.runMain(
  main.pipe(
    Effect.provide(NodeContext.layer),
    Effect.provide(Logger.minimumLogLevel(LogLevel.Warning)),
    Effect.tapErrorCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.void
        : Effect.sync(() => process.stderr.write(`harbor example failed: ${String(Cause.squash(cause))}\n`))
    )
  ),
  { disableErrorReporting: true }
)
