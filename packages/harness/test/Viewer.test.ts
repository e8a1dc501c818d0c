/**
 * The viewer in headless Chromium (Debian's `chromium`, driven by playwright-core): a stack in memory
 * with runs on a viewable and a non_viewable split (failed runs among them), the viewer on a free
 * port of 127.0.0.1, and the page's views checked as a person would see them: runs, intervals,
 * burn-down, the verifier's answer, failed runs, a per-sample table for the viewable split only,
 * a diff, live updates; then the report page opened from a file. No request may leave the origin.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpServer from "@effect/platform/HttpServer"
import { assert, describe, it } from "@effect/vitest"
import { Engine, Stack, Task, TaskStore } from "@holdout/core"
import { Sidecar, Verifier, Viewer } from "@holdout/harness"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { spawn } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { createServer } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import type { Browser, Page } from "playwright-core"
import { awaitAddress, bin, fixtureStack, holdout, root, type Row, rows, writeConfig } from "./helpers.js"

const chromiumPath = "/usr/bin/chromium"

/** "good" misses every fourth sample; "fair" is off on odd ones; "broken" fails inference on even ones. */
const task = Task.make<Row, number, "answer">({
  name: "double",
  labelFields: ["answer"],
  infer: (row, run) =>
    run.candidate.id === "broken" && row.index % 2 === 0
      ? Task.output(-1, { error: `model timed out on row ${row.index}` })
      : run.candidate.id === "fair" && row.index % 2 === 1
      ? row.index * 2 + 1
      : row.index * 2,
  score: (row, stored) => (stored.output === row.answer && row.index % 4 !== 3 ? 1 : 0)
})

const stack = Stack.layerMemory({
  budgets: [
    { datasetId: "ds", split: "train", runs: 8 },
    { datasetId: "ds", split: "validation", runs: 4, samples: 100 }
  ],
  policy: { train: "viewable", validation: "non_viewable", test: "no_access" },
  datasets: { ds: { train: rows(12), validation: rows(20), test: rows(6) } },
  task
})

const verifier = Verifier.layer({
  mode: "submit",
  targets: [{ datasetId: "ds", split: "test", rewardKey: "accuracy" }]
})

/** The browser, or a failure that says how to install it: never a silent skip. */
const launchBrowser = Effect.acquireRelease(
  Effect.tryPromise({
    try: async () => {
      if (!existsSync(chromiumPath)) {
        throw new Error(
          `${chromiumPath} is missing: the viewer is tested in Debian's chromium. ` +
            "Install it with `apt-get install -y chromium` (as .ci/run does)."
        )
      }
      const { chromium } = await import("playwright-core")
      return await chromium.launch({ executablePath: chromiumPath })
    },
    catch: (error) => error
  }),
  (browser: Browser) => Effect.promise(() => browser.close())
)

/** A page that records every request it makes and every script error. */
const openPage = (browser: Browser) =>
  Effect.promise(async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
    const requests: Array<string> = []
    const errors: Array<string> = []
    page.on("request", (request) => requests.push(request.url()))
    page.on("pageerror", (error) => errors.push(error.message))
    page.on("console", (message) => {
      if (message.type() === "error") errors.push(message.text())
    })
    return { page, requests, errors }
  })

const texts = (page: Page, selector: string) => page.locator(selector).allTextContents()

