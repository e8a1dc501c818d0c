/**
 * The evaluation engine: decodes a request, applies the tier gate, resolves the samples, charges
 * the ledger, runs the strategy and assembles the experiment — in the order of DESIGN §5.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Equal from "effect/Equal"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import { DatasetSource } from "./DatasetSource.js"
import { EvalStrategy, type RunPlan } from "./EvalStrategy.js"
import type { SubsetTooSmall } from "./HoldoutError.js"
import {
  AccessDenied,
  type BudgetExhausted,
  ConfigError,
  IdempotencyConflict,
  InvalidRequest,
  RunFailed,
  type SplitNotBudgeted,
  type StoreError,
  type StrategyError,
  UnknownSplit
} from "./HoldoutError.js"
import * as Blocks from "./internal/blocks.js"
import * as Charge from "./internal/charge.js"
import * as Missing from "./internal/missing.js"
import * as Releases from "./internal/release.js"
import * as requests from "./internal/requests.js"
import * as Signals from "./internal/signals.js"
import * as Status from "./internal/status.js"
import * as KeyedLock from "./KeyedLock.js"
import { Ledger } from "./Ledger.js"
import * as Metrics from "./Metrics.js"
import type { AccessTier, BudgetSnapshot, EvalRequest, Experiment, RunRecord, SampleRecord } from "./Model.js"
import * as Release from "./Release.js"
import * as RunEvents from "./RunEvents.js"
import * as SampleIds from "./SampleIds.js"
import { SplitAccess } from "./SplitAccess.js"
import * as TaskStore from "./TaskStore.js"
import { Workspace } from "./Workspace.js"

/**
 * Everything `evaluate` can fail with.
 *
 * @since 0.1.0
 * @category errors
 */
export type EvaluateError =
  | InvalidRequest
  | AccessDenied
  | UnknownSplit
  | SubsetTooSmall
  | SplitNotBudgeted
  | BudgetExhausted
  | IdempotencyConflict
  | StoreError
  | StrategyError
  | RunFailed

/**
 * Everything `resume` and `experiment` can fail with.
 *
 * @since 0.1.0
 * @category errors
 */
export type ResumeError = InvalidRequest | StoreError | StrategyError | RunFailed

/**
 * The budget and tier of one budgeted split.
 *
 * @since 0.1.0
 * @category models
 */
export interface SplitStatus extends BudgetSnapshot {
  readonly tier: AccessTier
  /** Whether an optimizer may evaluate it: its tier is not `no_access`. */
  readonly evaluable: boolean
  /** A thresholdout split's overfitting budget: over-threshold answers allowed, given, left. */
  readonly overfit?: { readonly limit: number | null; readonly spent: number; readonly remaining: number | null }
  /** The release mechanism that tells its runs' means, when not `exact`: a stored run's figures are not shown. */
  readonly release?: "thresholdout" | "ladder"
}

/**
 * Options of a call to `evaluate`. `admin` is the verifier's path: no tier gate, no subset floor,
 * no charge (except on a split with `reservedForFinalize`, whose reserve it spends); the run is
 * recorded with `admin: true`. `free` is an optimizer's evaluation charged nothing (a free baseline):
 * every other rule of the optimizer's path holds, and the split must be budgeted.
 *
 * @since 0.1.0
 * @category models
 */
export interface EvaluateOptions {
  readonly admin?: boolean
  readonly free?: boolean
}

/**
 * The engine service.
 *
 * @since 0.1.0
 * @category tags
 */
export class Engine extends Context.Tag("@holdout/core/Engine")<Engine, {
  readonly evaluate: (request: EvalRequest, options?: EvaluateOptions) => Effect.Effect<Experiment, EvaluateError>
  /** Finishes an interrupted run without a new charge; a finished run is returned as it is. */
  readonly resume: (runId: string) => Effect.Effect<Experiment, ResumeError>
  /** The stored experiment of a run, full and unredacted, without running anything. */
  readonly experiment: (runId: string) => Effect.Effect<Experiment, InvalidRequest | StoreError | RunFailed>
  /**
   * One page of a run's samples, unredacted, by ascending sample id (an unknown run is an
   * `InvalidRequest`); `streamSamples` reads them all.
   */
  readonly samples: (
    runId: string,
    page: TaskStore.SamplePage
  ) => Effect.Effect<ReadonlyArray<SampleRecord>, InvalidRequest | StoreError>
  /**
   * Every budgeted split with its budget and tier, in configured order; see `EngineOptions.statusMaxAge`.
   * The same array is answered until the budgets are read again.
   */
  readonly status: () => Effect.Effect<ReadonlyArray<SplitStatus>, StoreError>
}>() {}

