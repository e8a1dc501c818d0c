/**
 * Reports for whoever runs the stack: the mean score of every candidate on every split it was
 * evaluated on (the optimizer's runs and the verifier's apart) with the 95% interval of its newest
 * run, and every budget with what is left (and a thresholdout split's overfitting budget). `text` is
 * a terminal table; `html` a self-contained page (inline CSS and SVG, nothing fetched) with a
 * score-per-candidate chart (intervals as whiskers) and a bar per budget. The report is the
 * operator's: it shows exact means, also of runs an optimizer was told through a release mechanism.
 *
 * @since 0.1.0
 */
import { Engine, type HoldoutError, type Ledger, type Model, type SplitAccess, TaskStore } from "@holdout/core"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Viewer from "./Viewer.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Row {
  readonly candidate: string
  readonly datasetId: string
  readonly split: string
  /** Whether these are the verifier's (admin) runs. */
  readonly admin: boolean
  readonly runs: number
  /** The mean of the runs' mean scores (errors count 0). */
  readonly mean: number
  readonly best: number
  /** The newest run's mean, its standard error and 95% interval (block level for a non_viewable split). */
  readonly newest: {
    readonly mean: number
    readonly standardError: number | null
    readonly interval: Model.Interval | null
  }
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Data {
  readonly rows: ReadonlyArray<Row>
  readonly budgets: ReadonlyArray<Engine.SplitStatus>
  readonly generatedAt: number
  /** What the HTML page embeds: the viewer's data. */
  readonly view: Viewer.Embedded
}

/**
 * Reads the report's data from the stack.
 *
 * @since 0.1.0
 * @category constructors
 */
export const collect: Effect.Effect<
  Data,
  HoldoutError.StoreError,
  Engine.Engine | TaskStore.TaskStore | Ledger.Ledger | SplitAccess.SplitAccess
> = Effect.gen(
  function*() {
    const engine = yield* Engine.Engine
    const store = yield* TaskStore.TaskStore
    const groups = new Map<
      string,
      { row: Omit<Row, "runs" | "mean" | "best" | "newest">; scores: Array<number>; newest: Model.RunRecord }
    >()
    for (const run of yield* store.listRuns()) {
      // a finished run carries its metrics: no sample is read
      if (run.status !== "completed" || run.metrics === undefined) continue
      const key = JSON.stringify([run.candidate.id, run.datasetId, run.split, run.admin])
      const group = groups.get(key) ??
        {
          row: { candidate: run.candidate.id, datasetId: run.datasetId, split: run.split, admin: run.admin },
          scores: [],
          newest: run
        }
      group.scores.push(run.metrics.avgFilledScore)
      if (run.createdAt >= group.newest.createdAt) group.newest = run
      groups.set(key, group)
    }
    const rows = [...groups.values()].map(({ newest, row, scores }) => {
      const metrics = newest.metrics!
      // an optimizer's run of a non_viewable split is whole blocks: its spread is the blocks'
      const spread = metrics.blocks ?? metrics
      return {
        ...row,
        runs: scores.length,
        mean: scores.reduce((sum, score) => sum + score, 0) / scores.length,
        best: Math.max(...scores),
        newest: { mean: metrics.avgFilledScore, standardError: spread.standardError, interval: spread.interval }
      }
    })
    return {
      rows,
      budgets: yield* engine.status(),
      generatedAt: yield* Clock.currentTimeMillis,
      view: yield* Viewer.embedded
    }
  }
)

const percent = (value: number) => `${(value * 100).toFixed(1)}%`

/** The newest run's interval, `[36.3%, 100.0%]`, or `-` when it is not known. */
const intervalText = (row: Row) =>
  row.newest.interval === null ? "-" : `[${percent(row.newest.interval.lower)}, ${percent(row.newest.interval.upper)}]`

const overfitText = (split: Engine.SplitStatus) =>
  split.overfit === undefined
    ? ""
    : `, overfitting budget ${split.overfit.remaining ?? "unlimited"} of ${split.overfit.limit ?? "unlimited"} left`

const bar = (fraction: number, width: number) => {
  const filled = Math.max(0, Math.min(width, Math.round(fraction * width)))
  return `${"#".repeat(filled)}${".".repeat(width - filled)}`
}

/**
 * The report as a terminal table.
 *
 * @since 0.1.0
 * @category rendering
 */
export const text = (data: Data): string => {
  const lines: Array<string> = []
  const width = Math.max(9, ...data.rows.map((row) => row.candidate.length))
  lines.push(
    `${"candidate".padEnd(width)}  ${"split".padEnd(16)}  runs   mean    best  newest run: mean, 95% interval, SE`
  )
  for (const row of data.rows) {
    lines.push(
      `${row.candidate.padEnd(width)}  ${`${row.split}${row.admin ? " (verifier)" : ""}`.padEnd(16)}  ` +
        `${String(row.runs).padStart(4)}  ${percent(row.mean).padStart(6)}  ${percent(row.best).padStart(6)}  ` +
        `${percent(row.newest.mean)}, ${intervalText(row)}, ${
          row.newest.standardError === null ? "-" : percent(row.newest.standardError)
        }`
    )
  }
  if (data.rows.length === 0) lines.push("(no completed runs yet)")
  lines.push("\nbudgets")
  for (const split of data.budgets) {
    const limit = split.limits.runs
    const left = split.remaining.runs
    lines.push(
      `  ${`${split.datasetId}/${split.split}`.padEnd(24)} ${split.tier.padEnd(12)} ` +
        (limit === null || left === null
          ? "unlimited runs"
          : `[${bar(left / Math.max(1, limit), 20)}] ${left} of ${limit} runs left`) +
        overfitText(split)
    )
  }
  return lines.join("\n")
}

/**
 * The report as one self-contained HTML page: the viewer's page with the data embedded.
 *
 * @since 0.1.0
 * @category rendering
 */
export const html = (data: Data): string => Viewer.reportPage(data.view)
