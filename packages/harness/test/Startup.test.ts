import { assert, describe, it } from "@effect/vitest"
import { build, type Metafile } from "esbuild"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { options } from "../../../scripts/bundle-bin.js"

/**
 * The inputs that load when `holdout` starts, found by building the bundle as ES modules split at
 * its dynamic imports (the entry and the chunks it imports statically). The shipped CommonJS bundle
 * defers the same modules: esbuild runs a module imported dynamically only when it is imported.
 */
const startupInputs = (metafile: Metafile): ReadonlyArray<string> => {
  const outputs = metafile.outputs
  const entry = Object.keys(outputs).find((name) => name.endsWith("/holdout.js"))!
  const seen = new Set<string>()
  const pending = [entry]
  while (pending.length > 0) {
    const name = pending.pop()!
    if (seen.has(name)) continue
    seen.add(name)
    for (const imported of outputs[name]!.imports) {
      if (imported.kind === "import-statement" && imported.external !== true) pending.push(imported.path)
    }
  }
  return [...seen].flatMap((name) => Object.keys(outputs[name]!.inputs))
}

/** What only some commands need: each must be in the bundle, and none in what loads at start-up. */
const deferred: ReadonlyArray<readonly [string, RegExp]> = [
  ["the SQLite store", /store-sqlite\/src\//],
  ["the file store", /store-fs\/src\//],
  ["the Harbor strategy", /strategy-harbor\/src\//],
  ["the configuration module", /^src\/Config\.ts$/],
  ["YAML", /node_modules\/yaml\//],
  ["the verifier", /^src\/Verifier\.ts$/],
  ["the sidecar", /^src\/Sidecar\.ts$/],
  ["the HTTP server", /platform-node\/dist\/esm\/NodeHttpServer\.js$/],
  ["the report", /^src\/Report\.ts$/]
]

describe("the holdout executable's bundle", () => {
  it("starts without the stores, Harbor, the configuration, the sidecar or the report: they load with their commands", async () => {
    const outdir = mkdtempSync(join(tmpdir(), "holdout-bundle-"))
    try {
      const result = await build({
        ...options,
        format: "esm",
        splitting: true,
        outExtension: {},
        outdir,
        write: false,
        metafile: true,
        logLevel: "silent"
      })
      const all = Object.keys(result.metafile.inputs)
      const startup = startupInputs(result.metafile)
      assert.isTrue(startup.some((input) => input === "src/Cli.ts"), "the command line loads at start")
      for (const [what, pattern] of deferred) {
        assert.isTrue(all.some((input) => pattern.test(input)), `${what} is in the bundle`)
        assert.deepStrictEqual(startup.filter((input) => pattern.test(input)), [], `${what} loads at start-up`)
      }
    } finally {
      rmSync(outdir, { recursive: true, force: true })
    }
  })
})