/**
 * Engine options: the smallest subset of a `non_viewable` split a caller may ask for (default 5),
 * and the error rate at which a run is `failed` (default 0.1).
 *
 * @since 0.1.0
 * @category models
 */
export interface EngineOptions {
  readonly subsetFloor?: number
  readonly errorRateThreshold?: number
  /** Release mechanisms of `non_viewable` splits, by split name (DESIGN §12); unlisted splits are `exact`. */
  readonly releases?: Release.Releases
  /** How old the budgets `status` shows may be (default 100 ms); the engine's own charges show at once. */
  readonly statusMaxAge?: Duration.DurationInput
}

/**
 * The run id of a request that carries an idempotency key: the same key always names the same run.
 * Keys live in their caller's namespace (DESIGN §10): an optimizer's key can never name a verifier's
 * run, so the verifier's evaluations cannot be pre-empted, read or probed through optimizer keys.
 *
 * @since 0.1.0
 * @category constructors
 */
export const runIdForKey = (idempotencyKey: string, options: EvaluateOptions = {}): string =>
  options.admin === true ? `admin:${idempotencyKey}` : `key:${idempotencyKey}`

/**
 * The store key of the secret that draws the blocks of `non_viewable` splits.
 *
 * @since 0.1.0
 * @category constants
 */
export const blockSecretKey = "holdout:block-secret"

const newRunId = (): string => globalThis.crypto.randomUUID()

