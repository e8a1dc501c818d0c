/**
 * Vitest global setup: a throwaway PostgreSQL cluster for the tests that need one, when
 * `HOLDOUT_TEST_PG_URL` is not set and PostgreSQL is installed (started by `scripts/pg-cluster.sh`,
 * stopped and removed in teardown). Without either, nothing is started and the PostgreSQL tests
 * fail saying how to get one; every other test runs as usual.
 */
import { execFileSync } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const script = fileURLToPath(new URL("./pg-cluster.sh", import.meta.url))

const installed = (): boolean =>
  process.env["PG_BIN"] !== undefined ||
  (existsSync("/usr/lib/postgresql") &&
    readdirSync("/usr/lib/postgresql").some((version) => existsSync(`/usr/lib/postgresql/${version}/bin/initdb`)))

export default function setup(): (() => void) | undefined {
  if (process.env["HOLDOUT_TEST_PG_URL"] !== undefined || !installed()) return undefined
  const dir = mkdtempSync(join(tmpdir(), "holdout-pg-"))
  const stop = () => {
    execFileSync(script, ["stop", dir], { stdio: "inherit" })
  }
  try {
    const url = execFileSync(script, ["start", dir], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim()
    process.env["HOLDOUT_TEST_PG_URL"] = url
  } catch (error) {
    const output = (error as { readonly stderr?: unknown }).stderr
    process.env["HOLDOUT_TEST_PG_START_ERROR"] = (typeof output === "string" && output.trim() !== ""
      ? output
      : String(error)).trim().split("\n")[0]
    try {
      stop()
    } catch {
      // no server was started
    }
    rmSync(dir, { recursive: true, force: true })
    return undefined
  }
  return stop
}
