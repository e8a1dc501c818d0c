import { assert, describe, it } from "@effect/vitest"
import { build, type Metafile } from "esbuild"
import { spawnSync } from "node:child_process"
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { options } from "../../../scripts/bundle-bin.js"

const root = fileURLToPath(new URL("../../..", import.meta.url))

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
  ["the configuration module", /^src\/StackConfig\.ts$/],
  ["YAML", /node_modules\/yaml\//],
  ["the verifier", /^src\/Verifier\.ts$/],
  ["the sidecar", /^src\/Sidecar\.ts$/],
  ["the HTTP server", /platform-node\/dist\/esm\/NodeHttpServer\.js$/],
  ["the report", /^src\/Report\.ts$/],
  ["the sidecar's API", /^src\/SidecarApi\.ts$/],
  ["the viewer", /^src\/Viewer\.ts$/],
  ["the MCP server", /^src\/Mcp\.ts$/],
  ["the agent's operations", /^src\/Agent\.ts$/],
  ["@effect/ai", /node_modules\/@effect\/ai\//],
  ["@effect/rpc", /node_modules\/@effect\/rpc\//]
]

describe("the holdout executable's bundle", () => {
  it("starts without the stores, Harbor, the configuration, the sidecar, the report, the viewer or MCP: they load with their commands", async () => {
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

describe("the built holdout executable", () => {
  it("imports a user's module on its first start (compiling the bundle) and on the next (from V8's code cache)", async () => {
    // inside the repository, so that the bundle's external packages (tsx) resolve
    mkdirSync(join(root, "node_modules", ".cache"), { recursive: true })
    const outdir = mkdtempSync(join(root, "node_modules", ".cache", "holdout-bin-"))
    try {
      await build({ ...options, outdir, logLevel: "silent" })
      copyFileSync(join(root, "scripts", "bin-launcher.js"), join(outdir, "bin.js"))
      // a TypeScript module on plain Node: imported through tsx, registered on demand
      const stack = fileURLToPath(new URL("./fixtures/entry/dying.ts", import.meta.url))
      const start = () =>
        spawnSync(
          "node",
          [join(outdir, "bin.js"), "run", "--stack", stack, "--dataset", "qa", "--split", "train", "--candidate", "c"],
          { cwd: root, encoding: "utf8", env: { ...process.env, NODE_OPTIONS: "", HOLDOUT_TEST_DEFECT: "plain" } }
        )
      const first = start()
      assert.isTrue(existsSync(join(outdir, "holdout.cjs.run.cache")), "the first start leaves a cache")
      const second = start()
      for (const outcome of [first, second]) {
        // the module was imported: its layer's defect is what the command reports
        assert.include(outcome.stderr, "error: Error: the first line\n")
        assert.strictEqual(outcome.status, 1)
      }
    } finally {
      rmSync(outdir, { recursive: true, force: true })
    }
  })
})
