/**
 * `holdout eval`: the optimizer evaluates a candidate through the sidecar (charged).
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Engine, type Model } from "@holdout/core"
import * as Chunk from "effect/Chunk"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type { EvalResponse } from "../SidecarApi.js"
import { didYouMean, handled, Hinted } from "./errors.js"
import { meanOf, plural, toldOf } from "./format.js"
import * as Shared from "./shared.js"

const firstLine = (text: string) => text.split("\n")[0] ?? ""

/** How many ids of samples not fully right `eval` prints (the rest are counted). */
const printedWrong = 50

/** Shows that an evaluation through the sidecar is under way, once it has taken longer than a second. */
const showWaiting = Effect.gen(function*() {
  const tty = process.stderr.isTTY === true
  const started = Date.now()
  yield* Effect.sleep("1 second")
  while (true) {
    const seconds = Math.round((Date.now() - started) / 1000)
    process.stderr.write(tty ? `\revaluating… ${seconds} s ` : `evaluating: ${seconds} s\n`)
    yield* Effect.sleep(tty ? "1 second" : "5 seconds")
  }
})

type Client = Effect.Effect.Success<ReturnType<typeof Shared.client>>

/** Every sample of a `viewable` run from the sidecar, page by page. */
export const remoteSamples = (
  api: Client,
  runId: string,
  after: Option.Option<number> = Option.none(),
  limit?: number
): Stream.Stream<Model.SampleRecord, Effect.Effect.Error<ReturnType<Client["agent"]["samples"]>>> =>
  Stream.paginateChunkEffect(after, (cursor) =>
    Effect.map(
      api.agent.samples({
        path: { runId },
        urlParams: {
          ...Option.match(cursor, { onNone: () => ({}), onSome: (value) => ({ after: value }) }),
          ...(limit === undefined ? {} : { limit })
        }
      }),
      (page) =>
        [
          Chunk.unsafeFromArray(page.samples.slice()),
          page.next === null ? Option.none() : Option.some(Option.some(page.next))
        ] as const
    ))

type Reply = typeof EvalResponse.Type

/** Prints an evaluation's answer: its mean, its run, the samples not fully right, the budget left. */
export const printReply = (
  api: Client,
  reply: Reply
): Effect.Effect<void, Effect.Effect.Error<ReturnType<Client["agent"]["samples"]>>> =>
  Effect.gen(function*() {
    const { summary } = reply.experiment
    const where = `${summary.candidateId} on ${summary.datasetId}/${summary.split} (${reply.experiment._tag})`
    yield* Console.log(
      "release" in summary
        ? `${where}: ${toldOf(summary.release)}`
        : `${where}: ${meanOf(summary.metrics)} over ${plural(summary.metrics.numSamples, "sample")}, ` +
          plural(summary.metrics.numErrors, "error")
    )
    yield* Console.log(`  run ${summary.runId}`)
    if (reply.experiment._tag === "viewable") {
      // read page by page; the first ids are printed, the rest counted
      const wrong = yield* Stream.runFold(
        remoteSamples(api, summary.runId),
        { ids: [] as Array<number>, count: 0 },
        (wrong, sample) => {
          if (sample.score === 1) return wrong
          if (wrong.ids.length < printedWrong) wrong.ids.push(sample.sampleId)
          return { ids: wrong.ids, count: wrong.count + 1 }
        }
      )
      const more = wrong.count > wrong.ids.length ? ` … and ${wrong.count - wrong.ids.length} more` : ""
      yield* Console.log(`  samples not fully right: ${wrong.count === 0 ? "none" : wrong.ids.join(", ") + more}`)
      yield* Console.log(`  per-sample results: holdout samples ${summary.runId}`)
    }
    if (reply.remaining !== null) {
      yield* Console.log(
        `  budget left: ${reply.remaining.runs === null ? "unlimited runs" : plural(reply.remaining.runs, "run")}, ${
          reply.remaining.samples === null ? "unlimited samples" : plural(reply.remaining.samples, "sample")
        }`
      )
    }
    if (reply.resultPath !== null) yield* Console.log(`  results: ${reply.resultPath}`)
  })

export const command = Command.make(
  "eval",
  {
    url: Shared.url,
    dataset: Shared.dataset,
    split: Shared.split,
    sampleIds: Shared.sampleIds,
    numSamples: Shared.numSamples,
    key: Options.text("key").pipe(
      Options.optional,
      Options.withDescription("An idempotency key: the same key returns the same run, charged once.")
    ),
    async: Options.boolean("async").pipe(
      Options.withDescription(
        "Return at once with a job id once the evaluation is charged; `holdout job <id> --wait` gets its result."
      )
    ),
    ...Shared.candidateOptions
  },
  (options) =>
    handled(
      Effect.gen(function*() {
        const selection = yield* Shared.sampleSelection(options.sampleIds, options.numSamples)
        const candidate = yield* Shared.candidateOf(options.candidate, options.commit)
        const api = yield* Shared.client(options.url)
        const key = Option.getOrElse(options.key, () => `cli-${crypto.randomUUID()}`)
        const waiting = yield* Effect.fork(options.async ? Effect.void : showWaiting)
        const reply = yield* api.agent.eval({
          payload: {
            datasetId: options.dataset,
            split: options.split,
            candidate,
            idempotencyKey: key,
            ...selection,
            ...(options.async ? { async: true } : {})
          }
        }).pipe(
          Effect.ensuring(Fiber.interrupt(waiting)),
          // a split the optimizer may not evaluate: a name close to one it may is most likely a typo
          Effect.catchTag("AccessDenied", (error) =>
            Effect.flatMap(
              Effect.orElseSucceed(api.agent.status(), () => ({ submitEnabled: false, splits: [] })),
              (status) => {
                const hint = didYouMean(options.split, status.splits.map((entry) => entry.split))
                return Effect.fail(
                  hint === "" ? error : new Hinted({ tag: error._tag, message: `${firstLine(error.message)}${hint}` })
                )
              }
            )),
          Shared.sayOnInterrupt(() => [
            `\ninterrupted: run ${Engine.runIdForKey(key)} may still be under way on the sidecar.`,
            `get its result without a new charge: holdout eval --dataset ${options.dataset} --split ${options.split} ` +
            `--candidate ${candidate.id} --key ${key}`
          ])
        )
        if (process.stderr.isTTY === true && !options.async) process.stderr.write("\n")
        if ("jobId" in reply) {
          yield* Console.log(`job ${reply.jobId} ${reply.status}`)
          yield* Console.log(`  its result: holdout job ${reply.jobId} --wait`)
          return
        }
        yield* printReply(api, reply)
      }).pipe(Effect.provide(Shared.clientLayer))
    )
).pipe(
  Command.withDescription(Shared.describedWith(
    "Evaluate a candidate through the sidecar, charging the split's budget. --candidate or --commit is required.",
    [
      "eval --dataset sums --split validation --candidate careful",
      "eval --dataset sums --split train --commit HEAD --sample-ids 0,1,2",
      "eval --url http://127.0.0.1:8000 --dataset sums --split train --candidate careful --num-samples 5",
      "eval --dataset sums --split validation --candidate careful --async"
    ]
  ))
)
