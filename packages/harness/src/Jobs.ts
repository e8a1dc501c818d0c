/**
 * Asynchronous evaluations ("jobs"): `POST /eval` with `async: true` is answered (202) as soon as the
 * evaluation is charged, with a job id; `GET /eval/{jobId}` tells where the job is and, once it is
 * over, its result (exactly what the synchronous call answers: the same `Agent.evaluate`) or its error
 * (the same error body).
 *
 * - A job is an evaluation under an idempotency key: the caller's, or one the sidecar draws
 *   (`job-<uuid>`). Its id is that key's run id (`Engine.runIdForKey`): the job is the optimizer's
 *   run, and a repeat of the key, while the job lives, is the same job.
 * - What the engine refuses before charging (an invalid request, `AccessDenied`, an exhausted budget,
 *   an idempotency conflict…) is answered at once with its usual status, as without `async`.
 * - The job runs in the sidecar's scope: a client that disconnects does not stop it; closing the
 *   sidecar interrupts it, which leaves its run resumable.
 * - The request of every job that started is kept in the store (`putMetaIfAbsent`). After a restart,
 *   polling the job replays its key: a finished run answers as before (nothing is charged again), an
 *   unfinished one is resumed (nothing is charged again) and is `running` until it ends.
 * - A job is known only to the optimizer, as its run is: an unknown id, a run that is no job, the
 *   verifier's runs and runs on `no_access` splits are all the same `JobNotFound`.
 * - Without the stack's `RunEvents` the start of a run cannot be seen: the 202 then waits for the
 *   end of the evaluation.
 *
 * @since 0.1.0
 */
import { Engine, HoldoutError, Model, RunEvents, SplitAccess, TaskStore } from "@holdout/core"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Agent from "./Agent.js"
import type { EvalResponse, JobAccepted, JobState, JobStatus } from "./SidecarApi.js"
import { InternalError, JobNotFound } from "./SidecarApi.js"

/**
 * The job operations. `E` is how a frontend can fail besides the operations' own errors (a client of a
 * sidecar: `SidecarUnavailable`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Jobs<E = never> {
  /** Starts an evaluation and answers once it is charged (or over); refusals fail as `evaluate` does. */
  readonly start: (request: Model.EvalRequest) => Effect.Effect<typeof JobAccepted.Type, Engine.EvaluateError | E>
  /** Where a job is, with its result or error once it is over. */
  readonly get: (jobId: string) => Effect.Effect<typeof JobState.Type, JobNotFound | HoldoutError.StoreError | E>
}

/**
 * The store key a job's request is kept under, written once when the job starts.
 *
 * @since 0.1.0
 * @category constants
 */
export const requestKey = (jobId: string): string => `holdout:job:${jobId}`

const requestJson = Schema.parseJson(Model.EvalRequest)
const encodeRequest = Schema.encodeSync(requestJson)
const decodeRequest = Schema.decodeUnknownOption(requestJson)

type Outcome = Exit.Exit<typeof EvalResponse.Type, Engine.EvaluateError>

/** A job of this process: its request, and its outcome once it is over. */
interface Entry {
  readonly request: Model.EvalRequest
  readonly fingerprint: string
  outcome: Outcome | undefined
  readonly over: Deferred.Deferred<Outcome>
}

/** An evaluation that was charged and ran, then failed (its end may come before its start is seen). */
const ranAndFailed = (outcome: Outcome): boolean =>
  Option.exists(
    Cause.failureOption(Exit.isFailure(outcome) ? outcome.cause : Cause.empty),
    (error) => error._tag === "StrategyError" || error._tag === "RunFailed"
  )

/** What identifies a request apart from its key: the same fingerprint under one key is the same job. */
const fingerprintOf = (request: Model.EvalRequest): string =>
  JSON.stringify([request.datasetId, request.split, request.candidate, request.sampleIds, request.numSamples])

