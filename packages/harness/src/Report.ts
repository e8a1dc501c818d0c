/**
 * Reports for whoever runs the stack: the mean score of every candidate on every split it was
 * evaluated on (the optimizer's runs and the verifier's apart, whole-split runs and subsets apart,
 * failed runs counted: they were charged) with the 95% interval of its newest run, and every budget
 * with what is left (and a thresholdout split's overfitting budget). `text` is aligned terminal
 * tables, `csv` the rows as CSV, `html` the viewer's page (`Viewer.reportPage`) with its data
 * embedded: self-contained (inline script and styles, nothing fetched), with the same views as
 * `holdout view`. The report is the operator's: it shows exact means, also of runs an optimizer was
 * told through a release mechanism.
 *
 * @since 0.1.0
 */
import { DatasetSource, Engine, type HoldoutError, type Model, TaskStore } from "@holdout/core"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { splitSizes } from "./internal/viewer/data.js"
import * as Viewer from "./Viewer.js"

/**
 * The runs of one candidate on one split, by one caller (optimizer or verifier), over whole splits or
 * over subsets of it: a subset's mean is not the split's, so the two are never averaged together.
 *
 * @since 0.1.0
 * @category models
 */
export interface Row {
  readonly candidate: string
  readonly datasetId: string
  readonly split: string
  /** Whether these are the verifier's (admin) runs. */
  readonly admin: boolean
  /** Whether these runs took a part of the split (`sampleIds` or `numSamples`), not the whole of it. */
  readonly subset: boolean
  /** Every run of the group: completed, failed (charged all the same) and unfinished. */
  readonly runs: number
  readonly failed: number
  readonly unfinished: number
  /** The mean of the runs' mean scores (errors count 0), over the runs that have metrics; null if none has. */
  readonly mean: number | null
  readonly best: number | null
  /** The newest run with metrics: its mean, standard error and 95% interval (block level on a non_viewable split). */
  readonly newest: {
    readonly mean: number
    readonly standardError: number | null
    readonly interval: Model.Interval | null
  } | null
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Data {
  readonly rows: ReadonlyArray<Row>
  readonly budgets: ReadonlyArray<Engine.SplitStatus>
  readonly generatedAt: number
}

/**
 * Reads the report's data from the stack. Every run counts, failed and unfinished ones too (they
 * were charged); a run's size is compared with its split's to tell subsets from whole splits.
 *
 * @since 0.1.0
 * @category constructors
 */
export const collect: Effect.Effect<Data, HoldoutError.StoreError, Viewer.Services> = Effect.gen(function*() {
  const engine = yield* Engine.Engine
  const store = yield* TaskStore.TaskStore
  const source = yield* DatasetSource.DatasetSource
  const splitSize = splitSizes(source)
  const groups = new Map<string, {
    row: Pick<Row, "candidate" | "datasetId" | "split" | "admin" | "subset">
    runs: number
    failed: number
    unfinished: number
    scores: Array<number>
    newest: Model.RunRecord | undefined
  }>()
  for (const run of yield* store.listRuns()) {
    const size = yield* splitSize(run.datasetId, run.split)
    const subset = size !== undefined && run.sampleIds.length < size
    const key = JSON.stringify([run.candidate.id, run.datasetId, run.split, run.admin, subset])
    const group = groups.get(key) ??
      {
        row: { candidate: run.candidate.id, datasetId: run.datasetId, split: run.split, admin: run.admin, subset },
        runs: 0,
        failed: 0,
        unfinished: 0,
        scores: [],
        newest: undefined
      }
    group.runs++
    if (run.status === "failed") group.failed++
    if (run.status === "running" || run.status === "pending") group.unfinished++
    // a finished run carries its metrics: no sample is read
    if (run.metrics !== undefined && run.status !== "running" && run.status !== "pending") {
      group.scores.push(run.metrics.avgFilledScore)
      if (group.newest === undefined || run.createdAt >= group.newest.createdAt) group.newest = run
    }
    groups.set(key, group)
  }
  const rows = [...groups.values()].map(({ newest, row, scores, ...counts }): Row => {
    const metrics = newest?.metrics
    // an optimizer's run of a non_viewable split is whole blocks: its spread is the blocks'
    const spread = metrics?.blocks ?? metrics
    return {
      ...row,
      ...counts,
      mean: scores.length === 0 ? null : scores.reduce((sum, score) => sum + score, 0) / scores.length,
      best: scores.length === 0 ? null : Math.max(...scores),
      newest: metrics === undefined || spread === undefined
        ? null
        : { mean: metrics.avgFilledScore, standardError: spread.standardError, interval: spread.interval }
    }
  })
  return {
    rows,
    budgets: yield* engine.status(),
    generatedAt: yield* Clock.currentTimeMillis
  }
})

const percent = (value: number) => `${(value * 100).toFixed(1)}%`

const percentOrDash = (value: number | null | undefined) => value === null || value === undefined ? "-" : percent(value)

/** The newest run's interval, `[36.3%, 100.0%]`, or `-` when it is not known. */
const intervalText = (row: Row) =>
  row.newest?.interval === null || row.newest?.interval === undefined
    ? "-"
    : `[${percent(row.newest.interval.lower)}, ${percent(row.newest.interval.upper)}]`

/** `train`, `train (verifier)`. */
const splitText = (row: Row) => `${row.split}${row.admin ? " (verifier)" : ""}`

const plural = (count: number, singular: string) => `${count} ${count === 1 ? singular : `${singular}s`}`

const runsLeftText = (limit: number | null, left: number | null) =>
  limit === null || left === null ? "unlimited runs" : `${left} of ${plural(limit, "run")} left`

const overfitText = (split: Engine.SplitStatus) =>
  split.overfit === undefined
    ? ""
    : `overfitting budget ${split.overfit.remaining ?? "unlimited"} of ${split.overfit.limit ?? "unlimited"} left`

const bar = (fraction: number, width: number) => {
  const filled = Math.max(0, Math.min(width, Math.round(fraction * width)))
  return `${"#".repeat(filled)}${".".repeat(width - filled)}`
}

/** Rows of cells under headers, each column as wide as its widest cell; `right` columns are figures. */
const align = (
  headers: ReadonlyArray<string>,
  right: ReadonlySet<number>,
  rows: ReadonlyArray<ReadonlyArray<string>>
): Array<string> => {
  const widths = headers.map((header, index) => Math.max(header.length, ...rows.map((row) => row[index]!.length)))
  return [headers, ...rows].map((cells) =>
    cells.map((cell, index) => right.has(index) ? cell.padStart(widths[index]!) : cell.padEnd(widths[index]!))
      .join("  ").trimEnd()
  )
}

/**
 * The report as terminal tables: runs per candidate and split (whole-split runs and subsets on
 * rows of their own), then the budgets.
 *
 * @since 0.1.0
 * @category rendering
 */
export const text = (data: Data): string => {
  const lines = data.rows.length === 0
    ? ["(no runs yet)"]
    : align(
      ["candidate", "split", "samples", "runs", "failed", "mean", "best", "newest", "95% interval", "SE"],
      new Set([3, 4, 5, 6, 7, 9]),
      data.rows.map((row) => [
        row.candidate,
        splitText(row),
        row.subset ? "subset" : "whole",
        String(row.runs),
        String(row.failed),
        percentOrDash(row.mean),
        percentOrDash(row.best),
        percentOrDash(row.newest?.mean),
        intervalText(row),
        percentOrDash(row.newest?.standardError)
      ])
    )
  const unfinished = data.rows.reduce((sum, row) => sum + row.unfinished, 0)
  if (unfinished > 0) {
    lines.push(`(${plural(unfinished, "run")} unfinished: \`holdout runs --status running\` lists them)`)
  }
  lines.push("", "budgets")
  const budgetLines = align(
    ["split", "tier", "", "runs left", ""],
    new Set(),
    data.budgets.map((split) => {
      const limit = split.limits.runs
      const left = split.remaining.runs
      return [
        `${split.datasetId}/${split.split}`,
        split.tier,
        limit === null || left === null ? "" : `[${bar(left / Math.max(1, limit), 20)}]`,
        runsLeftText(limit, left),
        overfitText(split)
      ]
    })
  )
  for (const line of budgetLines) lines.push(`  ${line}`)
  return lines.join("\n")
}

/**
 * The report's rows as CSV (a header line, then a line a row).
 *
 * @since 0.1.0
 * @category rendering
 */
export const csv = (data: Data): string => {
  const field = (value: string | number | boolean | null | undefined) => {
    const text = value === null || value === undefined ? "" : String(value)
    return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, "\"\"")}"` : text
  }
  const header = [
    "candidate",
    "datasetId",
    "split",
    "admin",
    "subset",
    "runs",
    "failed",
    "unfinished",
    "mean",
    "best",
    "newestMean",
    "newestLower",
    "newestUpper",
    "newestStandardError"
  ]
  return [
    header.join(","),
    ...data.rows.map((row) =>
      [
        row.candidate,
        row.datasetId,
        row.split,
        row.admin,
        row.subset,
        row.runs,
        row.failed,
        row.unfinished,
        row.mean,
        row.best,
        row.newest?.mean,
        row.newest?.interval?.lower,
        row.newest?.interval?.upper,
        row.newest?.standardError
      ].map(field).join(",")
    )
  ].join("\n")
}

/**
 * The report as one self-contained HTML page: the viewer's page with its data embedded (per-sample
 * tables and comparisons of viewable splits among them, so it reads samples; the tables do not).
 *
 * @since 0.1.0
 * @category rendering
 */
export const html: Effect.Effect<string, HoldoutError.StoreError, Viewer.Services> = Effect.map(
  Viewer.embedded,
  (data) => Viewer.reportPage(data)
)
