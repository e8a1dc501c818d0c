/**
 * A third-party `EvalStrategy`: each sample is scored by one worker of a fixed pool of local
 * functions (think: a few model clients, each allowed one call at a time). It reads rows from the
 * stack's `DatasetSource`, writes one record per sample to its `TaskStore`, and skips samples a
 * run already holds, as the strategy contract asks.
 *
 * @since 0.1.0
 */
import { DatasetSource, EvalStrategy, HoldoutError, TaskStore } from "@holdout/core"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"

/**
 * One worker: given a row, answers with a score in [0, 1] (or throws, which records the sample as an
 * `evalError`).
 *
 * @since 0.1.0
 * @category models
 */
export type Worker = (row: unknown) => number | Promise<number>

/**
 * The strategy over a pool of workers; each worker runs one sample at a time. An empty pool is a
 * `ConfigError`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  workers: ReadonlyArray<Worker>
): Layer.Layer<
  EvalStrategy.EvalStrategy,
  HoldoutError.ConfigError,
  TaskStore.TaskStore | DatasetSource.DatasetSource
> =>
  Layer.effect(
    EvalStrategy.EvalStrategy,
    Effect.gen(function*() {
      if (workers.length === 0) {
        return yield* new HoldoutError.ConfigError({ message: "The function pool needs at least one worker." })
      }
      const store = yield* TaskStore.TaskStore
      const datasets = yield* DatasetSource.DatasetSource
      const pool = yield* Queue.bounded<Worker>(workers.length)
      yield* Queue.offerAll(pool, workers)
      const borrow = <A, E>(use: (worker: Worker) => Effect.Effect<A, E>) =>
        Effect.acquireUseRelease(Queue.take(pool), use, (worker) => Queue.offer(pool, worker))

      const produce = (plan: EvalStrategy.RunPlan) =>
        Effect.gen(function*() {
          // the samples without a record in this run: all of them, or what an interrupted run left
          const pending = yield* EvalStrategy.pendingSampleIds(store, plan)
          if (pending.length === 0) return
          const rows = yield* datasets.rows(plan.datasetId, plan.split, pending).pipe(
            Effect.catchTags({
              InvalidRequest: (error) =>
                new HoldoutError.StrategyError({ strategy: "function-pool", message: error.message }),
              UnknownSplit: (error) =>
                new HoldoutError.StrategyError({ strategy: "function-pool", message: error.message })
            })
          )
          yield* Effect.forEach(pending, (sampleId, index) =>
            Effect.gen(function*() {
              const startedAt = yield* Clock.currentTimeMillis
              const outcome = yield* borrow((worker) =>
                Effect.either(Effect.tryPromise(async () => worker(rows[index])))
              )
              const finishedAt = yield* Clock.currentTimeMillis
              yield* store.putSample(EvalStrategy.sampleRecord(plan, sampleId, {
                output: null,
                ...(outcome._tag === "Right"
                  ? { score: outcome.right }
                  : { evalError: String(outcome.left.error) }),
                metrics: {},
                attempts: 1,
                startedAt,
                finishedAt
              }))
            }), { concurrency: workers.length, discard: true })
        })

      return { name: "function-pool", produce }
    })
  )
