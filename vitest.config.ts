import { defaultClientConditions, defaultServerConditions } from "vite"
import { defineConfig } from "vitest/config"

const runtime = "Deno" in globalThis ? "deno" : "node"

/**
 * The workspace packages export their TypeScript sources under this condition (and their built
 * `dist/` otherwise): the tests read the sources, without a build.
 */
const source = "@holdout/source"

// processes the tests start (`node --import tsx …`, `deno run …`) read the sources too
process.env["NODE_OPTIONS"] = [process.env["NODE_OPTIONS"], `--conditions=${source}`].filter(Boolean).join(" ")
process.env["DENO_CONDITIONS"] = source

export default defineConfig({
  resolve: { conditions: [source, ...defaultClientConditions] },
  ssr: { resolve: { conditions: [source, ...defaultServerConditions] } },
  test: {
    include: ["packages/*/test/**/*.test.ts", "examples/*/test/**/*.test.ts", "tests/**/*.test.ts"],
    // a throwaway PostgreSQL cluster for the PostgreSQL tests when HOLDOUT_TEST_PG_URL is not set
    globalSetup: ["scripts/pg-global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // In CI, also write a JSON report per runtime; .ci/run prints its totals as a closing line.
    reporters: process.env.CI ? ["default", "json"] : ["default"],
    outputFile: { json: `.ci/out/vitest-${runtime}.json` }
  }
})
