/**
 * Bundles the `holdout` executable into `packages/harness/dist/bin.js`, with the chunks it loads on
 * demand in `dist/chunks/`: one file to parse at start-up instead of a thousand modules, and what a
 * command needs beyond the command line (the configuration, the stores, Harbor, the sidecar's
 * server) only when that command runs. It replaces the `dist/bin.js` tsc writes; the library
 * (`dist/index.js`) stays unbundled. Run by `npm run build`, after tsc.
 */
import { build, type BuildOptions } from "esbuild"
import { rmSync } from "node:fs"
import { fileURLToPath } from "node:url"

/** The harness package's directory. */
export const harness = fileURLToPath(new URL("../packages/harness/", import.meta.url))

/**
 * esbuild's options (relative to `harness`).
 */
export const options: BuildOptions = {
  absWorkingDir: harness,
  entryPoints: { bin: "src/bin.ts" },
  outdir: "dist",
  chunkNames: "chunks/[name]-[hash]",
  bundle: true,
  splitting: true,
  format: "esm",
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
  // CommonJS dependencies inside an ES module bundle still call `require`
  banner: {
    js:
      "import { createRequire as __holdoutRequire } from \"node:module\"; const require = __holdoutRequire(import.meta.url);"
  },
  legalComments: "none",
  logLevel: "warning"
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  rmSync(`${harness}dist/chunks`, { recursive: true, force: true })
  await build(options)
}
