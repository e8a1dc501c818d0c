/**
 * The verifier: picks the candidate an optimization ends with and scores it on the target splits
 * (usually hidden ones), as admin: no tier gate, no charge (except on a split whose budget has a
 * `reservedForFinalize`: there its evaluations spend the reserve, and one the reserve cannot pay for
 * is a failed re-score).
 *
 * - `submit`: the candidate the optimizer submitted. A submission is final (a second one is
 *   refused) and must name a candidate that was evaluated. With a `Workspace`, the candidate is
 *   resolved first (a git name becomes its full hash), as the engine resolves what it evaluates.
 * - `auto_best`: the optimizer's evaluations on the selection split are pooled per candidate (the
 *   mean of its runs; when any run covers the whole split, only whole-split runs count), the top
 *   `topK` are re-scored as admin on the whole selection split, and the best re-score wins (ties go
 *   to the earlier place in the shortlist). The scores an optimizer got only shortlist; they never
 *   decide. With a baseline, the winner must beat the baseline's re-score strictly, else the
 *   baseline is chosen (also when the baseline cannot be scored). With `significance: α` it must
 *   also beat it with a one-sided paired test (`Compare.runs` on the two re-score runs, permutation
 *   p-value of "no better than the baseline") at level α, Bonferroni-corrected by default for the
 *   number of candidates the winner was chosen among (see `Options.correction`). With `poolTrees`,
 *   candidates are pooled by their git tree (`Workspace.contentOf`): re-commits of one tree are one
 *   candidate, re-scored as its earliest evaluated commit, and re-commits of the baseline's tree are
 *   the baseline.
 *
 * With `freeBaseline`, the optimizer's first evaluation of the baseline on each split is free (see
 * `FreeBaseline`); the verifier only carries the setting (`freeBaseline` of the service).
 *
 * Without a candidate (nothing evaluated, nothing submitted) every reward is 0. A target that cannot
 * be scored after two attempts is floored to 0 and its error is reported in `targetErrors`. A target
 * with a `model` (a transfer target) is scored with that model instead of the strategy's.
 *
 * Everything lives in the `TaskStore`: every admin evaluation is a run of its own (each under an
 * idempotency key, so a finalize cut short resumes without scoring twice), and the submission and the
 * answer are the store's own state (`putMetaIfAbsent`, first writer wins), which every later call
 * returns unchanged — also after a restart, and also when two processes race.
 *
 * @since 0.1.0
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import {
  Compare,
  DatasetSource,
  Engine,
  EvalStrategy,
  HoldoutError,
  Model,
  SplitAccess,
  TaskStore,
  Workspace
} from "@holdout/core"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Pooling from "./internal/pooling.js"

/**
 * A split to score the chosen candidate on, and the reward key its mean score is reported under.
 *
 * @since 0.1.0
 * @category models
 */
export interface Target {
  readonly datasetId: string
  readonly split: string
  readonly rewardKey: string
  readonly sampleIds?: ReadonlyArray<number>
  /**
   * A transfer target: the model this target's evaluation uses instead of the strategy's, given to the
   * strategy as candidate metadata `EvalStrategy.modelOverrideKey` (Harbor: `-m <model>`; a local task
   * reads it from `run.candidate.metadata`).
   */
  readonly model?: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly mode: "submit" | "auto_best"
  /** The split `auto_best` ranks candidates on (required for `auto_best`). */
  readonly selection?: { readonly datasetId: string; readonly split: string }
  readonly targets: ReadonlyArray<Target>
  /** The starting point: never shortlisted, and it wins unless a candidate beats it. */
  readonly baseline?: Model.Candidate
  /** How many shortlisted candidates are re-scored (default 3). */
  readonly topK?: number
  /**
   * `auto_best` with a baseline: the level α (0 < α < 1) of the one-sided paired test the winner's
   * re-score must pass against the baseline's; without it, any strict margin ships.
   */
  readonly significance?: number
  /**
   * How α is shared out (default `"bonferroni"`): the winner is the best of the `m` candidates
   * evaluated on the selection split, and the re-score is on that same split, so its p-value is
   * compared with α / m, which keeps the chance of shipping a candidate no better than the
   * baseline at most α whichever of them wins. `"none"` compares it with α itself (valid for one
   * candidate).
   */
  readonly correction?: "bonferroni" | "none"
  /**
   * `auto_best`: pool candidates by content (`Workspace.contentOf`, a git tree) instead of by id, so
   * that re-commits of one tree are one candidate (default false). Needs a workspace that has
   * `contentOf` (`GitWorkspace`).
   */
  readonly poolTrees?: boolean
  /**
   * The optimizer's first evaluation of the baseline on each budgeted split costs nothing (default
   * false); needs a `baseline`. Served by the sidecar and the MCP tools (`FreeBaseline`).
   */
  readonly freeBaseline?: boolean
}

