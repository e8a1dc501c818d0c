/**
 * `holdout init`: a project that runs as it is: `holdout.yaml`, a dataset of JSONL splits and a task
 * module, for `holdout run` and `holdout serve` straight away, and to edit into one's own.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { handled, UsageError } from "./errors.js"
import * as Shared from "./shared.js"

/** The dataset `init` writes: a + b, twenty rows a split, the same on every call. */
const datasetId = "sums"

const rows = (offset: number) =>
  Array.from({ length: 20 }, (_, index) => {
    const a = (index * 7 + offset) % 50
    const b = (index * 13 + offset * 3) % 50
    return JSON.stringify({ a, b, sum: a + b })
  }).join("\n") + "\n"

const config = `# The Holdout stack: \`holdout run -c holdout.yaml …\`, \`holdout serve -c holdout.yaml\`.
store: { kind: sqlite, filename: .holdout/holdout.db }
datasets: { kind: jsonl, dir: data }              # data/<datasetId>/<split>.jsonl
strategy: { kind: task, module: task.mjs }        # its default export is a Task
budgets:
  - { datasetId: ${datasetId}, split: train, runs: 50 }
  - { datasetId: ${datasetId}, split: validation, runs: 10 }
policy: { train: viewable, validation: non_viewable, test: no_access }
verifier:
  mode: auto_best
  selection: { datasetId: ${datasetId}, split: validation }
  targets: [{ datasetId: ${datasetId}, split: test, rewardKey: accuracy }]
sidecar: { tokenFile: .holdout/admin.token, resultsDir: .holdout/results, port: 8000 }
`

const task = `// The task Holdout evaluates. \`infer\` answers a row as the candidate would, without its label
// fields; \`score\` compares the answer with the label (1 right, 0 wrong). Replace both with your own:
// call your agent or model in \`infer\`, and grade its output in \`score\`.
import { Task } from "@holdout/core"

export default Task.make({
  name: "${datasetId}",
  labelFields: ["sum"],
  // a candidate is named by its id: "careful" adds right, any other slips on every fourth row
  infer: (row, run) => (run.candidate.id === "careful" || row.a % 4 !== 3 ? row.a + row.b : row.a + row.b + 1),
  score: (row, stored) => (stored.output === row.sum ? 1 : 0)
})
`

/** The files `init` writes, relative to its directory. */
export const files: ReadonlyArray<readonly [string, string]> = [
  ["holdout.yaml", config],
  ["task.mjs", task],
  [`data/${datasetId}/train.jsonl`, rows(1)],
  [`data/${datasetId}/validation.jsonl`, rows(2)],
  [`data/${datasetId}/test.jsonl`, rows(3)],
  [".holdout/.gitignore", "*\n"]
]

export const command = Command.make(
  "init",
  {
    dir: Options.directory("dir").pipe(
      Options.withDefault("."),
      Options.withDescription("Where to write the project (default: here).")
    ),
    force: Options.boolean("force").pipe(Options.withDescription("Overwrite files that exist."))
  },
  (options) =>
    handled(Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const at = (file: string) => path.join(options.dir, file)
      if (!options.force) {
        const existing = yield* Effect.filter(files, ([file]) => fs.exists(at(file)))
        if (existing.length > 0) {
          return yield* new UsageError({
            message: `${existing.map(([file]) => file).join(", ")} already exist${
              existing.length === 1 ? "s" : ""
            } in ${options.dir}: init elsewhere (--dir), or pass --force to overwrite.`
          })
        }
      }
      for (const [file, text] of files) {
        yield* fs.makeDirectory(path.dirname(at(file)), { recursive: true })
        yield* fs.writeFileString(at(file), text)
      }
      const config = path.join(options.dir, "holdout.yaml")
      yield* Console.log(`wrote ${files.map(([file]) => file).join(", ")} in ${options.dir}`)
      yield* Console.log("next:")
      yield* Console.log(`  holdout run -c ${config} --dataset ${datasetId} --split train --candidate careful`)
      yield* Console.log(
        `  holdout serve -c ${config}   # then, elsewhere: holdout eval --dataset ${datasetId} ` +
          `--split validation --candidate careful`
      )
      yield* Console.log(`  holdout report -c ${config}`)
    }))
).pipe(
  Command.withDescription(Shared.describedWith(
    "Write a project that runs as it is: holdout.yaml, a JSONL dataset (train, validation, test) and a task module.",
    ["init", "init --dir my-eval", `run -c holdout.yaml --dataset ${datasetId} --split train --candidate careful`]
  ))
)
