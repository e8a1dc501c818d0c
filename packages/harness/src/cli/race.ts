/**
 * `holdout race`: successive halving over candidates (`Select.race`), each round charged.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { type Model, Select } from "@holdout/core"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { signed } from "./compare.js"
import { handled } from "./errors.js"
import { percent, plural } from "./format.js"
import * as Shared from "./shared.js"

const intervalOf = (interval: Model.Interval | null) =>
  interval === null ? "" : ` (95% interval ${percent(interval.lower)}–${percent(interval.upper)})`

/** A race's outcome in words: its rounds, the winner and what was spent. */
const raceLines = (result: Select.Result): ReadonlyArray<string> => [
  ...result.rounds.map((round, index) =>
    `round ${index + 1}: ${plural(round.candidates.length, "candidate")} on ${plural(round.size, "sample")}` +
    (round.dropped.length === 0 ? "" : `, dropped ${round.dropped.join(", ")}`)
  ),
  `winner ${result.winner.candidate.id}: mean ${percent(result.winner.mean)}${
    intervalOf(result.winner.interval)
  } over ${plural(result.winner.samples, "sample")}`,
  ...(result.lead === null
    ? []
    : [`lead over the runner-up: [${signed(result.lead.lower)}, ${signed(result.lead.upper)}] (paired)`]),
  `spent ${plural(result.samplesSpent, "sample")} in ${plural(result.runsSpent, "run")}`
]

const optional = <A, K extends string>(key: K, value: Option.Option<A>) =>
  Option.match(value, { onNone: () => ({}), onSome: (some) => ({ [key]: some }) as Record<K, A> })

export const command = Command.make(
  "race",
  {
    ...Shared.stackOptions,
    dataset: Shared.dataset,
    split: Options.text("split").pipe(Options.withDescription("The split to race on (viewable, unless --admin).")),
    candidates: Options.text("candidates").pipe(
      Options.withDescription("Comma-separated candidate ids (at least two).")
    ),
    seed: Options.integer("seed").pipe(
      Options.withDefault(0),
      Options.withDescription("Seed of the order samples are taken in.")
    ),
    startSize: Options.integer("start-size").pipe(
      Options.optional,
      Options.withDescription("Samples a candidate in the first round (default: so that one is left at the end).")
    ),
    growth: Options.float("growth").pipe(
      Options.optional,
      Options.withDescription("How much the subset grows per round, and 1/growth of the rest go on (default 2).")
    ),
    confidence: Options.float("confidence").pipe(
      Options.optional,
      Options.withDescription("Joint level of a round's paired intervals against the leader (default 0.95).")
    ),
    delta: Options.float("delta").pipe(
      Options.optional,
      Options.withDescription("Drop a candidate once it cannot beat the leader by delta (default 0).")
    ),
    concurrency: Options.integer("concurrency").pipe(
      Options.withDefault(1),
      Options.withDescription("Evaluations of a round at once.")
    ),
    admin: Options.boolean("admin").pipe(Options.withDescription("Race as the verifier: any split, no charge.")),
    json: Shared.json
  },
  (options) =>
    handled(
      Effect.gen(function*() {
        yield* Shared.checkSplit(options.dataset, options.split)
        const result = yield* Select.race({
          datasetId: options.dataset,
          split: options.split,
          candidates: options.candidates.split(",").map((id) => id.trim()).filter((id) => id.length > 0).map((id) => ({
            id
          })),
          seed: options.seed,
          concurrency: options.concurrency,
          admin: options.admin,
          ...optional("startSize", options.startSize),
          ...optional("growth", options.growth),
          ...optional("confidence", options.confidence),
          ...optional("delta", options.delta)
        })
        if (options.json) return yield* Console.log(JSON.stringify(result, null, 2))
        for (const line of raceLines(result)) yield* Console.log(line)
      }).pipe(Effect.provide(Shared.stackOf(options.config, options.stack)))
    )
).pipe(
  Command.withDescription(Shared.describedWith(
    "Choose among candidates by successive halving on growing subsets of a split, each round charged.",
    [
      "race -c holdout.yaml --dataset sums --split train --candidates careful,hasty",
      "race -c holdout.yaml --dataset sums --split validation --candidates careful,hasty --admin --json"
    ]
  ))
)
