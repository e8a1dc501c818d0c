import { defineConfig } from "vitest/config"

const runtime = "Deno" in globalThis ? "deno" : "node"

export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts", "examples/*/test/**/*.test.ts", "tests/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // In CI, also write a JSON report per runtime; .ci/run prints its totals as a closing line.
    reporters: process.env.CI ? ["default", "json"] : ["default"],
    outputFile: { json: `.ci/out/vitest-${runtime}.json` }
  }
})
