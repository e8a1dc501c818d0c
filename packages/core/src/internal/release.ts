/**
 * The engine's side of the release mechanisms: before a run of a split with a mechanism, check that
 * it can answer (thresholdout: the candidate has a reference mean, and overfitting budget is left);
 * after it, work out the answer once per request and keep it in the store, so a repeat of the
 * request is told the same.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import {
  BudgetExhausted,
  ConfigError,
  InvalidRequest,
  type SplitNotBudgeted,
  type StoreError
} from "../HoldoutError.js"
import type { Ledger } from "../Ledger.js"
import * as Metrics from "../Metrics.js"
import type { Candidate, Experiment, RunRecord } from "../Model.js"
import * as Release from "../Release.js"
import * as SampleIds from "../SampleIds.js"
import type { TaskStore } from "../TaskStore.js"
import { newSecret } from "./blocks.js"

/** The store key of the secret the noise is drawn from. */
export const secretKey = "holdout:release-secret"

const decodeReleased = Schema.decodeUnknownOption(Schema.parseJson(Release.Released))

/** What `before` learned, for `answer`. */
export interface Prepared {
  readonly mechanism: Exclude<Release.Mechanism, { readonly _tag: "exact" }>
  /** The candidate's mean on the reference split (thresholdout). */
  readonly reference: number | undefined
}

const overfitRefusal = (datasetId: string, split: string, remaining: number | null) =>
  new BudgetExhausted({ datasetId, split, reason: "overfit", requested: 1, remaining })

