// Prints the totals of a vitest JSON report as one plain closing line: "<name>: N passed, N failed".
import { readFileSync } from "node:fs"

const [file, name] = process.argv.slice(2)
const report = JSON.parse(readFileSync(file, "utf8"))
const skipped = report.numPendingTests + report.numTodoTests
console.log(`${name}: ${report.numPassedTests} passed, ${report.numFailedTests} failed, ${skipped} skipped`)
if (report.numTotalTests === 0 || report.numFailedTests > 0) process.exit(1)