/**
 * The paired test of the winner's re-score against the baseline's (differences are winner −
 * baseline, over the samples both re-scores have).
 *
 * @since 0.1.0
 * @category models
 */
export const Significance = Schema.Struct({
  /** The level asked for. */
  alpha: Schema.Number,
  /** The candidates the winner was chosen among (the Bonferroni divisor; 1 without correction). */
  comparisons: Schema.Int,
  /** What the p-value had to be at most: alpha / comparisons. */
  threshold: Schema.Number,
  candidate: Schema.String,
  shared: Schema.Int,
  difference: Schema.Number,
  /** Paired bootstrap 95% interval of the difference. */
  interval: Schema.NullOr(Model.Interval),
  /** One-sided paired permutation p-value of "the winner is no better than the baseline". */
  pValue: Schema.NullOr(Schema.Number),
  significant: Schema.Boolean
})

/**
 * @since 0.1.0
 * @category models
 */
export type Significance = typeof Significance.Type

/**
 * The verifier's answer.
 *
 * @since 0.1.0
 * @category models
 */
export const Answer = Schema.Struct({
  mode: Schema.Literal("submit", "auto_best"),
  /** The chosen candidate's id, or null when there was none. */
  candidate: Schema.NullOr(Schema.String),
  /** Flat `{ rewardKey: score }`, as `reward.json` holds it. */
  rewards: Schema.Record({ key: Schema.String, value: Schema.Number }),
  /** Targets floored to 0 because they could not be scored, with the cause. */
  targetErrors: Schema.Record({ key: Schema.String, value: Schema.String }),
  /**
   * `auto_best`: the shortlist with pooled and re-scored means, in shortlist order, and the standard
   * error and 95% interval of each re-score (null when it could not be measured).
   */
  shortlist: Schema.Array(Schema.Struct({
    candidate: Schema.String,
    pooled: Schema.Number,
    rescored: Schema.Number,
    standardError: Schema.optionalWith(Schema.NullOr(Schema.Number), { default: () => null }),
    interval: Schema.optionalWith(Schema.NullOr(Model.Interval), { default: () => null })
  })),
  /** The baseline's re-score on the selection split, when one was measured. */
  baseline: Schema.NullOr(Schema.Number),
  /** The 95% interval of the baseline's re-score. */
  baselineInterval: Schema.optionalWith(Schema.NullOr(Model.Interval), { default: () => null }),
  /** The winner's paired test against the baseline, when `significance` is set and both were re-scored. */
  significance: Schema.optionalWith(Schema.NullOr(Significance), { default: () => null }),
  /** Why the answer is what it is, in words. */
  reason: Schema.String,
  finalizedAt: Schema.Number
})

/**
 * @since 0.1.0
 * @category models
 */
export type Answer = typeof Answer.Type

/**
 * The store keys the verifier keeps its state under (`TaskStore.putMetaIfAbsent`): the submission and
 * the answer, each written once, by the first writer, also across processes sharing the store.
 *
 * @since 0.1.0
 * @category constants
 */