/** The release machinery of one engine. */
export const make = (
  releases: Release.Releases,
  ledger: Ledger["Type"],
  store: TaskStore["Type"]
) => {
  let known: string | undefined
  const secret = Effect.suspend(() =>
    known !== undefined
      ? Effect.succeed(known)
      : Effect.tap(store.putMetaIfAbsent(secretKey, newSecret()), (value) => Effect.sync(() => known = value))
  )

  /** The latest finished, charged run of the candidate on the whole reference split. */
  const referenceMean = (candidate: Candidate, datasetId: string, split: string) =>
    Effect.map(store.listRuns(), (runs) => {
      let latest: RunRecord | undefined
      for (const run of runs) {
        if (
          run.candidate.id === candidate.id && run.datasetId === datasetId && run.split === split && !run.admin &&
          run.status !== "running" && run.status !== "pending" &&
          (latest === undefined || run.createdAt >= latest.createdAt)
        ) latest = run
      }
      if (latest === undefined) return undefined
      return latest.progress === undefined
        ? latest.metrics?.avgFilledScore
        : Metrics.fromProgress(latest.progress).avgFilledScore
    })

  /** Checks, before anything is charged, that the split's mechanism can answer this request. */
  const before = (
    candidate: Candidate,
    datasetId: string,
    split: string
  ): Effect.Effect<Prepared | undefined, InvalidRequest | BudgetExhausted | SplitNotBudgeted | StoreError> =>
    Effect.gen(function*() {
      const mechanism = releases[split]
      if (mechanism === undefined || mechanism._tag === "exact") return undefined
      if (mechanism._tag === "ladder") return { mechanism, reference: undefined }
      const overfit = yield* ledger.get(Release.overfitKey(datasetId, split))
      if (overfit.remaining.runs !== null && overfit.remaining.runs <= 0) {
        return yield* overfitRefusal(datasetId, split, overfit.remaining.runs)
      }
      const reference = yield* referenceMean(candidate, datasetId, mechanism.reference)
      if (reference === undefined) {
        return yield* new InvalidRequest({
          message: `Split "${split}" answers through thresholdout, which compares a candidate with its mean on ` +
            `"${mechanism.reference}". Evaluate candidate "${candidate.id}" on the whole "${mechanism.reference}" ` +
            `split first. Nothing was charged.`
        })
      }
      return { mechanism, reference }
    })

  // one best-so-far chain per split: entry n is the n-th mean the ladder told (first writer wins)
  const ladderBest = (datasetId: string, split: string) =>
    Effect.gen(function*() {
      let best: number | undefined
      let count = 0
      while (true) {
        const entry = yield* store.getMeta(`holdout:ladder:${JSON.stringify([datasetId, split, count])}`)
        if (Option.isNone(entry)) return { best, count }
        best = Number(entry.value)
        count++
      }
    })

  const ladder = (mechanism: typeof Release.Ladder.Type, run: RunRecord, mean: number) =>
    Effect.gen(function*() {
      while (true) {
        const { best, count } = yield* ladderBest(run.datasetId, run.split)
        const answer = Release.ladderAnswer(mechanism, mean, best)
        if (!answer.improved) return answer.mean
        const key = `holdout:ladder:${JSON.stringify([run.datasetId, run.split, count])}`
        const stored = yield* store.putMetaIfAbsent(key, String(answer.mean))
        // another process told a new best first: decide again against it
        if (stored === String(answer.mean)) return answer.mean
      }
    })

  const thresholdout = (
    mechanism: typeof Release.Thresholdout.Type,
    reference: number,
    run: RunRecord,
    mean: number,
    digest: string
  ) =>
    Effect.gen(function*() {
      const key = Release.overfitKey(run.datasetId, run.split)
      const secretValue = yield* secret
      // γ is redrawn after each over-threshold answer: it is indexed by how many there were
      const spent = (yield* ledger.get(key)).spent.runs
      const noise: Release.ThresholdoutNoise = {
        gamma: Release.laplace(
          yield* Release.uniform(secretValue, run.datasetId, run.split, "gamma", spent),
          2 * mechanism.sigma
        ),
        eta: Release.laplace(yield* Release.uniform(secretValue, digest, "eta"), 4 * mechanism.sigma),
        xi: Release.laplace(yield* Release.uniform(secretValue, digest, "xi"), mechanism.sigma)
      }
      const answer = Release.thresholdoutAnswer(mechanism, mean, reference, noise)
      if (answer.over) {
        // one unit a request: the reservation id is the request's, so a repeat charges nothing
        yield* ledger.reserve({ ...key, samples: 0, runId: run.runId, reservationId: `overfit:${digest}` }).pipe(
          Effect.catchTag("BudgetExhausted", (error) =>
            Effect.fail(overfitRefusal(run.datasetId, run.split, error.remaining)))
        )
      }
      return answer.mean
    })

  /** What the mechanism tells of a finished run; the same for every repeat of the request. */
  const answer = (prepared: Prepared, run: RunRecord, mean: number) =>
    Effect.gen(function*() {
      const digest = yield* requestDigest(run)
      const key = `holdout:release:${digest}`
      const told = yield* store.getMeta(key)
      const previous = Option.flatMap(told, decodeReleased)
      if (Option.isSome(previous)) return previous.value
      const released: Release.Released = {
        mechanism: prepared.mechanism._tag,
        mean: prepared.mechanism._tag === "ladder"
          ? yield* ladder(prepared.mechanism, run, mean)
          : yield* thresholdout(prepared.mechanism, prepared.reference!, run, mean, digest)
      }
      const stored = yield* store.putMetaIfAbsent(key, JSON.stringify(released))
      return Option.getOrElse(decodeReleased(stored), () => released)
    })

  /** The experiment with what the mechanism told, when the request was prepared for one. */
  const tell = (prepared: Prepared | undefined, experiment: Experiment) =>
    prepared === undefined
      ? Effect.succeed(experiment)
      : Effect.map(
        answer(prepared, experiment.run, experiment.metrics.avgFilledScore),
        (release): Experiment => ({ ...experiment, release })
      )

  /**
   * Checks, when the engine is built, that the ledger meters the overfitting budget of every
   * budgeted thresholdout split (`Stack.layerWith` adds them; `Release.overfitBudgets` lists them).
   */
  const check = Effect.gen(function*() {
    const snapshots = yield* Effect.orElseSucceed(ledger.status(), () => [])
    const metered = new Set(snapshots.map((snapshot) => JSON.stringify([snapshot.datasetId, snapshot.split])))
    for (const snapshot of snapshots) {
      if (releases[snapshot.split]?._tag !== "thresholdout") continue
      const key = Release.overfitKey(snapshot.datasetId, snapshot.split)
      if (!metered.has(JSON.stringify([key.datasetId, key.split]))) {
        return yield* new ConfigError({
          message: `Split "${snapshot.split}" answers through thresholdout, but the ledger has no overfitting ` +
            `budget for it. Give the ledger the budgets Release.overfitBudgets(releases, budgets) lists (Stack.layerWith ` +
            `does), so that over-threshold answers are metered.`
        })
      }
    }
  })

  return { before, tell, check }
}

/** A digest of what a request asks: candidate, split and samples. */
const requestDigest = (run: RunRecord) =>
  Effect.promise(async () => {
    const text = JSON.stringify([run.candidate.id, run.datasetId, run.split, SampleIds.ranges(run.sampleIds)])
    const digest = await globalThis.crypto.subtle.digest("SHA-256", new TextEncoder().encode(text))
    return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("")
  })
