import * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { describe as suite, expect, it } from "@effect/vitest"
import { describe } from "../src/cli/errors.js"

const request = HttpClientRequest.get("http://127.0.0.1:9/agent/status")

const transport = (cause: unknown) => new HttpClientError.RequestError({ request, reason: "Transport", cause })

/** A system error as Node gives it (`connect ECONNREFUSED …`, with its code). */
const systemError = (code: string) => Object.assign(new Error(`connect ${code} 127.0.0.1:9`), { code })

suite("a command's error line for a request that did not reach the sidecar", () => {
  it("says the connection was refused when Node's http module gives ECONNREFUSED as it is", () => {
    expect(describe(transport(systemError("ECONNREFUSED")))).toBe(
      "no sidecar at http://127.0.0.1:9 (the connection was refused): start one with " +
        "`holdout serve -c holdout.yaml`, or set HOLDOUT_URL (or --url) to where it listens."
    )
  })

  it("finds ECONNREFUSED under fetch's TypeError and in an AggregateError of several addresses", () => {
    const wrapped = new TypeError("fetch failed", { cause: systemError("ECONNREFUSED") })
    const aggregate = new AggregateError([systemError("ETIMEDOUT"), systemError("ECONNREFUSED")], "")
    for (const cause of [wrapped, aggregate]) {
      expect(describe(transport(cause))).toContain("(the connection was refused)")
    }
  })

  it("names another system error's code, with the same hint", () => {
    const line = describe(transport(new TypeError("fetch failed", { cause: systemError("ENOTFOUND") })))
    expect(line).toContain("no sidecar at http://127.0.0.1:9 (the connection failed, ENOTFOUND)")
    expect(line).toContain("holdout serve -c holdout.yaml")
    expect(describe(transport(new Error("socket hang up")))).toContain("(the connection failed)")
  })
})