describe("holdout view in headless Chromium", () => {
  it.scopedLive(
    "shows runs, intervals, burn-down, the verifier, failed runs, samples of viewable splits only",
    () =>
      Effect.gen(function*() {
        const dir = mkdtempSync(join(tmpdir(), "holdout-viewer-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
        const context = yield* Layer.build(
          Viewer.layer({ updates: { _tag: "poll", interval: "200 millis" } }).pipe(
            Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
            Layer.provideMerge(verifier),
            Layer.provideMerge(stack),
            Layer.provide(NodeContext.layer)
          )
        )
        const engine = Context.get(context, Engine.Engine)
        const address = Context.get(context, HttpServer.HttpServer).address
        assert(address._tag === "TcpAddress")
        const origin = `http://127.0.0.1:${address.port}`

        const evaluate = (split: string, candidate: string) =>
          Effect.either(engine.evaluate({ datasetId: "ds", split, candidate: { id: candidate } }))
        const goodTrain = yield* evaluate("train", "good")
        const fairTrain = yield* evaluate("train", "fair")
        const brokenTrain = yield* evaluate("train", "broken")
        const goodValidation = yield* evaluate("validation", "good")
        const brokenValidation = yield* evaluate("validation", "broken")
        for (const outcome of [goodTrain, fairTrain, brokenTrain, goodValidation, brokenValidation]) {
          assert(outcome._tag === "Right", "every evaluation returns its experiment")
        }
        const runIdOf = (outcome: typeof goodTrain) => outcome._tag === "Right" ? outcome.right.run.runId : ""
        assert.strictEqual(brokenTrain._tag === "Right" && brokenTrain.right.run.status, "failed")
        assert.strictEqual(brokenValidation._tag === "Right" && brokenValidation.right.run.status, "failed")
        const answer = yield* Effect.flatMap(
          Verifier.Verifier,
          (service) => Effect.zipRight(service.submit({ id: "good" }), service.finalize())
        ).pipe(Effect.provide(context))
        assert.strictEqual(answer.candidate, "good")

        const browser = yield* launchBrowser
        const { errors, page, requests } = yield* openPage(browser)
        yield* Effect.promise(async () => {
          await page.goto(`${origin}/`)
          await page.waitForSelector("body[data-ready=true]")
          await page.waitForSelector("#live.on")
        })

        // runs: every run listed, the failed ones as failed
        const listed = yield* Effect.promise(() =>
          page.locator("#runs-table tbody tr").evaluateAll((rows) => rows.map((row) => row.getAttribute("data-run")))
        )
        const allRuns = yield* Effect.map(TaskStore.TaskStore, (store) => store.listRuns()).pipe(
          Effect.flatten,
          Effect.provide(context)
        )
        assert.deepStrictEqual([...listed].sort(), allRuns.map((run) => run.runId).sort())
        assert.strictEqual(allRuns.length, 6, "five evaluations and the verifier's admin run on test")
        const failedStatus = yield* Effect.promise(() =>
          page.locator(`#runs-table tr[data-run="${runIdOf(brokenTrain)}"] .status-failed`).count()
        )
        assert.strictEqual(failedStatus, 1)

        // scores with their 95% intervals, and runs over time drawn with whiskers
        const scoreRows = yield* Effect.promise(() => texts(page, "#scores-table tbody tr"))
        const goodOnTrain = scoreRows.find((row) => row.startsWith("good") && row.includes("ds/train"))
        assert.isDefined(goodOnTrain)
        assert.match(goodOnTrain!, /75\.0%\[\d+\.\d%, \d+\.\d%\]/)
        const intervals = yield* Effect.promise(() => texts(page, "#scores-table .interval"))
        assert.isAtLeast(intervals.filter((text) => /^\[-?\d+\.\d%, \d+\.\d%\]$/.test(text)).length, 4)
        assert.isAtLeast(yield* Effect.promise(() => page.locator("svg.runs-over-time").count()), 2)
        assert.isAtLeast(yield* Effect.promise(() => page.locator("svg.runs-over-time .whisker").count()), 4)

        // burn-down of each budget, a step per charge
        const budgets = yield* Effect.promise(() => texts(page, "#budgets .budget"))
        assert.strictEqual(budgets.length, 2)
        assert.include(budgets.find((text) => text.includes("ds/train"))!, "5 of 8 runs, unlimited samples left")
        assert.include(budgets.find((text) => text.includes("ds/validation"))!, "2 of 4 runs, 60 of 100 samples left")
        assert.strictEqual(yield* Effect.promise(() => page.locator("#budgets svg.burndown").count()), 2)
        const trainSteps = yield* Effect.promise(() =>
          page.locator(`#budgets .budget[data-split="ds/train"] svg.burndown circle`).count()
        )
        assert.strictEqual(trainSteps, 3)

        // the verifier's answer
        const verifierText = yield* Effect.promise(() => page.locator("#verifier").textContent())
        assert.include(verifierText, "Submission: good")
        assert.include(verifierText, "Answer: good")
        assert.include(verifierText, "accuracy")

        // failed runs: the viewable one with its first errors, the non_viewable one in aggregate only
        const failedTrain = yield* Effect.promise(() =>
          page.locator(`#failed .failed-run[data-run="${runIdOf(brokenTrain)}"]`).textContent()
        )
        assert.include(failedTrain, "6 of 12 samples failed")
        assert.include(failedTrain, "sample 0: model timed out on row 0")
        const failedValidation = yield* Effect.promise(() =>
          page.locator(`#failed .failed-run[data-run="${runIdOf(brokenValidation)}"]`).textContent()
        )
        assert.include(failedValidation, "shows aggregates only")
        assert.notInclude(failedValidation, "model timed out")

        // per-sample table: offered for the viewable split only
        const offered = yield* Effect.promise(() =>
          page.locator("#sample-run option").evaluateAll((options) =>
            options.map((option) => (option as HTMLOptionElement).value).filter((value) => value !== "")
          )
        )
        assert.deepStrictEqual(
          [...offered].sort(),
          [runIdOf(goodTrain), runIdOf(fairTrain), runIdOf(brokenTrain)].sort()
        )
        for (const hidden of [goodValidation, brokenValidation]) {
          const row = `#runs-table tr[data-run="${runIdOf(hidden)}"]`
          assert.strictEqual(yield* Effect.promise(() => page.locator(`${row} .open-samples`).count()), 0)
          assert.include(yield* Effect.promise(() => page.locator(row).textContent()), "aggregate only")
        }
        yield* Effect.promise(async () => {
          await page.locator(`#runs-table tr[data-run="${runIdOf(goodTrain)}"] .open-samples`).click()
          await page.waitForFunction(() => document.querySelectorAll("#samples-table-body tr").length === 12)
        })
        // filter: errors and scores below 1 (every fourth sample of "good")
        yield* Effect.promise(async () => {
          await page.selectOption("#sample-status", "wrong")
          await page.waitForFunction(() => document.querySelectorAll("#samples-table-body tr").length === 3)
        })
        const wrongIds = yield* Effect.promise(() =>
          page.locator("#samples-table-body tr").evaluateAll((rows) =>
            rows.map((row) => row.getAttribute("data-sample"))
          )
        )
        assert.deepStrictEqual(wrongIds, ["3", "7", "11"])
        // sort: by id, descending on a second click
        yield* Effect.promise(async () => {
          await page.selectOption("#sample-status", "all")
          await page.waitForFunction(() => document.querySelectorAll("#samples-table-body tr").length === 12)
          await page.locator("#samples-table th[data-key=score]").click()
        })
        const byScore = yield* Effect.promise(() => texts(page, "#samples-table-body tr td:nth-child(2)"))
        assert.deepStrictEqual(byScore.slice(0, 3), ["0", "0", "0"])
        yield* Effect.promise(async () => {
          await page.locator("#samples-table th[data-key=sampleId]").click()
          await page.locator("#samples-table th[data-key=sampleId]").click()
        })
        const descending = yield* Effect.promise(() => texts(page, "#samples-table-body tr td:nth-child(1)"))
        assert.strictEqual(descending[0], "11")
        // asked directly, a non_viewable run's samples are refused
        const refused = yield* Effect.promise(async () => {
          const response = await fetch(`${origin}/api/runs/${encodeURIComponent(runIdOf(goodValidation))}/samples`)
          return { status: response.status, body: await response.json() as { _tag: string } }
        })
        assert.strictEqual(refused.status, 403)
        assert.strictEqual(refused.body._tag, "AggregateOnly")

        // candidate-vs-candidate diff on the viewable split
        yield* Effect.promise(async () => {
          await page.selectOption("#compare-split", "ds/train")
          await page.selectOption("#compare-a", runIdOf(goodTrain))
          await page.selectOption("#compare-b", runIdOf(fairTrain))
          await page.locator("#compare-run").click()
          await page.waitForSelector("#compare-summary")
        })
        const summary = yield* Effect.promise(() => page.locator("#compare-summary").textContent())
        assert.include(summary, "good − fair on ds/train")
        assert.include(summary, "12 shared samples")
        const compareSplits = yield* Effect.promise(() =>
          page.locator("#compare-split option").evaluateAll((options) =>
            options.map((option) => (option as HTMLOptionElement).value)
          )
        )
        assert.deepStrictEqual(compareSplits, ["ds/train"])
        // "fair" is wrong on odd samples that "good" gets right: 1, 5, 9 (3, 7, 11 are 0 for both)
        const differing = yield* Effect.promise(() => texts(page, "#compare-table tbody tr td:first-child"))
        assert.deepStrictEqual(differing, ["1", "5", "9"])

        // live: a new run shows up without a reload
        const later = yield* evaluate("train", "fair")
        const laterId = runIdOf(later)
        yield* Effect.promise(() => page.waitForSelector(`#runs-table tr[data-run="${laterId}"]`, { timeout: 10_000 }))

        const screenshot = join(dir, "viewer.png")
        yield* Effect.promise(() => page.screenshot({ path: screenshot, fullPage: true }))
        const png = readFileSync(screenshot)
        assert.isAbove(statSync(screenshot).size, 10_000)
        assert.strictEqual(png.subarray(1, 4).toString("latin1"), "PNG")

        assert.deepStrictEqual(errors, [], "the page raised no script error")
        assert.isAbove(requests.length, 3)
        const outside = requests.filter((url) => !url.startsWith(`${origin}/`))
        assert.deepStrictEqual(outside, [], "the page requested nothing outside the viewer's origin")

        // the report: the same page with its data embedded, opened from a file, requests nothing else
        const reportFile = join(dir, "report.html")
        writeFileSync(reportFile, yield* Effect.provide(Viewer.report, context))
        const report = yield* openPage(browser)
        const fileUrl = pathToFileURL(reportFile).href
        yield* Effect.promise(async () => {
          await report.page.goto(fileUrl)
          await report.page.waitForSelector("body[data-ready=true]")
        })
        const reportRuns = yield* Effect.promise(() => report.page.locator("#runs-table tbody tr").count())
        assert.strictEqual(reportRuns, 7)
        assert.strictEqual(yield* Effect.promise(() => report.page.locator("#budgets svg.burndown").count()), 2)
        assert.include(yield* Effect.promise(() => report.page.locator("#live").textContent()), "self-contained")
        yield* Effect.promise(async () => {
          await report.page.locator(`#runs-table tr[data-run="${runIdOf(brokenTrain)}"] .open-samples`).click()
          await report.page.waitForFunction(() => document.querySelectorAll("#samples-table-body tr").length === 12)
          await report.page.selectOption("#sample-status", "errors")
          await report.page.waitForFunction(() => document.querySelectorAll("#samples-table-body tr").length === 6)
        })
        const reportOffered = yield* Effect.promise(() => report.page.locator("#sample-run option").count())
        assert.strictEqual(reportOffered, 1 + 4, "the report offers the four viewable runs only")
        const html = readFileSync(reportFile, "utf8")
        assert.notMatch(html, /(src|href)="(https?:)?\/\//, "the report links nothing outside itself")
        assert.deepStrictEqual(report.errors, [])
        assert.deepStrictEqual(report.requests, [fileUrl], "the report made no request but its own file")
      }),
    120_000
  )
})

/** Reads a response body to its end (or until aborted), keeping its text as it arrives. */
const readAll = async (response: Response, into: Array<string>): Promise<void> => {
  if (response.body === null) return
  const reader = response.body.getReader()
  const decoder = new TextDecoder()
  try {
    while (true) {
      const { done, value } = await reader.read()
      if (done) return
      into.push(decoder.decode(value))
    }
  } catch {
    // aborted
  }
}

describe("the viewer in the sidecar, under /view", () => {
  it.scopedLive(
    "needs the admin token, keeps the tier rule and pushes changes from the sidecar's runs",
    () =>
      Effect.gen(function*() {
        const dir = mkdtempSync(join(tmpdir(), "holdout-viewer-sidecar-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
        const tokenFile = join(dir, "admin.token")
        const context = yield* Layer.build(
          Sidecar.layer({ tokenFile }).pipe(
            Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
            Layer.provide(verifier),
            Layer.provideMerge(stack),
            Layer.provide(NodeContext.layer)
          )
        )
        const address = Context.get(context, HttpServer.HttpServer).address
        assert(address._tag === "TcpAddress")
        const origin = `http://127.0.0.1:${address.port}`
        const token = readFileSync(tokenFile, "utf8").trim()
        const get = (path: string, headers: Record<string, string> = {}) =>
          Effect.promise(async () => {
            const response = await fetch(origin + path, { headers })
            return { status: response.status, text: await response.text(), type: response.headers.get("content-type") }
          })
        const bearer = { authorization: `Bearer ${token}` }

        for (const headers of [{}, { authorization: `Bearer ${token}x` }, { authorization: token }]) {
          for (const path of ["/view/", "/view/api/overview", "/view/api/events"]) {
            const refused = yield* get(path, headers)
            assert.strictEqual(refused.status, 401, `${path} without the token`)
            assert.include(refused.text, "Unauthorized")
          }
        }
        const page = yield* get("/view/", bearer)
        assert.strictEqual(page.status, 200)
        assert.include(page.type, "text/html")
        assert.include(page.text, "<title>Holdout</title>")

        // an optimizer's evaluations through the sidecar, pushed to an open event stream
        const events = new AbortController()
        const received: Array<string> = []
        const stream = yield* Effect.promise(() =>
          fetch(`${origin}/view/api/events`, { headers: bearer, signal: events.signal })
        )
        assert.strictEqual(stream.status, 200)
        assert.include(stream.headers.get("content-type"), "text/event-stream")
        const reading = readAll(stream, received)
        yield* Effect.addFinalizer(() =>
          Effect.promise(() => {
            events.abort()
            return reading
          })
        )
        const evaluate = (split: string) =>
          Effect.promise(async () => {
            const response = await fetch(`${origin}/eval`, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify({ datasetId: "ds", split, candidate: { id: "good" } })
            })
            const body = await response.json() as { experiment: { summary: { runId: string } } }
            assert.strictEqual(response.status, 200)
            return body.experiment.summary.runId
          })
        const trainRun = yield* evaluate("train")
        const validationRun = yield* evaluate("validation")
        yield* Effect.promise(async () => {
          for (let waited = 0; waited < 100 && !received.join("").includes("event: change"); waited++) {
            await new Promise((resolve) => setTimeout(resolve, 50))
          }
        })
        assert.include(received.join(""), "event: change", "the run events reached the page's stream")

        const overview = JSON.parse((yield* get("/view/api/overview", bearer)).text) as Viewer.Overview
        assert.deepStrictEqual(overview.runs.map((run) => run.runId).sort(), [trainRun, validationRun].sort())
        const viewable = yield* get(`/view/api/runs/${encodeURIComponent(trainRun)}/samples?limit=5`, bearer)
        assert.strictEqual(viewable.status, 200)
        const samplePage = JSON.parse(viewable.text) as { samples: ReadonlyArray<{ sampleId: number }>; next: number }
        assert.deepStrictEqual(samplePage.samples.map((sample) => sample.sampleId), [0, 1, 2, 3, 4])
        assert.strictEqual(samplePage.next, 4)
        const hidden = yield* get(`/view/api/runs/${encodeURIComponent(validationRun)}/samples`, bearer)
        assert.strictEqual(hidden.status, 403)
        assert.include(hidden.text, "aggregate only")
        const compared = yield* get(`/view/api/compare?runA=${trainRun}&runB=${validationRun}`, bearer)
        assert.strictEqual(compared.status, 403)
        // the other JSON routes, and refusals as JSON with their tag
        const jsonOf = (path: string) =>
          Effect.map(get(path, bearer), (reply) => ({ status: reply.status, body: JSON.parse(reply.text) as unknown }))
        const listed = yield* jsonOf("/view/api/runs")
        assert.strictEqual(listed.status, 200)
        assert.strictEqual((listed.body as { runs: ReadonlyArray<unknown> }).runs.length, 2)
        const budgets = (yield* jsonOf("/view/api/budgets")).body as {
          budgets: ReadonlyArray<{ split: string; burn: ReadonlyArray<{ runsLeft: number | null }> }>
        }
        assert.deepStrictEqual(
          budgets.budgets.map((budget) => [budget.split, budget.burn.map((point) => point.runsLeft)]),
          [["train", [7]], ["validation", [3]]]
        )
        const verifierState = (yield* jsonOf("/view/api/verifier")).body
        assert.deepStrictEqual(verifierState, { mode: "submit", submission: null, answer: null })
        const refusals = [
          ["/view/api/nothing-here", 404, "RouteNotFound"],
          ["/view/api/runs/no-such-run/samples", 404, "UnknownRun"],
          [`/view/api/runs/${encodeURIComponent(trainRun)}/samples?limit=0`, 400, "InvalidRequest"],
          [`/view/api/runs/${encodeURIComponent(trainRun)}/samples?status=bogus`, 400, "InvalidRequest"],
          ["/view/api/compare?runA=x", 400, "InvalidRequest"]
        ] as const
        for (const [path, status, tag] of refusals) {
          const reply = yield* jsonOf(path)
          assert.strictEqual(reply.status, status, path)
          assert.strictEqual((reply.body as { _tag: string })._tag, tag, path)
        }
        // the optimizer's own routes are as they were
        assert.strictEqual((yield* get("/health")).status, 200)

        // the page itself, given the token as a header, reads its data from beside /view
        const browser = yield* launchBrowser
        const opened = yield* Effect.promise(async () => {
          const page = await browser.newPage({ extraHTTPHeaders: bearer })
          const requests: Array<string> = []
          page.on("request", (request) => requests.push(request.url()))
          await page.goto(`${origin}/view`)
          await page.waitForSelector("body[data-ready=true]")
          return { rows: await page.locator("#runs-table tbody tr").count(), requests }
        })
        assert.strictEqual(opened.rows, 2)
        assert.deepStrictEqual(opened.requests.filter((url) => !url.startsWith(`${origin}/view`)), [])
        // a browser without the header signs in with the token and gets a session cookie for /view only
        const signedIn = yield* Effect.promise(async () => {
          const page = await browser.newPage()
          await page.goto(`${origin}/view`)
          const form = await page.locator("form").count()
          await page.fill("input[name=token]", `${token}x`)
          await page.click("button[type=submit]")
          const wrong = await page.locator("body").textContent()
          await page.fill("input[name=token]", token)
          await page.click("button[type=submit]")
          await page.waitForSelector("body[data-ready=true]")
          const cookies = await page.context().cookies()
          return {
            form,
            wrong,
            url: page.url(),
            rows: await page.locator("#runs-table tbody tr").count(),
            cookies
          }
        })
        assert.strictEqual(signedIn.form, 1)
        assert.include(signedIn.wrong, "not the admin token")
        assert.strictEqual(signedIn.url, `${origin}/view/`)
        assert.strictEqual(signedIn.rows, 2)
        assert.strictEqual(signedIn.cookies.length, 1)
        const [cookie] = signedIn.cookies
        assert.strictEqual(cookie!.path, "/view")
        assert.isTrue(cookie!.httpOnly)
        assert.strictEqual(cookie!.sameSite, "Strict")
        assert.notInclude(cookie!.value, token, "the cookie is a session id, not the token")
        // the session opens the viewer, never the verifier's routes
        const withCookie = { cookie: `${cookie!.name}=${cookie!.value}` }
        assert.strictEqual((yield* get("/view/api/overview", withCookie)).status, 200)
        const finalize = yield* Effect.promise(() =>
          fetch(`${origin}/finalize`, { method: "POST", headers: withCookie }).then((response) => response.status)
        )
        assert.strictEqual(finalize, 401)
        assert.strictEqual((yield* get("/view/api/overview", { cookie: `${cookie!.name}=forged` })).status, 401)
      }),
    120_000
  )
})

describe("the viewer's scores", () => {
  it.effect("keep subsets apart from whole-split runs, never averaged together, and count failed runs", () =>
    Effect.gen(function*() {
      const engine = yield* Engine.Engine
      const whole = yield* engine.evaluate({ datasetId: "ds", split: "train", candidate: { id: "good" } })
      const subset = yield* engine.evaluate({
        datasetId: "ds",
        split: "train",
        candidate: { id: "good" },
        sampleIds: [0, 1, 2, 3, 4, 5]
      })
      const broken = yield* engine.evaluate({ datasetId: "ds", split: "train", candidate: { id: "broken" } })
      assert.strictEqual(broken.run.status, "failed")
      // "good" misses every fourth sample: 9 of 12 on the whole split, 5 of 6 on the subset
      assert.strictEqual(whole.metrics.avgFilledScore, 0.75)
      assert.closeTo(subset.metrics.avgFilledScore, 5 / 6, 1e-9)

      const overview = yield* Viewer.overview
      const flags = Object.fromEntries(overview.runs.map((run) => [run.runId, [run.status, run.subset]]))
      assert.deepStrictEqual(flags, {
        [whole.run.runId]: ["completed", false],
        [subset.run.runId]: ["completed", true],
        [broken.run.runId]: ["failed", false]
      })
      const scores = overview.scores.map((score) => ({
        candidate: score.candidateId,
        subset: score.subset,
        runs: score.runs,
        failedRuns: score.failedRuns,
        meanOfRuns: score.meanOfRuns,
        newestRunId: score.newestRunId
      })).sort((a, b) => a.candidate.localeCompare(b.candidate) || Number(a.subset) - Number(b.subset))
      assert.deepStrictEqual(scores, [
        {
          candidate: "broken",
          subset: false,
          runs: 1,
          failedRuns: 1,
          meanOfRuns: broken.metrics.avgFilledScore,
          newestRunId: broken.run.runId
        },
        { candidate: "good", subset: false, runs: 1, failedRuns: 0, meanOfRuns: 0.75, newestRunId: whole.run.runId },
        {
          candidate: "good",
          subset: true,
          runs: 1,
          failedRuns: 0,
          meanOfRuns: subset.metrics.avgFilledScore,
          newestRunId: subset.run.runId
        }
      ])
      assert.deepStrictEqual(overview.failed.map((run) => run.runId), [broken.run.runId])

      // the report's page embeds the same: every run, the failed one too, and the scores apart
      const page = yield* Viewer.report
      const json = /<script type="application\/json" id="holdout-data">(.*?)<\/script>/s.exec(page)
      assert(json !== null, "the page embeds its data")
      const embedded = JSON.parse(json[1]!) as Viewer.Embedded
      assert.sameMembers(embedded.overview.runs.map((run) => run.runId), [
        whole.run.runId,
        subset.run.runId,
        broken.run.runId
      ])
      assert.deepStrictEqual(
        embedded.overview.scores.filter((score) => score.candidateId === "good").map((score) => score.meanOfRuns)
          .sort((a, b) => a - b),
        [0.75, subset.metrics.avgFilledScore]
      )
    }).pipe(Effect.provide(stack)))
})

describe("the viewer's event stream", () => {
  it.live("ends when the viewer stops, so a server with pages still open shuts down", () =>
    Effect.gen(function*() {
      const received: Array<string> = []
      const reading = yield* Effect.scoped(Effect.gen(function*() {
        const context = yield* Layer.build(
          Viewer.layer({ updates: { _tag: "poll", interval: "100 millis" } }).pipe(
            Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
            Layer.provideMerge(stack),
            Layer.provide(NodeContext.layer)
          )
        )
        const address = Context.get(context, HttpServer.HttpServer).address
        assert(address._tag === "TcpAddress")
        const response = yield* Effect.promise(() => fetch(`http://127.0.0.1:${address.port}/api/events`))
        assert.strictEqual(response.status, 200)
        const reading = readAll(response, received)
        // a change while the page listens: the poller sees the new run
        const engine = Context.get(context, Engine.Engine)
        yield* engine.evaluate({ datasetId: "ds", split: "train", candidate: { id: "good" } })
        yield* Effect.promise(async () => {
          for (let waited = 0; waited < 100 && !received.join("").includes("event: change"); waited++) {
            await new Promise((resolve) => setTimeout(resolve, 50))
          }
        })
        return reading
      }))
      // the scope closed with the stream still open: it ended, and closing did not wait for the client
      yield* Effect.promise(() => reading).pipe(Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => "open" }))
      assert.include(received.join(""), "retry: 3000")
      assert.include(received.join(""), "event: change")
    }), 60_000)
})

/** Starts `holdout view` and waits for the address it serves on; it is killed when the scope closes. */
const startViewer = (args: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.suspend(() =>
      awaitAddress(
        spawn("node", ["--import", "tsx", bin, "view", ...args], { cwd: root, stdio: ["ignore", "pipe", "pipe"] }),
        { pattern: /holdout viewer on (http:\/\/127\.0\.0\.1:\d+)/, what: "holdout view" }
      )
    ).pipe(Effect.timeout("60 seconds"), Effect.orDie),
    ({ child }) =>
      Effect.sync(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
      })
  )

describe("holdout view", () => {
  it.scopedLive(
    "serves a stack's store on 127.0.0.1, live from runs another process makes",
    () =>
      Effect.gen(function*() {
        const { dir, file: config } = writeConfig("holdout-view-cli-", fixtureStack(3))
        yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
        const run = (split: string, candidate: string) =>
          holdout(["run", "-c", config, "--dataset", "qa", "--split", split, "--candidate", candidate])
        const first = yield* run("train", "exact")
        assert.strictEqual(first.code, 0, first.stderr)

        const viewer = yield* startViewer(["-c", config, "--port", "0"])
        const overview = yield* Effect.promise(async () => (await fetch(`${viewer.url}/api/overview`)).json())
        const runs = (overview as Viewer.Overview).runs
        assert.deepStrictEqual(runs.map((entry) => [entry.candidateId, entry.split, entry.status]), [
          ["exact", "train", "completed"]
        ])
        const page = yield* Effect.promise(async () => {
          const response = await fetch(`${viewer.url}/`)
          return { type: response.headers.get("content-type"), csp: response.headers.get("content-security-policy") }
        })
        assert.include(page.type, "text/html")
        assert.include(page.csp, "connect-src 'self'")

        // a run made by another process reaches an open page through the store
        const events = new AbortController()
        const received: Array<string> = []
        const stream = yield* Effect.promise(() => fetch(`${viewer.url}/api/events`, { signal: events.signal }))
        const reading = readAll(stream, received)
        yield* Effect.addFinalizer(() =>
          Effect.promise(() => {
            events.abort()
            return reading
          })
        )
        const second = yield* run("validation", "exact")
        assert.strictEqual(second.code, 0, second.stderr)
        yield* Effect.promise(async () => {
          for (let waited = 0; waited < 200 && !received.join("").includes("event: change"); waited++) {
            await new Promise((resolve) => setTimeout(resolve, 50))
          }
        })
        assert.include(received.join(""), "event: change")

        // a port in use is one line that says what to do
        const port = new URL(viewer.url).port
        const taken = yield* holdout(["view", "-c", config, "--port", port])
        assert.strictEqual(taken.code, 1)
        // (a budgeted viewable split also logs a warning line first; the error itself is one line)
        const errorLines = taken.stderr.split("\n").filter((line) => line.startsWith("error:"))
        assert.strictEqual(errorLines.length, 1, taken.stderr)
        assert.match(errorLines[0]!, /^error: ListenError: The viewer cannot listen on 127\.0\.0\.1:\d+ .*--port/)
        assert.notInclude(taken.stderr, "    at ", "no stack trace")
      }),
    120_000
  )
})
