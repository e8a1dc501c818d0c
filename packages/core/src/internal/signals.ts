/**
 * What the engine tells besides its answers, made as cheaply as it can be: run events only while
 * someone listens, tagged metrics once per tag.
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as RunEvents from "../RunEvents.js"

/**
 * Publishes an event, made only when someone listens: an event nobody is subscribed to is dropped
 * anyway.
 *
 * @internal
 */
export const publisher =
  (events: Option.Option<RunEvents.RunEvents["Type"]>) => (event: () => RunEvents.RunEvent): Effect.Effect<void> =>
    Effect.suspend(() =>
      Option.isSome(events) && events.value.unsafeHasSubscribers() ? events.value.publish(event()) : Effect.void
    )

/**
 * `metric` tagged `key` = value, each made once: a metric made anew is hashed and looked up anew in
 * the metric registry at every update.
 *
 * @internal
 */
export const taggedBy = <Type, In, Out>(metric: Metric.Metric<Type, In, Out>, key: string) => {
  const made = new Map<string, Metric.Metric<Type, In, Out>>()
  return (value: string): Metric.Metric<Type, In, Out> => {
    let tagged = made.get(value)
    if (tagged === undefined) {
      tagged = Metric.tagged(metric, key, value)
      made.set(value, tagged)
    }
    return tagged
  }
}
