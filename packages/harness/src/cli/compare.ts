/**
 * `holdout compare`: two runs of one split, paired by sample.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import { Compare, HoldoutError, TaskStore } from "@holdout/core"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { handled } from "./errors.js"
import { percent } from "./format.js"
import * as Shared from "./shared.js"

export const signed = (value: number): string => `${value > 0 ? "+" : value < 0 ? "−" : "±"}${percent(Math.abs(value))}`

const pValueOf = (value: number | null) =>
  value === null ? "not measured" : value < 1e-4 ? "< 0.0001" : value.toFixed(4)

/** A paired comparison in words, a line a figure. */
const comparisonLines = (
  runA: string,
  runB: string,
  where: string,
  comparison: Compare.PairedComparison
): ReadonlyArray<string> => [
  `A ${runA}`,
  `B ${runB}`,
  `on ${where}, ${comparison.shared} shared samples`,
  `mean A ${percent(comparison.meanA)}, mean B ${percent(comparison.meanB)}`,
  `difference A − B ${signed(comparison.difference)}` + (comparison.interval === null
    ? ""
    : `, 95% bootstrap interval [${signed(comparison.interval.lower)}, ${signed(comparison.interval.upper)}]` +
      ` (${comparison.resamples} resamples, seed ${comparison.seed})`),
  `p-value, two-sided (no difference): ${pValueOf(comparison.pValue)}; one-sided (A no better than B): ${
    pValueOf(comparison.pValueGreater)
  } (permutation, ${comparison.exact ? "exact" : `${comparison.permutations} sign patterns`})`,
  ...(comparison.t === null ? [] : [`paired t ${comparison.t.toFixed(3)}, p ${pValueOf(comparison.tPValue)}`])
]

/** Two stored runs compared as the operator (admin: any split), from the stack's store. */
const compareLocally = (runA: string, runB: string) =>
  Effect.gen(function*() {
    const store = yield* TaskStore.TaskStore
    const get = (runId: string) =>
      Effect.flatMap(
        store.getRun(runId),
        Option.match({
          onNone: () =>
            Effect.fail(
              new HoldoutError.InvalidRequest({ message: `No run "${runId}" is stored; \`holdout runs\` lists them.` })
            ),
          onSome: Effect.succeed
        })
      )
    const a = yield* get(runA)
    const b = yield* get(runB)
    const comparison = yield* Compare.runs(a, b, { admin: true })
    return { runA, runB, datasetId: a.datasetId, split: a.split, comparison }
  })

export const command = Command.make(
  "compare",
  {
    runA: Args.text({ name: "run-a" }).pipe(Args.withDescription("Run A (differences are A − B).")),
    runB: Args.text({ name: "run-b" }).pipe(Args.withDescription("Run B, of the same split.")),
    url: Shared.url,
    ...Shared.stackOptions,
    json: Shared.json
  },
  (options) =>
    handled(
      Effect.gen(function*() {
        const local = Option.isSome(options.config) || Option.isSome(options.stack)
        const compared = local
          ? yield* compareLocally(options.runA, options.runB).pipe(
            Effect.provide(Shared.stackOf(options.config, options.stack))
          )
          : yield* Effect.flatMap(
            Shared.client(options.url),
            (api) => api.agent.compare({ urlParams: { runA: options.runA, runB: options.runB } })
          ).pipe(Effect.provide(Shared.clientLayer))
        if (options.json) return yield* Console.log(JSON.stringify(compared, null, 2))
        const where = `${compared.datasetId}/${compared.split}`
        for (const line of comparisonLines(compared.runA, compared.runB, where, compared.comparison)) {
          yield* Console.log(line)
        }
      })
    )
).pipe(
  Command.withDescription(Shared.describedWith(
    "Compare two runs of one split paired by sample: mean difference, bootstrap interval, p-values. Through the " +
      "sidecar (viewable splits only), or from the store with -c/--stack (any split).",
    ["compare cli-2f0c… cli-9a41…", "compare -c holdout.yaml cli-2f0c… cli-9a41… --json"]
  ))
)
