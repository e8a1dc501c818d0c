/**
 * Reports for whoever runs the stack: the mean score of every candidate on every split it was
 * evaluated on (the optimizer's runs and the verifier's apart, whole-split runs and subsets apart,
 * failed runs counted: they were charged) with the 95% interval of its newest run, and every budget
 * with what is left (and a thresholdout split's overfitting budget). `text` is aligned terminal
 * tables, `csv` the rows as CSV, `html` a self-contained page (inline CSS and SVG, nothing fetched) with a
 * score-per-candidate chart (intervals as whiskers) and a bar per budget. The report is the
 * operator's: it shows exact means, also of runs an optimizer was told through a release mechanism.
 *
 * @since 0.1.0
 */
import { DatasetSource, Engine, type HoldoutError, type Model, TaskStore } from "@holdout/core"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"

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
export const collect: Effect.Effect<
  Data,
  HoldoutError.StoreError,
  Engine.Engine | TaskStore.TaskStore | DatasetSource.DatasetSource
> = Effect.gen(function*() {
  const engine = yield* Engine.Engine
  const store = yield* TaskStore.TaskStore
  const source = yield* DatasetSource.DatasetSource
  const sizes = new Map<string, Readonly<Record<string, number>>>()
  const splitSize = (datasetId: string, split: string) =>
    Effect.gen(function*() {
      let splits = sizes.get(datasetId)
      if (splits === undefined) {
        // a dataset that can no longer be read: its runs are taken as whole-split runs
        splits = Option.getOrElse(
          Option.map(yield* Effect.option(source.info(datasetId)), (info) => info.splits),
          () => ({})
        )
        sizes.set(datasetId, splits)
      }
      return splits[split]
    })
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
  return { rows, budgets: yield* engine.status(), generatedAt: yield* Clock.currentTimeMillis }
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

const escape = (value: string) =>
  value.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(
    /'/g,
    "&#39;"
  )

const colors = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2"]

/**
 * The report as one self-contained HTML page.
 *
 * @since 0.1.0
 * @category rendering
 */
export const html = (data: Data): string => {
  const candidates = [...new Set(data.rows.map((row) => row.candidate))]
  // the chart shows whole-split runs that have a mean; subsets and failures are in the table
  const charted = data.rows.filter((row) => !row.subset && row.mean !== null && row.newest !== null)
  const series = [...new Set(charted.map(splitText))]
  const barWidth = 18
  const groupWidth = Math.max(1, series.length) * barWidth + 24
  const chartWidth = Math.max(320, 60 + candidates.length * groupWidth)
  const chartHeight = 240
  const plot = chartHeight - 60
  const bars = candidates.flatMap((candidate, group) =>
    series.flatMap((name, index) => {
      const row = charted.find((entry) => entry.candidate === candidate && splitText(entry) === name)
      if (row === undefined || row.mean === null || row.newest === null) return []
      const newest = row.newest
      const height = Math.round(row.mean * plot)
      const x = 50 + group * groupWidth + index * barWidth
      const y = (value: number) => (20 + plot - Math.max(0, Math.min(1, value)) * plot).toFixed(1)
      const middle = x + (barWidth - 4) / 2
      // the newest run's 95% interval as a whisker
      const whisker = newest.interval === null ?
        "" :
        `<path class="ci" d="M${middle} ${y(newest.interval.lower)}V${y(newest.interval.upper)}M${middle - 3} ${
          y(newest.interval.lower)
        }h6M${middle - 3} ${y(newest.interval.upper)}h6"/>`
      return [
        `<rect x="${x}" y="${20 + plot - height}" width="${barWidth - 4}" height="${height}" fill="${
          colors[index % colors.length]
        }">` +
        `<title>${
          escape(
            `${candidate} on ${name}: ${percent(row.mean)} over ${plural(row.runs, "run")}; newest run ${
              percent(newest.mean)
            }, 95% interval ${intervalText(row)}`
          )
        }</title></rect>` + whisker
      ]
    })
  )
  const labels = candidates.map((candidate, group) =>
    `<text x="${50 + group * groupWidth}" y="${chartHeight - 22}" font-size="11">${
      escape(candidate.slice(0, 24))
    }</text>`
  )
  const axis = [0, 0.5, 1].map((tick) =>
    `<text x="4" y="${24 + plot - tick * plot}" font-size="10">${tick * 100}%</text>` +
    `<line x1="46" x2="${chartWidth}" y1="${20 + plot - tick * plot}" y2="${20 + plot - tick * plot}" stroke="#ddd"/>`
  )
  const legend = series.map((name, index) =>
    `<span class="key"><i style="background:${colors[index % colors.length]}"></i>${escape(name)}</span>`
  )
  const budgetRows = data.budgets.map((split) => {
    const limit = split.limits.runs
    const left = split.remaining.runs
    const fraction = limit === null || left === null ? 1 : left / Math.max(1, limit)
    const label = [runsLeftText(limit, left), overfitText(split)].filter((part) => part !== "").join(", ")
    return `<tr><td>${escape(`${split.datasetId}/${split.split}`)}</td><td>${escape(split.tier)}</td>` +
      `<td><div class="meter"><div style="width:${(fraction * 100).toFixed(1)}%"></div></div></td><td>${
        escape(label)
      }</td></tr>`
  })
  const tableRows = data.rows.map((row) =>
    `<tr><td>${escape(row.candidate)}</td><td>${escape(row.datasetId)}/${escape(row.split)}${
      row.admin ? " (verifier)" : ""
    }</td>` +
    `<td>${row.subset ? "subset" : "whole"}</td><td>${row.runs}</td><td>${row.failed}</td>` +
    `<td>${percentOrDash(row.mean)}</td><td>${percentOrDash(row.best)}</td>` +
    `<td>${percentOrDash(row.newest?.mean)}</td><td>${escape(intervalText(row))}</td><td>${
      percentOrDash(row.newest?.standardError)
    }</td></tr>`
  )
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Holdout report</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;color:#111}table{border-collapse:collapse;margin:1rem 0}
td,th{border-bottom:1px solid #ddd;padding:.3rem .8rem;text-align:left}.meter{width:200px;height:12px;background:#eee;border-radius:6px}
.meter div{height:12px;background:#16a34a;border-radius:6px}.ci{stroke:#111;stroke-width:1.5;fill:none}.key{margin-right:1rem}.key i{display:inline-block;width:10px;height:10px;margin-right:4px}
</style></head><body>
<h1>Holdout report</h1>
<p>Generated ${escape(new Date(data.generatedAt).toISOString())}.</p>
<h2>Score per candidate</h2>
<div>${legend.join("")}</div>
<svg xmlns="http://www.w3.org/2000/svg" width="${chartWidth}" height="${chartHeight}" role="img" aria-label="mean score per candidate and split">
${axis.join("\n")}
${bars.join("\n")}
${labels.join("\n")}
</svg>
<p>Bars are the mean of a candidate's runs; whiskers the 95% interval of its newest run.</p>
<table><thead><tr><th>candidate</th><th>split</th><th>samples</th><th>runs</th><th>failed</th><th>mean</th><th>best</th><th>newest run</th><th>95% interval</th><th>SE</th></tr></thead>
<tbody>${tableRows.join("\n")}</tbody></table>
<h2>Budgets</h2>
<table><thead><tr><th>split</th><th>tier</th><th>left</th><th></th></tr></thead><tbody>${
    budgetRows.join("\n")
  }</tbody></table>
</body></html>
`
}
