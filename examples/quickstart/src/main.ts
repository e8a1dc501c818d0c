/**
 * The Holdout quickstart. An optimizer tries three candidate "models" of an arithmetic task:
 * on `train` (viewable) it sees every sample, on `validation` (non_viewable) only a summary, and
 * `test` (no_access) it cannot touch. Every evaluation is charged to its split's budget until the
 * budget runs out. Then the verifier scores the best candidate on the hidden `test` split.
 *
 *   npm run quickstart
 */
import { Engine, Stack, Task, View } from "@holdout/core"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"

interface Row {
  readonly a: number
  readonly b: number
  readonly sum: number
}

const makeRows = (count: number, seed: number): ReadonlyArray<Row> =>
  Array.from({ length: count }, (_, index) => {
    const a = (index * 7 + seed) % 50
    const b = (index * 13 + seed * 3) % 50
    return { a, b, sum: a + b }
  })

/** The candidates: each id names a way of guessing the sum. */
const models: Record<string, (row: Omit<Row, "sum">) => Promise<number>> = {
  "guess-a": async (row) => row.a,
  "off-by-one": async (row) => row.a + row.b + (row.a % 3 === 0 ? 1 : 0),
  "exact": async (row) => row.a + row.b
}

// Inference never sees `sum` (a label field); scoring does.
const task = Task.make<Row, number, "sum">({
  name: "sum",
  labelFields: ["sum"],
  infer: (row, run) => models[run.candidate.id]!(row),
  score: (row, stored) => (stored.output === row.sum ? 1 : 0)
})

const stack = Stack.layerMemory({
  datasets: { arithmetic: { train: makeRows(40, 1), validation: makeRows(30, 2), test: makeRows(30, 3) } },
  budgets: [
    { datasetId: "arithmetic", split: "train", runs: 5, samples: 120 },
    { datasetId: "arithmetic", split: "validation", runs: 2, samples: 60 }
  ],
  policy: { train: "viewable", validation: "non_viewable", test: "no_access" },
  task
})

const percent = (value: number) => `${(value * 100).toFixed(1)}%`

const tryCandidate = (id: string) =>
  Effect.gen(function*() {
    const engine = yield* Engine.Engine
    yield* Console.log(`\ncandidate "${id}"`)

    const train = yield* View.experiment(
      yield* engine.evaluate({ datasetId: "arithmetic", split: "train", candidate: { id } })
    )
    const wrong = train._tag === "viewable"
      ? train.samples.filter((sample) => sample.score !== 1).map((sample) => sample.sampleId)
      : []
    yield* Console.log(
      `  train       viewable      ${percent(train.summary.metrics.avgFilledScore)}  ` +
        `wrong samples: ${wrong.length === 0 ? "none" : wrong.slice(0, 10).join(", ") + (wrong.length > 10 ? ", …" : "")}`
    )

    const validation = yield* engine.evaluate({ datasetId: "arithmetic", split: "validation", candidate: { id } }).pipe(
      Effect.flatMap(View.experiment),
      Effect.map((view) => `${percent(view.summary.metrics.avgFilledScore)}  (a summary: no sample ids, no outputs)`),
      Effect.catchTag("BudgetExhausted", (error) => Effect.succeed(`refused: ${error.message}`))
    )
    yield* Console.log(`  validation  non_viewable  ${validation}`)

    const test = yield* engine.evaluate({ datasetId: "arithmetic", split: "test", candidate: { id } }).pipe(
      Effect.as("evaluated"),
      Effect.catchTag("AccessDenied", (error) => Effect.succeed(`refused: ${error._tag}`))
    )
    yield* Console.log(`  test        no_access     ${test}`)
    return train.summary.metrics.avgFilledScore
  })

const program = Effect.gen(function*() {
  const engine = yield* Engine.Engine
  yield* Console.log("Holdout quickstart: three candidates, three tiers, one budget")
  let best = { id: "", score: -1 }
  for (const id of Object.keys(models)) {
    const score = yield* tryCandidate(id)
    if (score > best.score) best = { id, score }
  }

  yield* Console.log("\nbudgets left")
  for (const split of yield* engine.status()) {
    yield* Console.log(
      `  ${split.split.padEnd(11)} ${String(split.remaining.runs ?? "unlimited").padStart(2)} runs, ` +
        `${split.remaining.samples ?? "unlimited"} samples`
    )
  }

  const verified = yield* engine.evaluate(
    { datasetId: "arithmetic", split: "test", candidate: { id: best.id } },
    { admin: true }
  )
  yield* Console.log(
    `\nverifier: "${best.id}" scores ${percent(verified.metrics.avgFilledScore)} on the hidden test split ` +
      `(${verified.metrics.numSamples} samples, run ${verified.run.runId}, not charged)`
  )
})

Effect.runPromise(program.pipe(Effect.provide(stack), Effect.provide(Logger.minimumLogLevel(LogLevel.Warning)))).catch(
  (error: unknown) => {
    process.stderr.write(`quickstart failed: ${String(error)}\n`)
    process.exitCode = 1
  }
)
