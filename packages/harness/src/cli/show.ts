/**
 * `holdout show <run>`: one run as its split's tier shows it (`View`): a viewable run with its
 * per-sample table, a non_viewable run as its summary only, a no_access run not at all. `--admin`
 * shows the verifier's view of any run.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Engine, View } from "@holdout/core"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { handled } from "./errors.js"
import { meanOf, plural, table, toldOf } from "./format.js"
import * as Shared from "./shared.js"

const cell = (value: unknown) => {
  const text = value === undefined ? "-" : typeof value === "string" ? value : JSON.stringify(value)
  const line = text.split("\n")[0] ?? ""
  return line.length > 40 ? `${line.slice(0, 39)}…` : line
}

export const command = Command.make(
  "show",
  {
    ...Shared.stackOptions,
    runId: Args.text({ name: "run-id" }).pipe(Args.withDescription("The run (`holdout runs` lists them).")),
    limit: Options.integer("limit").pipe(
      Options.withDefault(50),
      Options.withDescription("How many samples of a viewable run to show.")
    ),
    admin: Options.boolean("admin").pipe(
      Options.withDescription("Show what the verifier sees: every split, per-sample results included.")
    ),
    json: Shared.json
  },
  (options) =>
    handled(
      Effect.gen(function*() {
        const engine = yield* Engine.Engine
        const experiment = yield* engine.experiment(options.runId)
        const view = options.admin ? yield* View.project(experiment, "viewable") : yield* View.experiment(experiment)
        const samples = view._tag === "viewable" ? yield* engine.samples(options.runId, { limit: options.limit }) : []
        if (options.json) {
          return yield* Console.log(JSON.stringify(view._tag === "viewable" ? { ...view, samples } : view, null, 2))
        }
        const { summary } = view
        yield* Console.log(`run ${summary.runId} (${view._tag})`)
        yield* Console.log(`  ${summary.candidateId} on ${summary.datasetId}/${summary.split}, ${summary.status}`)
        yield* Console.log(
          "release" in summary
            ? `  ${toldOf(summary.release)} (the exact mean is withheld)`
            : `  ${meanOf(summary.metrics)} over ${plural(summary.metrics.numSamples, "sample")}, ${
              plural(summary.metrics.numErrors, "error")
            }`
        )
        yield* Console.log(
          `  created ${new Date(summary.createdAt).toISOString()}${
            summary.finishedAt === undefined ? "" : `, finished ${new Date(summary.finishedAt).toISOString()}`
          }`
        )
        if (view._tag !== "viewable") {
          return yield* Console.log("  per-sample results are not shown: the split is non_viewable")
        }
        yield* Console.log("")
        yield* Console.log(table(
          [{ header: "sample", right: true }, { header: "score", right: true }, { header: "output" }, {
            header: "error"
          }],
          samples.map((sample) =>
            [
              String(sample.sampleId),
              sample.score === undefined ? "-" : String(sample.score),
              cell(sample.output),
              sample.error ?? sample.evalError ?? ""
            ].map((text, index) => index === 3 ? cell(text) : text)
          )
        ))
        const total = experiment.metrics.numSamples
        if (total > samples.length) {
          yield* Console.log(`… ${plural(total - samples.length, "more sample")} (--limit ${total} shows them all)`)
        }
      }).pipe(Effect.provide(Shared.stackOf(options.config, options.stack)))
    )
).pipe(
  Command.withDescription(Shared.describedWith(
    "One run as its split's tier shows it: a viewable run with its per-sample table, a non_viewable one as a summary.",
    ["show -c holdout.yaml cli-2f0c…", "show -c holdout.yaml cli-2f0c… --limit 200 --json"]
  ))
)
