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
import { Engine, type HoldoutError, type Model, TaskStore } from "@holdout/core"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"

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
}

/**
 * Reads the report's data from the stack.
 *
 * @since 0.1.0
 * @category constructors
 */
export const collect: Effect.Effect<Data, HoldoutError.StoreError, Engine.Engine | TaskStore.TaskStore> = Effect.gen(
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
    return { rows, budgets: yield* engine.status(), generatedAt: yield* Clock.currentTimeMillis }
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
  const series = [...new Set(data.rows.map((row) => `${row.split}${row.admin ? " (verifier)" : ""}`))]
  const barWidth = 18
  const groupWidth = Math.max(1, series.length) * barWidth + 24
  const chartWidth = Math.max(320, 60 + candidates.length * groupWidth)
  const chartHeight = 240
  const plot = chartHeight - 60
  const bars = candidates.flatMap((candidate, group) =>
    series.flatMap((name, index) => {
      const row = data.rows.find((entry) =>
        entry.candidate === candidate && `${entry.split}${entry.admin ? " (verifier)" : ""}` === name
      )
      if (row === undefined) return []
      const height = Math.round(row.mean * plot)
      const x = 50 + group * groupWidth + index * barWidth
      const y = (value: number) => (20 + plot - Math.max(0, Math.min(1, value)) * plot).toFixed(1)
      const middle = x + (barWidth - 4) / 2
      // the newest run's 95% interval as a whisker
      const whisker = row.newest.interval === null ?
        "" :
        `<path class="ci" d="M${middle} ${y(row.newest.interval.lower)}V${y(row.newest.interval.upper)}M${middle - 3} ${
          y(row.newest.interval.lower)
        }h6M${middle - 3} ${y(row.newest.interval.upper)}h6"/>`
      return [
        `<rect x="${x}" y="${20 + plot - height}" width="${barWidth - 4}" height="${height}" fill="${
          colors[index % colors.length]
        }">` +
        `<title>${
          escape(
            `${candidate} on ${name}: ${percent(row.mean)} over ${row.runs} run(s); newest run ${
              percent(row.newest.mean)
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
    const label = (limit === null || left === null ? "unlimited runs" : `${left} of ${limit} runs left`) +
      overfitText(split)
    return `<tr><td>${escape(`${split.datasetId}/${split.split}`)}</td><td>${escape(split.tier)}</td>` +
      `<td><div class="meter"><div style="width:${(fraction * 100).toFixed(1)}%"></div></div></td><td>${
        escape(label)
      }</td></tr>`
  })
  const tableRows = data.rows.map((row) =>
    `<tr><td>${escape(row.candidate)}</td><td>${escape(row.datasetId)}/${escape(row.split)}${
      row.admin ? " (verifier)" : ""
    }</td>` +
    `<td>${row.runs}</td><td>${percent(row.mean)}</td><td>${percent(row.best)}</td>` +
    `<td>${percent(row.newest.mean)}</td><td>${escape(intervalText(row))}</td><td>${
      row.newest.standardError === null ? "-" : percent(row.newest.standardError)
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
<table><thead><tr><th>candidate</th><th>split</th><th>runs</th><th>mean</th><th>best</th><th>newest run</th><th>95% interval</th><th>SE</th></tr></thead>
<tbody>${tableRows.join("\n")}</tbody></table>
<h2>Budgets</h2>
<table><thead><tr><th>split</th><th>tier</th><th>left</th><th></th></tr></thead><tbody>${
    budgetRows.join("\n")
  }</tbody></table>
</body></html>
`
}
