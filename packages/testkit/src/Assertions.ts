/**
 * Test helpers shared by the suites.
 *
 * @since 0.1.0
 */
import { TaskStore } from "@holdout/core"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"

/**
 * The error an effect fails with. An unexpected success becomes a defect with a short message
 * (unlike `Effect.flip`, which would fail the test with the whole success value as its error).
 *
 * @since 0.1.0
 * @category assertions
 */
export const expectFailure = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<E, never, R> =>
  Effect.flatMap(Effect.either(effect), (result) =>
    Either.isLeft(result)
      ? Effect.succeed(result.left)
      : Effect.dieMessage("Expected the effect to fail, but it succeeded."))

/**
 * A memory task store that counts the reads of samples (`getSample`, and each page of
 * `listSamples`), to show that an operation reads no sample (a finished run's metrics are its
 * record's).
 *
 * @since 0.1.0
 * @category constructors
 */
export const countingTaskStore = (): {
  readonly reads: { samples: number }
  readonly layer: Layer.Layer<TaskStore.TaskStore>
} => {
  const reads = { samples: 0 }
  const layer = Layer.sync(TaskStore.TaskStore, () => {
    const store = TaskStore.makeMemory()
    return {
      ...store,
      getSample: (runId, sampleId) =>
        Effect.zipRight(Effect.sync(() => reads.samples++), store.getSample(runId, sampleId)),
      listSamples: (runId, page) => Effect.zipRight(Effect.sync(() => reads.samples++), store.listSamples(runId, page))
    }
  })
  return { reads, layer }
}
