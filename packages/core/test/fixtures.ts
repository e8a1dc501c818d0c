import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as DatasetSource from "../src/DatasetSource.js"
import * as Engine from "../src/Engine.js"
import * as EvalStrategy from "../src/EvalStrategy.js"
import { StrategyError } from "../src/HoldoutError.js"
import * as Ledger from "../src/Ledger.js"
import type { Experiment, SplitBudget } from "../src/Model.js"
import * as Release from "../src/Release.js"
import * as RunEvents from "../src/RunEvents.js"
import * as SplitAccess from "../src/SplitAccess.js"
import * as TaskStore from "../src/TaskStore.js"

/** Rows of the test dataset "qa": train 20, validation 10, test 8, tiny 3, empty 0. */
export const rows = (count: number, prefix: string) =>
  Array.from({ length: count }, (_, index) => ({ question: `${prefix}-${index}`, answer: index }))

export const records = {
  qa: { train: rows(20, "train"), validation: rows(10, "val"), test: rows(8, "test"), tiny: rows(3, "tiny"), empty: [] }
}

export const budgets: ReadonlyArray<SplitBudget> = [
  { datasetId: "qa", split: "train", runs: 10, samples: 100 },
  { datasetId: "qa", split: "validation", runs: 3, samples: 25, maxSamplesPerRun: 10 },
  { datasetId: "qa", split: "tiny", runs: 5 },
  { datasetId: "qa", split: "empty", runs: 5 }
]

export const policy: SplitAccess.Policy = {
  train: "viewable",
  validation: "non_viewable",
  tiny: "non_viewable",
  empty: "viewable",
  test: "no_access"
}

/** What the fake strategy does for a plan. */
export interface FakeBehaviour {
  /** Sample ids to leave without a record. */
  skip?: (sampleId: number) => boolean
  /** Sample ids that fail inference. */
  fail?: (sampleId: number, plan: EvalStrategy.RunPlan) => boolean
  /** Awaited before producing anything. */
  gate?: Deferred.Deferred<void>
  /** The first `n` calls fail with a StrategyError after producing the even samples. */
  failCalls?: number
}

/**
 * A strategy that writes one record a sample (score 1) with no pipeline of its own, counting its
 * calls; it skips samples already stored, as the contract says.
 */
export const fakeStrategy = (behaviour: FakeBehaviour = {}) => {
  const calls: Array<EvalStrategy.RunPlan> = []
  const produced: Array<number> = []
  const layer = Layer.effect(
    EvalStrategy.EvalStrategy,
    Effect.gen(function*() {
      const store = yield* TaskStore.TaskStore
      return {
        name: "fake",
        produce: (plan) =>
          Effect.gen(function*() {
            calls.push(plan)
            if (behaviour.gate) yield* Deferred.await(behaviour.gate)
            const done = new Set<number>()
            yield* Stream.runForEach(
              TaskStore.streamSamples(store, plan.runId),
              (sample) => Effect.sync(() => done.add(sample.sampleId))
            )
            const failing = calls.length <= (behaviour.failCalls ?? 0)
            for (const sampleId of plan.sampleIds) {
              if (done.has(sampleId) || behaviour.skip?.(sampleId)) continue
              if (failing && sampleId % 2 === 1) continue
              const now = yield* Clock.currentTimeMillis
              const failed = behaviour.fail?.(sampleId, plan) === true
              produced.push(sampleId)
              yield* store.putSample({
                runId: plan.runId,
                sampleId,
                datasetId: plan.datasetId,
                split: plan.split,
                candidateId: plan.candidate.id,
                output: failed ? null : `answer-${sampleId}`,
                ...(failed ? { error: "boom" } : { score: 1 }),
                metrics: {},
                attempts: 1,
                startedAt: now,
                finishedAt: now
              })
            }
            if (failing) return yield* new StrategyError({ strategy: "fake", message: "worker lost" })
          })
      }
    })
  )
  return { calls, produced, layer }
}

/** A whole stack on memory layers, with the fake strategy. */
export const stack = (
  options: {
    readonly behaviour?: FakeBehaviour
    readonly budgets?: ReadonlyArray<SplitBudget>
    readonly policy?: SplitAccess.Policy
    readonly engine?: Engine.EngineOptions
    readonly store?: Layer.Layer<TaskStore.TaskStore>
  } = {}
) => {
  const fake = fakeStrategy(options.behaviour)
  const services = Layer.mergeAll(
    SplitAccess.layer(options.policy ?? policy),
    Ledger.layerMemory([
      ...(options.budgets ?? budgets),
      ...Release.overfitBudgets(options.engine?.releases ?? {}, options.budgets ?? budgets)
    ]),
    DatasetSource.layerRecords(records),
    RunEvents.layer
  ).pipe(Layer.provideMerge(options.store ?? TaskStore.layerMemory))
  const withStrategy = Layer.provideMerge(fake.layer, services)
  const layer = Layer.provideMerge(Engine.layer(options.engine), withStrategy)
  return { fake, layer: Layer.orDie(layer), unsafeLayer: layer }
}

export const candidate = { id: "abc123", label: "baseline" }

/** Every sample of an experiment's run, read from the stack's store page by page. */
export const samplesOf = (experiment: Experiment) =>
  Effect.flatMap(
    TaskStore.TaskStore,
    (store) => Effect.map(Stream.runCollect(TaskStore.streamSamples(store, experiment.run.runId)), Chunk.toArray)
  )
