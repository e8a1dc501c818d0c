/**
 * One session of the quickstart: an optimizer searches classifier settings under the budgets,
 * then the verifier scores the chosen candidate on the hidden split.
 *
 * The optimizer tries up to `newPerSession` settings it has not tried before on `train` (viewable:
 * it sees which flowers each one gets wrong), then the best by train score that are not validated
 * yet, three per session, on `validation` (non_viewable: a mean, nothing per flower). Every evaluation carries an idempotency key, so a
 * later session replays what an earlier one paid for, free, and spends the budget left on new
 * settings. A refused charge ends the search with the refusal's message; the session goes on.
 * The verifier picks the best validation score and scores it on `test` (no_access to the
 * optimizer, not charged).
 */
import { Engine, type SplitAccess, View } from "@holdout/core"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { candidate, datasetId, type Settings } from "./stack.js"

/** The settings the optimizer searches, in the order it tries them. */
export const grid: ReadonlyArray<Settings> = [1, 3, 5, 7, 9, 11, 15, 21].flatMap((k) =>
  (["euclidean", "manhattan"] as const).flatMap((metric) =>
    (["all", "petals"] as const).map((features) => ({ k, metric, features }))
  )
)

export interface Row {
  readonly candidate: string
  readonly train: number
  readonly wrong: ReadonlyArray<number>
  readonly validation?: number
}

export interface Report {
  /** Every candidate with a train score, best first. */
  readonly rows: ReadonlyArray<Row>
  /** Evaluations charged in this session (replays are free). */
  readonly charged: { readonly train: number; readonly validation: number }
  /** What an attempt on the no_access split got. */
  readonly testRefusal: string
  readonly budgets: ReadonlyArray<Engine.SplitStatus>
  /** Why the search stopped early, when a budget ran out. */
  readonly exhausted: ReadonlyArray<string>
  readonly verifier?: { readonly candidate: string; readonly score: number; readonly samples: number }
}

/** How many samples a page of a run's results holds. */
const pageSize = 100

/** The ids of a run's samples that are not fully right, read page by page (never the whole run at once). */
const wrongSamples = (engine: Engine.Engine["Type"], runId: string) =>
  Effect.gen(function*() {
    const wrong: Array<number> = []
    let after: number | undefined
    // every page is full until the last one
    for (let full = true; full;) {
      const page = yield* engine.samples(runId, after === undefined ? { limit: pageSize } : { after, limit: pageSize })
      for (const sample of page) if (sample.score !== 1) wrong.push(sample.sampleId)
      full = page.length === pageSize
      after = page[page.length - 1]?.sampleId
    }
    return wrong
  })