export const stateKeys = { submission: "holdout:verifier:submission", answer: "holdout:verifier:answer" } as const

/**
 * A stored submission. `claim` is a random id drawn by the submitter: the store keeps the first value
 * written under the key, so a submitter learns that its own write won when the stored claim is its own.
 */
const Submission = Schema.Struct({ candidate: Model.Candidate, claim: Schema.String, at: Schema.Number })

const submissionJson = Schema.parseJson(Submission)
const answerJson = Schema.parseJson(Answer)

/** A stored value that cannot be decoded: the store was written by something else, or damaged. */
const corrupt = (key: string) => (error: ParseResult.ParseError) =>
  new HoldoutError.StoreError({
    op: "getMeta",
    message: `The verifier's state under "${key}" cannot be read; the store was changed by hand or damaged.`,
    cause: error
  })

const decodeStored = <A>(schema: Schema.Schema<A, string>, key: string) => {
  const decode = Schema.decode(schema)
  return (text: string): Effect.Effect<A, HoldoutError.StoreError> => Effect.mapError(decode(text), corrupt(key))
}

const decodeSubmission = decodeStored(submissionJson, stateKeys.submission)
const decodeAnswer = decodeStored(answerJson, stateKeys.answer)
const encodeSubmission = Schema.encodeSync(submissionJson)
const encodeAnswer = Schema.encodeSync(answerJson)

/** The candidate with `model` as its model metadata (`EvalStrategy.modelOverrideKey`), or with none. */
const withModel = (candidate: Model.Candidate, model: string | undefined): Model.Candidate => {
  const { [EvalStrategy.modelOverrideKey]: _, ...metadata } = candidate.metadata ?? {}
  const kept = model === undefined ? metadata : { ...metadata, [EvalStrategy.modelOverrideKey]: model }
  const { metadata: __, ...rest } = candidate
  return Object.keys(kept).length === 0 ? rest : { ...rest, metadata: kept }
}

/**
 * The verifier service.
 *
 * @since 0.1.0
 * @category tags
 */
export class Verifier extends Context.Tag("@holdout/harness/Verifier")<Verifier, {
  readonly mode: "submit" | "auto_best"
  /** The baseline whose first evaluation on each split is free, when `freeBaseline` is set. */
  readonly freeBaseline: Option.Option<Model.Candidate>
  /** Records the final submission: a candidate that was evaluated; a second submission is refused. */
  readonly submit: (
    candidate: Model.Candidate
  ) => Effect.Effect<
    Model.Candidate,
    HoldoutError.InvalidRequest | HoldoutError.StoreError | HoldoutError.StrategyError
  >
  /** The submission, if there is one. */
  readonly submission: () => Effect.Effect<Option.Option<Model.Candidate>, HoldoutError.StoreError>
  /** Chooses and scores the candidate once; every later call returns the same answer. */
  readonly finalize: () => Effect.Effect<Answer, HoldoutError.StoreError>
}>() {}

