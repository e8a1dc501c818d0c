/**
 * Strict bodies: a request the sidecar does not fully understand is refused before anything is
 * charged, and every error the sidecar answers is a JSON body with `_tag` and `message`.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { at, evaluate, type Reply, request, serve, spent } from "./sidecar.js"

/** A 400 InvalidRequest whose message names `field`. */
const assertRefusal = (reply: Reply, field: string) => {
  assert.deepStrictEqual([reply.status, at(reply.json, "_tag")], [400, "InvalidRequest"], reply.text)
  const message = at(reply.json, "message")
  assert.isString(message, reply.text)
  assert.include(String(message), field, reply.text)
}

/** A JSON body carrying a tag and a non-empty message. */
const assertErrorBody = (reply: Reply, label: string) => {
  assert.isString(at(reply.json, "_tag"), `${label}: ${reply.status} ${reply.text}`)
  const message = at(reply.json, "message")
  assert.isString(message, `${label}: ${reply.status} ${reply.text}`)
  assert.isAbove(String(message).length, 0, `${label}: ${reply.text}`)
}

describe("strict bodies", () => {
  it.scoped("unknown fields in /eval, top level or nested, are 400 InvalidRequest naming the field; nothing is charged", () =>
    Effect.gen(function*() {
      const server = yield* serve()
      const cases: ReadonlyArray<readonly [Record<string, unknown>, string]> = [
        [{ split: "validation", sampleIDs: [1, 2] }, "sampleIDs"],
        [{ split: "validation", foo: 1 }, "foo"],
        [{ split: "train", candidate: { id: "cand-1", commit: "abc" } }, "commit"],
        [{ split: "train", candidate: { id: "cand-1", label: "x", labels: ["y"] } }, "labels"],
        [{ split: "train", numSamples: 4, idempotencyKey: "k", idempotency_key: "k" }, "idempotency_key"]
      ]
      for (const [body, field] of cases) {
        assertRefusal(yield* evaluate(server, body), field)
      }
      assert.deepStrictEqual(yield* spent(server, "validation"), { runs: 0, samples: 0 })
      assert.deepStrictEqual(yield* spent(server, "train"), { runs: 0, samples: 0 })
      // the same bodies without the stray field are served
      const served = yield* evaluate(server, { split: "validation" })
      assert.strictEqual(served.status, 200, served.text)
      assert.deepStrictEqual(yield* spent(server, "validation"), { runs: 1, samples: 12 })
    }))

  it.scoped("unknown fields in /submit, top level or nested, are 400 InvalidRequest naming the field; nothing is submitted", () =>
    Effect.gen(function*() {
      const server = yield* serve({ mode: "submit" })
      assert.strictEqual((yield* evaluate(server, { split: "train", candidate: { id: "c" } })).status, 200)
      assertRefusal(
        yield* request(server, "POST", "/submit", { body: { candidate: { id: "c" }, force: true } }),
        "force"
      )
      assertRefusal(yield* request(server, "POST", "/submit", { body: { candidate: { id: "c", sha: "abc" } } }), "sha")
      // a submission is final: this one is accepted only if none of the refused ones was taken
      const submitted = yield* request(server, "POST", "/submit", { body: { candidate: { id: "c" } } })
      assert.deepStrictEqual([submitted.status, at(submitted.json, "submitted.id")], [200, "c"], submitted.text)
    }))

  it.scoped("malformed JSON is 400 InvalidRequest with a message, on /eval and /submit", () =>
    Effect.gen(function*() {
      const server = yield* serve({ mode: "submit" })
      for (const path of ["/eval", "/submit"]) {
        for (const raw of ["{ not json", "", "[1, 2", "{\"datasetId\": \"ds\",}"]) {
          const reply = yield* request(server, "POST", path, { raw, headers: { "content-type": "application/json" } })
          assert.deepStrictEqual(
            [reply.status, at(reply.json, "_tag")],
            [400, "InvalidRequest"],
            `${path} ${raw}: ${reply.text}`
          )
          assertErrorBody(reply, `${path} ${raw}`)
        }
      }
      assert.deepStrictEqual(yield* spent(server, "train"), { runs: 0, samples: 0 })
    }))

  it.scoped("every error status answers a JSON body with _tag and message", () =>
    Effect.gen(function*() {
      const server = yield* serve({ maxBodyBytes: 1024, budgets: { train: 10, validation: 2 } })
      const cases: ReadonlyArray<readonly [Record<string, unknown>, number, string]> = [
        [{ split: "train", sampleIds: [99] }, 400, "InvalidRequest"],
        [{ split: "train", sampleIds: "all" }, 400, "InvalidRequest"],
        [{ split: "ghost" }, 400, "UnknownSplit"],
        [{ split: "validation", numSamples: 2 }, 400, "SubsetTooSmall"],
        [{ split: "validation", sampleIds: [0, 1, 2, 3, 4] }, 400, "InvalidRequest"],
        [{ split: "holdout-secret" }, 403, "AccessDenied"],
        [{ split: "open" }, 403, "SplitNotBudgeted"],
        [{ split: "train", candidate: { id: "x".repeat(4096) } }, 413, "PayloadTooLarge"],
        [{ split: "train", candidate: { id: "broken" } }, 500, "StrategyError"],
        [{ split: "train", candidate: { id: "empty" } }, 500, "RunFailed"],
        [{ split: "train", candidate: { id: "store-down" } }, 500, "StoreError"]
      ]
      for (const [body, status, tag] of cases) {
        const reply = yield* evaluate(server, body)
        assert.deepStrictEqual(
          [reply.status, at(reply.json, "_tag")],
          [status, tag],
          `${JSON.stringify(body).slice(0, 80)}: ${reply.text}`
        )
        assertErrorBody(reply, tag)
      }
      // a store failure: its tag, op and a message; never its cause nor the file it names
      const storeDown = yield* evaluate(server, { split: "train", candidate: { id: "store-down" } })
      assert.deepStrictEqual(Object.keys(storeDown.json as object).sort(), ["_tag", "message", "op"], storeDown.text)
      assert.notMatch(storeDown.text, /\/srv\/holdout|SQLITE|"cause"|"stack"/)
      const defect = yield* evaluate(server, { split: "train", candidate: { id: "defect" } })
      assert.strictEqual(defect.status, 500, defect.text)
      assertErrorBody(defect, "a defect")
      assert.notInclude(defect.text, "/srv/holdout")
      const missing = yield* request(server, "POST", "/eval", { body: { split: "train" } })
      assert.deepStrictEqual([missing.status, at(missing.json, "_tag")], [400, "InvalidRequest"], missing.text)
      assertErrorBody(missing, "missing fields")
      for (const [method, path] of [["POST", "/finalize"], ["GET", "/experiments"]] as const) {
        const reply = yield* request(server, method, path, { headers: { authorization: "Bearer wrong" } })
        assert.deepStrictEqual([reply.status, at(reply.json, "_tag")], [401, "Unauthorized"], reply.text)
        assertErrorBody(reply, path)
      }
      const unknownRoute = yield* request(server, "GET", "/nowhere")
      assert.strictEqual(unknownRoute.status, 404)
      assertErrorBody(unknownRoute, "unknown route")
      const wrongMethod = yield* request(server, "GET", "/eval")
      assert.strictEqual(wrongMethod.status, 404)
      assertErrorBody(wrongMethod, "GET /eval")
      const submit = yield* request(server, "POST", "/submit", { body: { candidate: { id: "cand-1" } } })
      assert.deepStrictEqual([submit.status, at(submit.json, "_tag")], [400, "InvalidRequest"])
      assertErrorBody(submit, "submit disabled")
      for (let run = 0; run < 2; run++) {
        assert.strictEqual((yield* evaluate(server, { split: "validation" })).status, 200)
      }
      const exhausted = yield* evaluate(server, { split: "validation" })
      assert.deepStrictEqual([exhausted.status, at(exhausted.json, "_tag")], [429, "BudgetExhausted"], exhausted.text)
      assertErrorBody(exhausted, "BudgetExhausted")
    }))

  it.scoped("a key reused for a different request is 409 IdempotencyConflict with a message, and charges nothing", () =>
    Effect.gen(function*() {
      const server = yield* serve()
      const first = yield* evaluate(server, { split: "train", idempotencyKey: "k-1" })
      assert.strictEqual(first.status, 200, first.text)
      const reused = yield* evaluate(server, { split: "train", numSamples: 4, idempotencyKey: "k-1" })
      assert.deepStrictEqual([reused.status, at(reused.json, "_tag")], [409, "IdempotencyConflict"], reused.text)
      assertErrorBody(reused, "IdempotencyConflict")
      assert.deepStrictEqual(yield* spent(server, "train"), { runs: 1, samples: 8 })
    }))
})