/**
 * Builds the engine from its services.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: EngineOptions = {}
): Effect.Effect<
  Engine["Type"],
  ConfigError,
  SplitAccess | Ledger | TaskStore.TaskStore | EvalStrategy | DatasetSource
> =>
  Effect.gen(function*() {
    const subsetFloor = options.subsetFloor ?? 5
    const errorRateThreshold = options.errorRateThreshold ?? Metrics.defaultErrorRateThreshold
    if (!Number.isInteger(subsetFloor) || subsetFloor < 1) {
      return yield* new ConfigError({ message: `subsetFloor must be an integer of at least 1, got ${subsetFloor}.` })
    }
    if (!(errorRateThreshold > 0 && errorRateThreshold <= 1)) {
      return yield* new ConfigError({ message: `errorRateThreshold must be in (0, 1], got ${errorRateThreshold}.` })
    }
    const access = yield* SplitAccess
    const budgets = yield* Status.budgets(yield* Ledger, options.statusMaxAge)
    const ledger = budgets.ledger
    const store = yield* TaskStore.TaskStore
    const strategy = yield* EvalStrategy
    const datasets = yield* DatasetSource
    // optional: with a workspace, a candidate id is made exact (a git name becomes its full hash)
    const workspace = yield* Effect.serviceOption(Workspace)

    const withRunLock = KeyedLock.make()
    const releaseConfig = yield* Release.validate(options.releases ?? {}, access)
    const releases = Releases.make(releaseConfig, ledger, store)
    yield* releases.check
    const blocks = Blocks.make((secret) => store.putMetaIfAbsent(blockSecretKey, secret), subsetFloor)

    const tagged = Signals.taggedBy(Metrics.requestsRejected, "error")
    const finishedAs = Signals.taggedBy(Metrics.runsFinished, "status")
    const countRejection = <A, E extends { readonly _tag: string }, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.tapError(effect, (error) => Metric.increment(tagged(error._tag)))

    const publish = Signals.publisher(yield* Effect.serviceOption(RunEvents.RunEvents))

    const noSamples = (run: RunRecord) =>
      new RunFailed({
        runId: run.runId,
        message: `The "${strategy.name}" strategy produced no sample for run ${run.runId}; its charge stands. ` +
          `Check the strategy's logs, then resume the run or start a new one.`
      })

    const sizeOf = (run: RunRecord) =>
      Effect.map(datasets.info(run.datasetId), (info) => info.splits[run.split] ?? SampleIds.upperBound(run.sampleIds))
    const progressOf = (run: RunRecord) => run.progress ?? Metrics.emptyProgress
    const reread = (run: RunRecord) => Effect.map(store.getRun(run.runId), Option.getOrElse(() => run))

    // Produces the samples of an unfinished run and records the outcome. Its metrics come from the
    // progress the store keeps: no sample is read back unless the strategy left some out.
    const finish = (run: RunRecord) =>
      Effect.gen(function*() {
        const plan: RunPlan = {
          runId: run.runId,
          candidate: run.candidate,
          datasetId: run.datasetId,
          split: run.split,
          sampleIds: run.sampleIds
        }
        yield* publish(() => RunEvents.startedOf(run, progressOf(run).samples))
        yield* strategy.produce(plan)
        let produced = progressOf(yield* reread(run))
        const now = yield* Clock.currentTimeMillis
        if (produced.samples === 0) {
          const metrics = Metrics.fromProgress(produced)
          yield* store.updateRun(run.runId, { status: "failed", finishedAt: now, metrics })
          yield* Metric.increment(finishedAs("failed"))
          yield* publish(() => new RunEvents.RunFinished({ runId: run.runId, status: "failed", metrics }))
          return yield* noSamples(run)
        }
        if (produced.samples < run.sampleIds.length) {
          yield* Missing.fill(store, strategy.name, run)
          produced = progressOf(yield* reread(run))
        }
        // an optimizer's run of a non_viewable split is whole blocks: its spread is told at block level
        const blockLevel = !run.admin && (yield* access.tier(run.split)) === "non_viewable"
        const exact = Metrics.fromProgress(produced)
        const metrics = blockLevel
          ? {
            ...exact,
            blocks: yield* blocks.spread(TaskStore.streamSamples(store, run.runId), run, yield* sizeOf(run))
          }
          : exact
        const status = Metrics.status(metrics, errorRateThreshold)
        const updated = yield* store.updateRun(run.runId, { status, finishedAt: now, metrics })
        yield* Metric.incrementBy(Metrics.samplesEvaluated, metrics.numSamples)
        yield* Metric.increment(finishedAs(status))
        yield* publish(() => new RunEvents.RunFinished({ runId: run.runId, status, metrics }))
        yield* Effect.logInfo(
          `Run ${run.runId} ${status}: ${metrics.numSamples} samples, ${metrics.numErrors} errors, ` +
            `avgFilledScore ${metrics.avgFilledScore.toFixed(4)}`
        )
        return { run: updated, metrics } satisfies Experiment
      }).pipe(Effect.annotateLogs({ runId: run.runId, split: run.split, datasetId: run.datasetId }))

    // The experiment of a finished run, from its record alone.
    const assemble = (run: RunRecord) =>
      Effect.suspend(() => {
        // the progress the store keeps is final once the run is; metrics stored before it had every
        // field (numScored, standardError, interval) are recomputed from it, keeping the block-level
        // spread of a non_viewable run, which the progress cannot give
        const blocks = run.metrics?.blocks
        const metrics = run.progress === undefined && run.metrics !== undefined
          ? run.metrics
          : { ...Metrics.fromProgress(progressOf(run)), ...(blocks === undefined ? {} : { blocks }) }
        return metrics.numSamples === 0
          ? Effect.fail(noSamples(run))
          : Effect.succeed({ run, metrics } satisfies Experiment)
      })

    const complete = (run: RunRecord) =>
      run.status === "completed" || run.status === "failed" ? assemble(run) : finish(run)

    const noRun = (runId: string) =>
      new InvalidRequest({ message: `No run with id "${runId}" is stored. List the runs to find its id.` })
    const getRun = (runId: string) =>
      Effect.flatMap(store.getRun(runId), (run) => Option.isSome(run) ? Effect.succeed(run.value) : noRun(runId))

    const evaluate = (input: EvalRequest, evaluateOptions: EvaluateOptions = {}) =>
      Effect.gen(function*() {
        const admin = evaluateOptions.admin === true
        // 1. decode
        const request = yield* requests.decode(input)
        const { datasetId, split } = request
        // 2. tier gate, before anything is looked up
        const tier = yield* access.tier(split)
        if (!admin && tier === "no_access") return yield* new AccessDenied({ datasetId, split })
        // 3. the split exists
        const info = yield* datasets.info(datasetId)
        const size = info.splits[split]
        if (size === undefined) {
          const known = Object.keys(info.splits)
          const shown = admin ?
            known :
            yield* Effect.filter(known, (name) => Effect.map(access.tier(name), (t) => t !== "no_access"))
          return yield* new UnknownSplit({ datasetId, split, known: shown })
        }
        // 4. samples; 5. on a non_viewable split, whole secret blocks of at least the floor
        const sampleIds = !admin && tier === "non_viewable"
          ? yield* blocks.sampleIds(request, size)
          : yield* requests.resolveSampleIds(request, size)
        // 5b. the candidate resolves to what the run is recorded under, before any lookup or charge
        const candidate = Option.isSome(workspace)
          ? yield* workspace.value.resolve(request.candidate)
          : request.candidate
        // 5c. a release mechanism that could not answer refuses before anything is charged
        const prepared = !admin && tier === "non_viewable"
          ? yield* releases.before(candidate, datasetId, split)
          : undefined
        const told = (experiment: Experiment) => releases.tell(prepared, experiment)
        const keyed = request.idempotencyKey
        const runId = keyed === undefined ? newRunId() : runIdForKey(keyed, { admin })
        // the same request: a replay of its key, never a different request under an old key
        const sameRequest = (run: RunRecord) =>
          run.candidate.id === candidate.id && run.datasetId === datasetId && run.split === split &&
          run.admin === admin && Equal.equals(run.sampleIds, sampleIds)
        const start = Effect.gen(function*() {
          if (keyed !== undefined) {
            const existing = yield* store.getRun(runId)
            if (Option.isSome(existing)) {
              if (!sameRequest(existing.value)) return yield* new IdempotencyConflict()
              yield* Effect.logDebug(`idempotencyKey "${keyed}" repeats run ${runId}: nothing charged`)
              return yield* told(yield* complete(existing.value))
            }
          }
          // 6. charge (the optimizer's; a free one's nothing; the verifier's only against a reserve)
          const reservationId = yield* Charge.charge(
            ledger,
            { datasetId, split, samples: sampleIds.length, runId, reservationId: runId },
            { admin, free: evaluateOptions.free === true }
          )
          if (reservationId !== undefined) yield* Metric.increment(Metrics.reservationsAccepted)
          // 7. run
          const run: RunRecord = {
            runId,
            candidate,
            datasetId,
            split,
            sampleIds,
            status: "running",
            admin,
            createdAt: yield* Clock.currentTimeMillis,
            ...(reservationId === undefined ? {} : { reservationId }),
            ...(keyed === undefined ? {} : { idempotencyKey: keyed })
          }
          const created = yield* Effect.either(store.createRun(run))
          if (created._tag === "Left") {
            // another process sharing the store created this keyed run first: join it
            const raced = keyed === undefined ? Option.none<RunRecord>() : yield* store.getRun(runId)
            if (Option.isNone(raced)) return yield* created.left
            if (!sameRequest(raced.value)) return yield* new IdempotencyConflict()
            return yield* told(yield* complete(raced.value))
          }
          yield* Effect.logInfo(
            `Run ${runId} started: candidate "${candidate.id}", ${sampleIds.length} samples` +
              (admin ? " (verifier)" : "")
          )
          return yield* told(yield* finish(run))
        })
        return yield* keyed === undefined ? start : withRunLock(runId, start)
      }).pipe(countRejection, Effect.withSpan("Engine.evaluate"))

    const resume = (runId: string) =>
      withRunLock(runId, Effect.flatMap(getRun(runId), complete)).pipe(Effect.withSpan("Engine.resume"))

    const experiment = (runId: string) => Effect.flatMap(getRun(runId), assemble)

    const samples = (runId: string, page: TaskStore.SamplePage) =>
      Effect.zipRight(getRun(runId), store.listSamples(runId, page))

    const status = Status.of(budgets, access, releaseConfig)
    return { evaluate, resume, experiment, samples, status: () => status }
  })

/**
 * The engine over the services of a stack.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: EngineOptions = {}
): Layer.Layer<Engine, ConfigError, SplitAccess | Ledger | TaskStore.TaskStore | EvalStrategy | DatasetSource> =>
  Layer.effect(Engine, make(options))