export const session = (
  options: { readonly newPerSession?: number } = {}
): Effect.Effect<Report, Engine.EvaluateError, Engine.Engine | SplitAccess.SplitAccess> =>
  Effect.gen(function*() {
    const engine = yield* Engine.Engine
    const newPerSession = options.newPerSession ?? 10
    const exhausted: Array<string> = []
    const charged = { train: 0, validation: 0 }
    const rows = new Map<string, { train: number; wrong: ReadonlyArray<number>; validation?: number }>()

    /**
     * Evaluates with an idempotency key (an earlier session's run is replayed, free); a refused
     * charge ends that part of the search.
     */
    const evaluate = (settings: Settings, split: "train" | "validation") =>
      Effect.gen(function*() {
        const idempotencyKey = `${split}:${candidate(settings).id}`
        const replayed = Option.isSome(yield* Effect.option(engine.experiment(Engine.runIdForKey(idempotencyKey))))
        const experiment = yield* engine.evaluate({ datasetId, split, candidate: candidate(settings), idempotencyKey })
        return { view: yield* View.experiment(experiment), replayed }
      }).pipe(
        Effect.catchTag(
          "BudgetExhausted",
          (error) => Effect.as(Effect.sync(() => exhausted.push(error.message)), undefined)
        )
      )

    let tried = 0
    for (const settings of grid) {
      if (tried >= newPerSession) break
      const result = yield* evaluate(settings, "train")
      if (result === undefined) break
      if (!result.replayed) {
        tried++
        charged.train++
      }
      const wrong = result.view._tag === "viewable" ? yield* wrongSamples(engine, result.view.run.runId) : []
      rows.set(candidate(settings).id, { train: View.toldMean(result.view.summary), wrong })
    }

    const ranked = grid.filter((settings) => rows.has(candidate(settings).id))
      .sort((a, b) => rows.get(candidate(b).id)!.train - rows.get(candidate(a).id)!.train)
    // validation, in train order: what earlier sessions validated is replayed, three new ones are paid for
    for (const settings of ranked) {
      if (charged.validation >= 3) break
      const result = yield* evaluate(settings, "validation")
      if (result === undefined) break
      if (!result.replayed) charged.validation++
      rows.get(candidate(settings).id)!.validation = View.toldMean(result.view.summary)
    }

    const testRefusal = yield* engine.evaluate({
      datasetId,
      split: "test",
      candidate: candidate(ranked[0] ?? grid[0]!)
    })
      .pipe(
        Effect.as("evaluated (a leak!)"),
        Effect.catchAll((error) => Effect.succeed(error._tag))
      )

    // the verifier: the best validation score (train score breaks ties), scored on test as admin
    const validated = ranked.filter((settings) => rows.get(candidate(settings).id)!.validation !== undefined)
      .sort((a, b) => rows.get(candidate(b).id)!.validation! - rows.get(candidate(a).id)!.validation!)
    let verifier: Report["verifier"]
    if (validated.length > 0) {
      const chosen = candidate(validated[0]!)
      const experiment = yield* engine.evaluate(
        { datasetId, split: "test", candidate: chosen, idempotencyKey: `test:${chosen.id}` },
        { admin: true }
      )
      verifier = {
        candidate: chosen.id,
        score: experiment.metrics.avgFilledScore,
        samples: experiment.metrics.numSamples
      }
    }

    const report: Report = {
      rows: ranked.map((settings) => ({ candidate: candidate(settings).id, ...rows.get(candidate(settings).id)! })),
      charged,
      testRefusal,
      budgets: yield* engine.status(),
      exhausted,
      ...(verifier === undefined ? {} : { verifier })
    }
    return report
  })

const percent = (value: number | undefined) => value === undefined ? "—" : `${(value * 100).toFixed(1)}%`

/** The report as the terminal shows it. */
export const render = (report: Report): string => {
  const lines: Array<string> = []
  const width = Math.max(...report.rows.map((row) => row.candidate.length), 9)
  lines.push(
    `${"candidate".padEnd(width)}  ${"train (viewable)".padEnd(32)}  validation (non_viewable)  test (no_access)`
  )
  for (const row of report.rows) {
    const wrong = row.wrong.length === 0
      ? "none wrong"
      : `wrong: ${row.wrong.slice(0, 4).join(", ")}${row.wrong.length > 4 ? ", …" : ""}`
    lines.push(
      `${row.candidate.padEnd(width)}  ${percent(row.train).padStart(6)}  ${wrong.padEnd(24)}  ` +
        `${percent(row.validation).padStart(6)}${" ".repeat(21)}hidden`
    )
  }
  lines.push(
    `\nthis session charged ${report.charged.train} train and ${report.charged.validation} validation evaluation(s); ` +
      `an evaluation on test was refused: ${report.testRefusal}`
  )
  lines.push("\nbudget left")
  for (const split of report.budgets) {
    lines.push(
      `  ${split.split.padEnd(11)} ${split.remaining.runs ?? "unlimited"} of ${split.limits.runs ?? "unlimited"} runs`
    )
  }
  if (report.verifier !== undefined) {
    lines.push(
      `\nverifier: ${report.verifier.candidate} scores ${percent(report.verifier.score)} on the hidden test split ` +
        `(${report.verifier.samples} flowers, not charged)`
    )
  }
  for (const message of report.exhausted) lines.push(`\nbudget exhausted: ${message}`)
  return lines.join("\n")
}
