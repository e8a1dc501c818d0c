/**
 * The command line's start-up, registered in bench.ts (`npm run bench -- cli`), from the built
 * executable (`packages/harness/dist/bin.js`, what `holdout` runs once installed; built first when
 * a source is newer):
 *
 * - `cli/startMs`: the median wall time of `node dist/bin.js --help`, a process each time;
 * - `cli/evalRoundTripMs`: the median wall time of `holdout eval` of a 10-sample viewable split
 *   against a running sidecar (bench-sidecar.ts), end to end: the process starts, sends the
 *   evaluation, reads the samples' page, prints and exits.
 *
 * Targets: `startMs` ≤ 300, `evalRoundTripMs` ≤ 400, on an otherwise idle machine.
 */
import * as Effect from "effect/Effect"
import { execFileSync, spawn } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { startSidecar } from "./bench-sidecar.js"

const root = fileURLToPath(new URL("..", import.meta.url))
const bin = join(root, "packages", "harness", "dist", "bin.js")

/** The newest modification time of the files under `dir` (0 when there is none). */
const newest = (dir: string): number =>
  existsSync(dir)
    ? readdirSync(dir, { withFileTypes: true }).reduce((latest, entry) => {
      const path = join(dir, entry.name)
      return Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs)
    }, 0)
    : 0

/**
 * Builds the packages when the bundle is missing or older than a source of theirs, or when
 * `dist/bin.js` is not the launcher (a type-check alone writes tsc's own `bin.js` there).
 */
const buildIfStale = Effect.sync(() => {
  const packages = join(root, "packages")
  const bundle = join(packages, "harness", "dist", "holdout.cjs")
  const sources = Math.max(
    ...readdirSync(packages).flatMap((name) => [
      newest(join(packages, name, "src")),
      statSync(join(packages, name, "package.json")).mtimeMs
    ]),
    ...["bundle-bin.ts", "bin-launcher.js"].map((name) => statSync(join(root, "scripts", name)).mtimeMs)
  )
  const launcher = readFileSync(join(root, "scripts", "bin-launcher.js"), "utf8")
  const built = existsSync(bundle) && statSync(bundle).mtimeMs >= sources && existsSync(bin) &&
    readFileSync(bin, "utf8") === launcher
  if (built) return
  process.stderr.write("building the packages (npm run build)…\n")
  execFileSync("npm", ["run", "build", "--silent"], { cwd: root, stdio: ["ignore", "ignore", "inherit"] })
})

/** The wall time of one `node dist/bin.js …` process, in ms; a non-zero exit fails the benchmark. */
const timeOnce = (args: ReadonlyArray<string>) =>
  Effect.async<number, Error>((resume) => {
    const started = performance.now()
    const child = spawn(process.execPath, [bin, ...args], { cwd: root, stdio: ["ignore", "ignore", "pipe"] })
    let stderr = ""
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    child.on("exit", (code) => {
      const ms = performance.now() - started
      resume(
        code === 0 ? Effect.succeed(ms) : Effect.fail(new Error(`holdout ${args.join(" ")}: exit ${code}: ${stderr}`))
      )
    })
  })

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/** The median of `samples` timed runs after `warmup` untimed ones (the file cache warm). */
const medianOf = (samples: number, warmup: number, args: (index: number) => ReadonlyArray<string>) =>
  Effect.gen(function*() {
    for (let index = 0; index < warmup; index++) yield* timeOnce(args(-1 - index))
    const times: Array<number> = []
    for (let index = 0; index < samples; index++) times.push(yield* timeOnce(args(index)))
    return Math.round(median(times))
  })

/** Both figures. */
export const bench = Effect.suspend(() =>
  Effect.scoped(Effect.gen(function*() {
    yield* buildIfStale
    const startMs = yield* medianOf(15, 2, () => ["--help"])
    const dir = mkdtempSync(join(tmpdir(), "holdout-bench-cli-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
    const sidecar = yield* startSidecar(dir)
    const evalMs = yield* medianOf(
      10,
      2,
      (index) => ["eval", "--url", sidecar.url, "--dataset", "bench", "--split", "train", "--candidate", `cli-${index}`]
    )
    return [
      { name: "cli/startMs", value: startMs, unit: "ms (median, holdout --help, target ≤ 300)" },
      { name: "cli/evalRoundTripMs", value: evalMs, unit: "ms (median, 10-sample holdout eval, target ≤ 400)" }
    ]
  })).pipe(Effect.orDie)
)