/**
 * The jobs of one sidecar, over the optimizer's operations (`Agent.make`). Jobs are forked into the
 * scope this is built in (the sidecar's).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  agent: Agent.Agent
): Effect.Effect<Jobs, never, TaskStore.TaskStore | SplitAccess.SplitAccess | Scope.Scope> =>
  Effect.gen(function*() {
    const store = yield* TaskStore.TaskStore
    const access = yield* SplitAccess.SplitAccess
    const events = yield* Effect.serviceOption(RunEvents.RunEvents)
    const scope = yield* Effect.scope
    const live = new Map<string, Entry>()

    /**
     * Claims a run id for a request, in one step (no other fiber runs in between): the job that holds
     * it, a conflict (another request under the key), or a new entry.
     */
    const claim = (runId: string, request: Model.EvalRequest) =>
      Effect.sync(() => {
        const fingerprint = fingerprintOf(request)
        const existing = live.get(runId)
        // a job that failed is started again: its run is resumed, as a repeat of its key resumes it
        if (existing !== undefined && !(existing.outcome !== undefined && Exit.isFailure(existing.outcome))) {
          return existing.fingerprint === fingerprint
            ? { _tag: "Existing" as const, entry: existing }
            : { _tag: "Conflict" as const }
        }
        const entry: Entry = { request, fingerprint, outcome: undefined, over: Deferred.unsafeMake(FiberId.none) }
        live.set(runId, entry)
        return { _tag: "New" as const, entry }
      })

    /** Waits for the `RunStarted` of a run on a subscription made now (never, without an event hub). */
    const startOf = (runId: string) =>
      Option.match(events, {
        onNone: () => Effect.succeed(Effect.never),
        onSome: (hub) =>
          Effect.map(hub.subscribe, (queue) =>
            Stream.fromQueue(queue).pipe(
              Stream.filter((event) => event._tag === "RunStarted" && event.runId === runId),
              Stream.runHead,
              Effect.asVoid
            ))
      })

    const statusOf = (entry: Entry): typeof JobStatus.Type =>
      entry.outcome === undefined ? "running" as const : Exit.isSuccess(entry.outcome) ? "completed" as const : "failed"

    /** Runs a claimed job in the sidecar's scope; answers once its run started, or once it is over. */
    const launch = (runId: string, entry: Entry) =>
      Effect.scoped(Effect.gen(function*() {
        const started = yield* startOf(runId)
        yield* agent.evaluate(entry.request).pipe(
          Effect.exit,
          Effect.tap((exit) => Effect.sync(() => entry.outcome = exit)),
          Effect.tap((exit) =>
            Exit.isSuccess(exit)
              ? Effect.logDebug(`Job ${runId} completed`)
              : Effect.logInfo(`Job ${runId} failed`, exit.cause)
          ),
          Effect.flatMap((exit) => Deferred.succeed(entry.over, exit)),
          Effect.forkIn(scope)
        )
        const first = yield* Effect.raceFirst(Effect.as(started, undefined), Deferred.await(entry.over))
        if (first !== undefined && Exit.isFailure(first) && !ranAndFailed(first)) {
          // refused before anything ran: answered as the synchronous call answers, and no job is left
          yield* Effect.sync(() => live.delete(runId))
          return yield* Effect.failCause(first.cause)
        }
        yield* store.putMetaIfAbsent(requestKey(runId), encodeRequest(entry.request))
        return { jobId: runId, status: statusOf(entry) }
      }))

    const start = (input: Model.EvalRequest) =>
      Effect.gen(function*() {
        const request = input.idempotencyKey === undefined
          ? { ...input, idempotencyKey: `job-${globalThis.crypto.randomUUID()}` }
          : input
        const runId = Engine.runIdForKey(request.idempotencyKey!)
        const claimed = yield* claim(runId, request)
        if (claimed._tag === "Conflict") return yield* new HoldoutError.IdempotencyConflict()
        if (claimed._tag === "Existing") return { jobId: runId, status: statusOf(claimed.entry) }
        return yield* launch(runId, claimed.entry)
      })

    /** A job's state from its outcome; a defect is told as `InternalError`, its cause logged. */
    const stateOf = (jobId: string, outcome: Outcome | undefined): Effect.Effect<typeof JobState.Type> => {
      if (outcome === undefined) return Effect.succeed({ jobId, status: "running" })
      if (Exit.isSuccess(outcome)) return Effect.succeed({ jobId, status: "completed", result: outcome.value })
      const failure = Cause.failureOption(outcome.cause)
      if (Option.isSome(failure)) return Effect.succeed({ jobId, status: "failed", error: failure.value })
      return Effect.as(Effect.logError(`Job ${jobId} failed unexpectedly`, outcome.cause), {
        jobId,
        status: "failed",
        error: new InternalError({
          message: "The evaluation failed unexpectedly; the cause is in the sidecar's log. Retry, or tell the operator."
        })
      })
    }

    /** A job of an earlier sidecar on this store: its kept request, if its run is one the optimizer may know. */
    const kept = (jobId: string) =>
      Effect.gen(function*() {
        const text = yield* store.getMeta(requestKey(jobId))
        const request = Option.flatMap(text, decodeRequest)
        if (Option.isNone(request)) return Option.none()
        const run = yield* store.getRun(jobId)
        if (Option.isNone(run) || run.value.admin) return Option.none()
        if ((yield* access.tier(run.value.split)) === "no_access") return Option.none()
        return Option.some({ request: request.value, run: run.value })
      })

    const get = (jobId: string) =>
      Effect.gen(function*() {
        const entry = live.get(jobId)
        if (entry !== undefined) return yield* stateOf(jobId, entry.outcome)
        const found = yield* kept(jobId)
        if (Option.isNone(found)) return yield* new JobNotFound({ jobId })
        const { request, run } = found.value
        if (run.status === "completed" || run.status === "failed") {
          // a replay of the key: the run's answer, charged nothing again
          return yield* stateOf(jobId, yield* Effect.exit(agent.evaluate(request)))
        }
        // cut short by the restart: resumed under its key, charged nothing again
        const resumed = yield* Effect.either(start(request))
        return resumed._tag === "Right"
          ? yield* stateOf(jobId, live.get(jobId)?.outcome)
          : yield* stateOf(jobId, Exit.fail(resumed.left))
      })

    return { start, get } satisfies Jobs
  })