/**
 * Builds the verifier.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<
  Verifier["Type"],
  HoldoutError.ConfigError,
  Engine.Engine | TaskStore.TaskStore | DatasetSource.DatasetSource | SplitAccess.SplitAccess
> =>
  Effect.gen(function*() {
    if (options.mode === "auto_best" && options.selection === undefined) {
      return yield* Effect.fail(
        new HoldoutError.ConfigError({ message: "auto_best needs a selection split: set `selection`." })
      )
    }
    const rewardKeys = new Set(options.targets.map((target) => target.rewardKey))
    if (rewardKeys.size !== options.targets.length) {
      return yield* Effect.fail(
        new HoldoutError.ConfigError({ message: "Every target needs a reward key of its own." })
      )
    }
    const topK = options.topK ?? 3
    if (!Number.isInteger(topK) || topK < 1) {
      return yield* Effect.fail(
        new HoldoutError.ConfigError({ message: `topK must be a positive integer, got ${topK}.` })
      )
    }
    const significance = options.significance
    if (significance !== undefined) {
      if (!(significance > 0 && significance < 1)) {
        return yield* new HoldoutError.ConfigError({
          message: `significance is the test's level α, between 0 and 1 (0.05, say); got ${significance}.`
        })
      }
      if (options.mode !== "auto_best" || options.baseline === undefined) {
        return yield* new HoldoutError.ConfigError({
          message: "significance tests the winner against the baseline: it needs mode auto_best and a baseline. " +
            "Set `baseline`, or drop `significance`."
        })
      }
    }
    if (options.freeBaseline === true && options.baseline === undefined) {
      return yield* new HoldoutError.ConfigError({
        message: "freeBaseline makes the baseline's first evaluation on each split free: it needs a baseline. " +
          "Set `baseline`, or drop `freeBaseline`."
      })
    }
    const engine = yield* Engine.Engine
    const store = yield* TaskStore.TaskStore
    const access = yield* SplitAccess.SplitAccess
    const source = yield* DatasetSource.DatasetSource
    const workspace = yield* Effect.serviceOption(Workspace.Workspace)
    const contentOf = Option.isSome(workspace) ? workspace.value.contentOf : undefined
    if (options.poolTrees === true && contentOf === undefined) {
      return yield* new HoldoutError.ConfigError({
        message: "poolTrees pools candidates by their git tree: it needs a git workspace " +
          "(workspace: { kind: git, repo }). Add one, or drop `poolTrees`."
      })
    }
    // a candidate whose content cannot be read is a pool of its own (its id)
    const poolKey = options.poolTrees === true && contentOf !== undefined
      ? (candidate: Model.Candidate) =>
        contentOf(candidate).pipe(
          Effect.tapError((error) => Effect.logWarning(`Verifier: no tree for ${candidate.id}: ${error.message}`)),
          Effect.orElseSucceed(() => candidate.id)
        )
      : undefined
    const lock = yield* Effect.makeSemaphore(1)

    const evaluations = Effect.map(
      store.listRuns(),
      (runs) => runs.filter((run) => !run.admin && run.status === "completed")
    )

    const readMeta = <A>(key: string, decode: (text: string) => Effect.Effect<A, HoldoutError.StoreError>) =>
      Effect.flatMap(
        store.getMeta(key),
        Option.match({ onNone: () => Effect.succeedNone, onSome: (text) => Effect.asSome(decode(text)) })
      )

    const submission = () =>
      Effect.map(readMeta(stateKeys.submission, decodeSubmission), Option.map((stored) => stored.candidate))

    const alreadySubmitted = (candidate: Model.Candidate) =>
      new HoldoutError.InvalidRequest({
        message: `A candidate was already submitted (${candidate.id}); a submission is final.`
      })

    const recordSubmission = (candidate: Model.Candidate) =>
      lock.withPermits(1)(Effect.gen(function*() {
        const earlier = yield* submission()
        if (Option.isSome(earlier)) return yield* Effect.fail(alreadySubmitted(earlier.value))
        const evaluated = (yield* evaluations).some((run) => run.candidate.id === candidate.id)
        if (!evaluated) {
          return yield* Effect.fail(
            new HoldoutError.InvalidRequest({
              message: `Candidate ${candidate.id} was never evaluated: evaluate it before submitting it.`
            })
          )
        }
        if (Option.isSome(yield* store.getMeta(stateKeys.answer))) {
          return yield* Effect.fail(
            new HoldoutError.InvalidRequest({
              message: "The verifier has already given its answer: submissions are closed."
            })
          )
        }
        // first writer wins, also against another process: the submission is ours iff the claim is
        const claim = globalThis.crypto.randomUUID()
        const at = yield* Clock.currentTimeMillis
        const stored = yield* decodeSubmission(
          yield* store.putMetaIfAbsent(stateKeys.submission, encodeSubmission({ candidate, claim, at }))
        )
        if (stored.claim !== claim) return yield* Effect.fail(alreadySubmitted(stored.candidate))
        return candidate
      }))

    // resolved as the engine resolves what it evaluates, so the id matches the runs it recorded
    const submit = (candidate: Model.Candidate) =>
      Option.isSome(workspace)
        ? Effect.flatMap(workspace.value.resolve(candidate), recordSubmission)
        : recordSubmission(candidate)

    /**
     * An admin evaluation, idempotent under `key`: its experiment, or why it failed. The candidate's
     * model metadata is the target's `model` or none: never one an optimizer's candidate carried.
     */
    const adminEvaluate = (
      key: string,
      candidate: Model.Candidate,
      target: {
        readonly datasetId: string
        readonly split: string
        readonly sampleIds?: ReadonlyArray<number>
        readonly model?: string
      }
    ) =>
      engine.evaluate(
        {
          datasetId: target.datasetId,
          split: target.split,
          candidate: withModel(candidate, target.model),
          idempotencyKey: key,
          ...(target.sampleIds === undefined ? {} : { sampleIds: target.sampleIds })
        },
        { admin: true }
      ).pipe(Effect.either)

    /** An admin evaluation's mean score (errors count 0), or why it failed. */
    const adminScore = (...args: Parameters<typeof adminEvaluate>) =>
      Effect.map(adminEvaluate(...args), Either.map((experiment) => experiment.metrics.avgFilledScore))

    /** Scores a target, trying twice; a target that cannot be scored is floored to 0. */
    const scoreTarget = (candidate: Model.Candidate, target: Target) =>
      Effect.gen(function*() {
        let cause = ""
        for (let attempt = 1; attempt <= 2; attempt++) {
          const key = `holdout:finalize:target:${target.rewardKey}:${candidate.id}:${attempt}`
          const score = yield* adminScore(key, candidate, target)
          if (score._tag === "Right") return { score: score.right }
          cause = score.left.message
          yield* Effect.logWarning(
            `Verifier: scoring ${candidate.id} on ${target.split} failed (attempt ${attempt}): ${cause}`
          )
        }
        return { score: 0, error: `scoring failed after 2 attempts; reward floored, not measured; cause: ${cause}` }
      })

    /** The auto_best choice: the candidate (or null) and how it was reached. */
    const chooseBest = Effect.gen(function*() {
      const selection = options.selection!
      const size = (yield* source.info(selection.datasetId).pipe(
        Effect.orElseSucceed(() => ({ splits: {} as Record<string, number> }))
      ))
        .splits[selection.split]
      // the baseline's runs are recorded under its resolved id, as the engine records every run
      const baselineId = options.baseline === undefined
        ? undefined
        : Option.isSome(workspace)
        ? Either.match(yield* Effect.either(workspace.value.resolve(options.baseline)), {
          onLeft: () => options.baseline?.id,
          onRight: (resolved) => resolved.id
        })
        : options.baseline.id
      const runs = (yield* evaluations).filter((run) =>
        run.datasetId === selection.datasetId && run.split === selection.split && run.candidate.id !== baselineId
      )
      const whole = runs.filter((run) => run.sampleIds.length === size)
      const ranked = whole.length > 0 ? whole : runs
      // with poolTrees, re-commits of the baseline's tree are the baseline
      const excluded = poolKey === undefined || baselineId === undefined
        ? undefined
        : yield* poolKey({ id: baselineId })
      const pools = yield* Pooling.pools(ranked, { contentOf: poolKey, excluded })
      const pooled = pools.slice(0, topK)
      const shortlist: Array<Answer["shortlist"][number]> = []
      let best: { candidate: Model.Candidate; score: number; run: Model.RunRecord | undefined } | undefined
      for (const entry of pooled) {
        const scored = yield* adminEvaluate(
          `holdout:finalize:rescore:${entry.candidate.id}`,
          entry.candidate,
          selection
        )
        const metrics = scored._tag === "Right" ? scored.right.metrics : undefined
        const rescored = metrics?.avgFilledScore ?? 0
        shortlist.push({
          candidate: entry.candidate.id,
          pooled: entry.mean,
          rescored,
          standardError: metrics?.standardError ?? null,
          interval: metrics?.interval ?? null
        })
        if (best === undefined || rescored > best.score) {
          best = {
            candidate: entry.candidate,
            score: rescored,
            run: scored._tag === "Right" ? scored.right.run : undefined
          }
        }
      }
      const none = { baseline: null, baselineInterval: null, significance: null }
      if (options.baseline === undefined) {
        return best === undefined
          ? { candidate: null, shortlist, ...none, reason: "No candidate was evaluated on the selection split." }
          : {
            candidate: best.candidate,
            shortlist,
            ...none,
            reason: `Best admin re-score of the shortlist (${best.score}).`
          }
      }
      if (best === undefined) {
        return { candidate: null, shortlist, ...none, reason: "No candidate was evaluated on the selection split." }
      }
      const base = yield* adminEvaluate(`holdout:finalize:rescore:${options.baseline.id}`, options.baseline, selection)
      if (base._tag === "Left") {
        return {
          candidate: options.baseline,
          shortlist,
          ...none,
          reason: `The baseline could not be scored (${base.left.message}); the baseline is kept.`
        }
      }
      const baseScore = base.right.metrics.avgFilledScore
      const measured = { shortlist, baseline: baseScore, baselineInterval: base.right.metrics.interval }
      if (!(best.score > baseScore)) {
        return {
          candidate: options.baseline,
          ...measured,
          significance: null,
          reason: `No candidate beats the baseline (best ${best.score}, baseline ${baseScore}); the baseline wins ties.`
        }
      }
      if (significance === undefined) {
        return {
          candidate: best.candidate,
          ...measured,
          significance: null,
          reason: `${best.candidate.id} beats the baseline (${best.score} > ${baseScore}).`
        }
      }
      const test = yield* pairedTest(best.candidate, best.run, base.right.run, significance, pools.length)
      return test.significant
        ? {
          candidate: best.candidate,
          ...measured,
          significance: test,
          reason: `${best.candidate.id} beats the baseline (${best.score} > ${baseScore}) significantly: one-sided ` +
            `p = ${test.pValue} ≤ ${test.threshold} (α = ${significance}${
              test.comparisons > 1 ? ` over ${test.comparisons} candidates` : ""
            }).`
        }
        : {
          candidate: options.baseline,
          ...measured,
          significance: test,
          reason: `${best.candidate.id} scores above the baseline (${best.score} > ${baseScore}) but not ` +
            `significantly: one-sided p = ${test.pValue ?? "not measured"} > ${test.threshold} (α = ${significance}${
              test.comparisons > 1 ? ` over ${test.comparisons} candidates` : ""
            }); the baseline is kept.`
        }
    })

    /**
     * The winner's re-score against the baseline's, paired by sample: significant when the one-sided
     * p-value is at most α over the number of candidates the winner was chosen among.
     */
    const pairedTest = (
      winner: Model.Candidate,
      winnerRun: Model.RunRecord | undefined,
      baselineRun: Model.RunRecord,
      alpha: number,
      candidates: number
    ): Effect.Effect<Significance, HoldoutError.StoreError> =>
      Effect.gen(function*() {
        const comparisons = options.correction === "none" ? 1 : Math.max(1, candidates)
        const threshold = alpha / comparisons
        const compared = winnerRun === undefined
          ? undefined
          : yield* Compare.runs(winnerRun, baselineRun, { admin: true }).pipe(
            Effect.provideService(TaskStore.TaskStore, store),
            Effect.provideService(SplitAccess.SplitAccess, access),
            // both are whole-split admin runs of one split: anything else is no evidence, and is logged
            Effect.catchTags({
              AccessDenied: (error) => Effect.as(Effect.logWarning("Verifier: paired test refused", error), undefined),
              InvalidRequest: (error) => Effect.as(Effect.logWarning("Verifier: paired test refused", error), undefined)
            })
          )
        const pValue = compared?.pValueGreater ?? null
        return {
          alpha,
          comparisons,
          threshold,
          candidate: winner.id,
          shared: compared?.shared ?? 0,
          difference: compared?.difference ?? 0,
          interval: compared?.interval ?? null,
          pValue,
          significant: pValue !== null && pValue <= threshold && (compared?.difference ?? 0) > 0
        }
      })

    const compute = Effect.gen(function*() {
      const choice = options.mode === "submit"
        ? yield* Effect.map(submission(), (submitted) =>
          Option.match(submitted, {
            onNone: () => ({
              candidate: null,
              shortlist: [],
              baseline: null,
              baselineInterval: null,
              significance: null,
              reason: "Nothing was submitted."
            }),
            onSome: (candidate) => ({
              candidate,
              shortlist: [],
              baseline: null,
              baselineInterval: null,
              significance: null,
              reason: `${candidate.id} was submitted.`
            })
          }))
        : yield* chooseBest
      const rewards: Record<string, number> = {}
      const targetErrors: Record<string, string> = {}
      for (const target of options.targets) {
        if (choice.candidate === null) {
          rewards[target.rewardKey] = 0
          continue
        }
        const scored = yield* scoreTarget(choice.candidate, target)
        rewards[target.rewardKey] = scored.score
        if (scored.error !== undefined) targetErrors[target.rewardKey] = scored.error
      }
      const answer: Answer = {
        mode: options.mode,
        candidate: choice.candidate === null ? null : choice.candidate.id,
        rewards,
        targetErrors,
        shortlist: choice.shortlist,
        baseline: choice.baseline,
        baselineInterval: choice.baselineInterval,
        significance: choice.significance,
        reason: choice.candidate === null ? `${choice.reason} Every reward is 0.` : choice.reason,
        finalizedAt: yield* Clock.currentTimeMillis
      }
      return answer
    })

    // Computed once: the admin evaluations are idempotent under their keys, so a finalize cut short
    // (or racing another process) scores nothing twice, and the first answer stored is every caller's.
    const finalize = () =>
      lock.withPermits(1)(Effect.gen(function*() {
        const stored = yield* readMeta(stateKeys.answer, decodeAnswer)
        if (Option.isSome(stored)) return stored.value
        const answer = yield* compute
        return yield* decodeAnswer(yield* store.putMetaIfAbsent(stateKeys.answer, encodeAnswer(answer)))
      }))

    const freeBaseline = options.freeBaseline === true ? Option.fromNullable(options.baseline) : Option.none()
    return { mode: options.mode, freeBaseline, submit, submission, finalize }
  })

/**
 * The verifier as a layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<
  Verifier,
  HoldoutError.ConfigError,
  Engine.Engine | TaskStore.TaskStore | DatasetSource.DatasetSource | SplitAccess.SplitAccess
> => Layer.effect(Verifier, make(options))

/**
 * Writes the rewards as `reward.json` (a flat `{ key: number }` object), atomically.
 *
 * @since 0.1.0
 * @category combinators
 */
export const writeRewards = (
  file: string,
  rewards: Readonly<Record<string, number>>
): Effect.Effect<void, HoldoutError.StoreError, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const temp = `${file}.tmp`
    yield* fs.makeDirectory(path.dirname(file), { recursive: true })
    yield* fs.writeFileString(temp, JSON.stringify(rewards) + "\n")
    yield* fs.rename(temp, file)
  }).pipe(
    Effect.mapError((error) =>
      new HoldoutError.StoreError({ op: "writeRewards", message: `Could not write ${file}: ${error.message}` })
    )
  )
