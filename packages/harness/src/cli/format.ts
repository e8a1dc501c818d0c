/**
 * How the command line writes figures and tables: percentages, means with their interval, plurals,
 * aligned text tables and CSV.
 */
import type { Model, Release } from "@holdout/core"

/** `75.0%` */
export const percent = (value: number): string => `${(value * 100).toFixed(1)}%`

/** `1 run`, `2 runs`. */
export const plural = (count: number, singular: string, pluralForm = `${singular}s`): string =>
  `${count} ${count === 1 ? singular : pluralForm}`

/** A mean with its uncertainty: `mean 75.0% (95% interval 36.3%–100.0%, SE 16.4%)`, as far as it is known. */
export const meanOf = (metrics: Pick<Model.Metrics, "avgFilledScore" | "standardError" | "interval">): string =>
  `mean ${percent(metrics.avgFilledScore)}` + (metrics.interval === null
    ? ""
    : ` (95% interval ${percent(metrics.interval.lower)}–${percent(metrics.interval.upper)}` +
      (metrics.standardError === null ? ")" : `, SE ${percent(metrics.standardError)})`))

/** `75.0% ± 19.4` (the half width of the 95% interval, in points), or the mean alone when it is not known. */
export const meanPlusMinus = (mean: number, interval: Model.Interval | null): string =>
  interval === null ? percent(mean) : `${percent(mean)} ± ${((interval.upper - interval.lower) * 50).toFixed(1)}`

/** What a release mechanism told of a run: its mean, and nothing else. */
export const toldOf = (release: Release.Released): string => `${release.mechanism} tells mean ${percent(release.mean)}`

/** A column of a table: its header, and whether its cells are right-aligned (figures). */
export interface Column {
  readonly header: string
  readonly right?: boolean
}

/** Rows under headers, every column as wide as its widest cell, two spaces between columns. */
export const table = (columns: ReadonlyArray<Column>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = columns.map((column, index) =>
    Math.max(column.header.length, ...rows.map((row) => (row[index] ?? "").length))
  )
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((cell, index) =>
      index === cells.length - 1 && columns[index]?.right !== true
        ? cell
        : columns[index]?.right === true
        ? cell.padStart(widths[index]!)
        : cell.padEnd(widths[index]!)
    ).join("  ").trimEnd()
  return [line(columns.map((column) => column.header)), ...rows.map(line)].join("\n")
}

/** One CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180). */
const csvField = (value: string | number | boolean | null | undefined): string => {
  const text = value === null || value === undefined ? "" : String(value)
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, "\"\"")}"` : text
}

/** Records as CSV, a header line then a line a record. */
export const csv = (
  headers: ReadonlyArray<string>,
  rows: ReadonlyArray<ReadonlyArray<string | number | boolean | null | undefined>>
): string => [headers.map(csvField).join(","), ...rows.map((row) => row.map(csvField).join(","))].join("\n")
