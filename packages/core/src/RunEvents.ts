/**
 * What happens to runs as it happens: the engine publishes when a run starts and finishes, and
 * strategies when a sample is inferred or scored. Progress bars, logs and viewers subscribe;
 * nobody polls the store. Events carry the run's running counts, so a subscriber that misses some
 * (a slow one, or one that joined late) still shows the right totals.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import type * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { Metrics, type RunRecord, RunStatus } from "./Model.js"

const Count = Schema.Int.pipe(Schema.greaterThanOrEqualTo(0))

/**
 * A run was created or resumed: `samples` are planned, `done` of them were already stored.
 *
 * @since 0.1.0
 * @category models
 */
export class RunStarted extends Schema.TaggedClass<RunStarted>()("RunStarted", {
  runId: Schema.String,
  datasetId: Schema.String,
  split: Schema.String,
  candidateId: Schema.String,
  admin: Schema.Boolean,
  samples: Count,
  done: Count
}) {}

/**
 * The event of a run starting (or resuming) with `stored` of its samples already stored.
 *
 * @since 0.1.0
 * @category constructors
 */
export const startedOf = (run: RunRecord, stored: number): RunStarted =>
  new RunStarted({
    runId: run.runId,
    datasetId: run.datasetId,
    split: run.split,
    candidateId: run.candidate.id,
    admin: run.admin,
    samples: run.sampleIds.length,
    done: Math.min(stored, run.sampleIds.length)
  })

/**
 * A strategy finished the inference stage of a sample. `inferred` and `errors` count this run's
 * samples so far, including those a resume found stored.
 *
 * @since 0.1.0
 * @category models
 */
export class SampleInferred extends Schema.TaggedClass<SampleInferred>()("SampleInferred", {
  runId: Schema.String,
  sampleId: Schema.Int,
  error: Schema.Boolean,
  inferred: Count,
  errors: Count
}) {}

/**
 * A sample's record is final (scored, or failed). `scored` counts this run's final samples so far
 * and `errors` the errors among all its samples.
 *
 * @since 0.1.0
 * @category models
 */
export class SampleScored extends Schema.TaggedClass<SampleScored>()("SampleScored", {
  runId: Schema.String,
  sampleId: Schema.Int,
  error: Schema.Boolean,
  scored: Count,
  errors: Count
}) {}

/**
 * A run reached its final status.
 *
 * @since 0.1.0
 * @category models
 */
export class RunFinished extends Schema.TaggedClass<RunFinished>()("RunFinished", {
  runId: Schema.String,
  status: RunStatus,
  metrics: Metrics
}) {}

/**
 * Every run event.
 *
 * @since 0.1.0
 * @category models
 */
export const RunEvent = Schema.Union(RunStarted, SampleInferred, SampleScored, RunFinished)

/**
 * @since 0.1.0
 * @category models
 */
export type RunEvent = typeof RunEvent.Type

/**
 * The event hub of a stack.
 *
 * @since 0.1.0
 * @category tags
 */
export class RunEvents extends Context.Tag("@holdout/core/RunEvents")<RunEvents, {
  readonly publish: (event: RunEvent) => Effect.Effect<void>
  /** A subscription that receives every event published from now on, until its scope closes. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<RunEvent>, never, Scope.Scope>
  /**
   * Whether anyone is subscribed now: a publisher of many events (one a sample) makes none while
   * nobody listens.
   */
  readonly unsafeHasSubscribers: () => boolean
}>() {}

/**
 * How many unread events a subscriber keeps before the oldest are dropped (the counts in later
 * events stay right).
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultCapacity = 16_384

/**
 * A hub in memory. A slow subscriber loses its oldest unread events rather than slow the run.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (capacity: number = defaultCapacity): Effect.Effect<RunEvents["Type"]> =>
  Effect.map(PubSub.sliding<RunEvent>(capacity), (hub) => {
    let subscribers = 0
    return {
      publish: (event) => Effect.asVoid(PubSub.publish(hub, event)),
      subscribe: Effect.zipLeft(
        PubSub.subscribe(hub),
        Effect.acquireRelease(Effect.sync(() => subscribers++), () => Effect.sync(() => subscribers--))
      ),
      unsafeHasSubscribers: () => subscribers > 0
    }
  })

/**
 * The in-memory hub as a layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<RunEvents> = Layer.effect(RunEvents, make())

/**
 * The events published from now on, as a stream (for as long as it is consumed).
 *
 * @since 0.1.0
 * @category combinators
 */
export const stream: Stream.Stream<RunEvent, never, RunEvents> = Stream.unwrapScoped(
  Effect.map(Effect.flatMap(RunEvents, (events) => events.subscribe), (queue) => Stream.fromQueue(queue))
)
