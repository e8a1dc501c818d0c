/**
 * Builds the `holdout` executable of `@holdout/harness`:
 *
 * - `dist/holdout.cjs`: the command line and everything it imports, as one bundle. What a command
 *   needs beyond the command line (the configuration, the stores, Harbor, the sidecar's server, the
 *   report) is imported dynamically by the sources, so the bundle defines it but runs it only when
 *   that command does.
 * - `dist/bin.js` (in place of the one tsc writes): runs the bundle through V8's code cache, kept
 *   beside it (`holdout.cjs.<command>.cache`, written after a command's first run; V8 rejects a
 *   cache of another bundle or Node version, and a new one is written). Node 20 has no code cache
 *   of its own for ES modules.
 *
 * The library (`dist/index.js`) stays unbundled. Run by `npm run build`, after tsc.
 */
import { build, type BuildOptions } from "esbuild"
import { copyFileSync, mkdirSync, readdirSync, rmSync } from "node:fs"
import { fileURLToPath } from "node:url"

/** The harness package's directory. */
export const harness = fileURLToPath(new URL("../packages/harness/", import.meta.url))

/** esbuild's options for the bundle (paths relative to `harness`). */
export const options: BuildOptions = {
  absWorkingDir: harness,
  entryPoints: { holdout: "src/bin.ts" },
  outdir: "dist",
  outExtension: { ".js": ".cjs" },
  bundle: true,
  format: "cjs",
  platform: "node",
  target: "node20",
  // the workspace packages from their sources, as everything else in this repository reads them
  conditions: ["@holdout/source"],
  external: [
    // native modules, loaded from the installation
    "better-sqlite3",
    "@libsql/client",
    "libsql",
    "msgpackr-extract",
    "bufferutil",
    "utf-8-validate",
    // registers its loader hooks from its own files, for `.ts` task modules on plain Node
    "tsx",
    "tsx/*"
  ],
  legalComments: "none",
  logLevel: "warning"
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  rmSync(`${harness}dist/chunks`, { recursive: true, force: true })
  mkdirSync(`${harness}dist`, { recursive: true })
  for (const name of readdirSync(`${harness}dist`)) {
    if (name.endsWith(".cache")) rmSync(`${harness}dist/${name}`)
  }
  await build(options)
  copyFileSync(fileURLToPath(new URL("bin-launcher.js", import.meta.url)), `${harness}dist/bin.js`)
}
