/**
 * The scale group of `npm run bench` (opt-in: `npm run bench -- scale`): one no-op run over a large
 * generated split, each in a process of its own so its peak RSS is its own.
 *
 *   scale/sqlite/1M/*      samples per second, peak RSS and the resume of the completed run
 *   scale/sqlite/10M/*     the same at ten million samples (the RSS bound must hold)
 *   scale/memory/10M/*     whether ten million samples complete on memory layers in the default heap
 *
 * The child (bench-scale-child.ts) is bundled once with esbuild, with the options of the `holdout`
 * executable (bundle-bin.ts), and runs on plain Node: the figures are those of the compiled code a user installs, with
 * no TypeScript loader in the process. `startRssMb` is the child's RSS before its run.
 */
import * as Effect from "effect/Effect"
import { build } from "esbuild"
import { execFileSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as BundleBin from "./bundle-bin.js"

interface Result {
  readonly name: string
  readonly value: number
  readonly unit: string
}

type Kind = "sqlite" | "memory"

/** The bundled child, built on first use into a temporary directory removed at exit. */
let bundled: string | undefined
const childBundle = async (): Promise<string> => {
  if (bundled !== undefined) return bundled
  const dir = mkdtempSync(join(tmpdir(), "holdout-scale-"))
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }))
  const outfile = join(dir, "scale-child.cjs")
  // the executable's bundle options (format, target, sources, the native modules left external)
  const { absWorkingDir: _dir, entryPoints: _entries, outExtension: _extension, outdir: _outdir, ...shared } =
    BundleBin.options
  await build({ ...shared, entryPoints: [fileURLToPath(new URL("bench-scale-child.ts", import.meta.url))], outfile })
  bundled = outfile
  return outfile
}

const run = (bundle: string, kind: Kind, size: number) => {
  try {
    const output = execFileSync(process.execPath, [bundle, kind, String(size)], {
      // the external native modules, from this installation
      env: { ...process.env, NODE_PATH: fileURLToPath(new URL("../node_modules", import.meta.url)) },
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
      maxBuffer: 1024 * 1024
    })
    return JSON.parse(output.trim().split("\n").pop()!) as {
      samplesPerSec: number
      peakRssMb: number
      startRssMb: number
      resumeMs: number
    }
  } catch {
    return undefined
  }
}

const round = (value: number) => Math.round(value * 10) / 10

/** The scale figures of one store at one size. */
export const bench = (kind: Kind, size: number, label: string) =>
  Effect.map(Effect.promise(childBundle), (bundle): ReadonlyArray<Result> => {
    const figures = run(bundle, kind, size)
    const name = `scale/${kind}/${label}`
    if (kind === "memory") {
      return [
        { name: `${name}/completes`, value: figures === undefined ? 0 : 1, unit: "1 = completed" },
        ...(figures === undefined ? [] : [{ name: `${name}/peakRssMb`, value: round(figures.peakRssMb), unit: "MB" }])
      ]
    }
    if (figures === undefined) return [{ name: `${name}/completes`, value: 0, unit: "1 = completed" }]
    return [
      { name: `${name}/samplesPerSec`, value: Math.round(figures.samplesPerSec), unit: "samples/s" },
      { name: `${name}/peakRssMb`, value: round(figures.peakRssMb), unit: "MB" },
      { name: `${name}/startRssMb`, value: round(figures.startRssMb), unit: "MB" },
      { name: `${name}/resumeCompletedMs`, value: round(figures.resumeMs), unit: "ms" }
    ]
  })
