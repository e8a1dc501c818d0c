/**
 * A run's progress as a terminal shows it: both stages (inferred, scored) with their rate, ETA and
 * the error count, from the stack's run events (`RunEvents`). Nothing polls the store: a bar moves
 * when a strategy publishes that a sample was inferred or scored.
 *
 * @since 0.1.0
 */
import { RunEvents } from "@holdout/core"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"

/**
 * One stage's count, and the count and time of its first event: its rate is measured from there, so
 * samples a resume found already stored, and the wait before the first sample, do not skew it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stage {
  readonly count: number
  readonly since: Option.Option<{ readonly count: number; readonly at: number }>
}

/**
 * What is known of a run's progress.
 *
 * @since 0.1.0
 * @category models
 */
export interface State {
  readonly runId: string
  /** The samples planned (0 until the run has started). */
  readonly total: number
  readonly startedAt: number
  readonly inferred: Stage
  readonly scored: Stage
  readonly errors: number
  /** The final status, once the run has finished. */
  readonly status: Option.Option<string>
}

const emptyStage: Stage = { count: 0, since: Option.none() }

/**
 * The progress of a run nothing is known of yet.
 *
 * @since 0.1.0
 * @category constructors
 */
export const initial = (runId: string, now: number): State => ({
  runId,
  total: 0,
  startedAt: now,
  inferred: emptyStage,
  scored: emptyStage,
  errors: 0,
  status: Option.none()
})

/** Events carry running counts, so a count never goes back (a missed or late event changes nothing). */
const advance = (stage: Stage, count: number, now: number): Stage => ({
  count: Math.max(stage.count, count),
  since: Option.orElse(stage.since, () => Option.some({ count, at: now }))
})

/**
 * The progress after an event; events of other runs change nothing.
 *
 * @since 0.1.0
 * @category combinators
 */
export const update = (state: State, event: RunEvents.RunEvent, now: number): State => {
  if (event.runId !== state.runId) return state
  switch (event._tag) {
    case "RunStarted":
      return {
        ...state,
        total: event.samples,
        startedAt: now,
        inferred: { count: Math.max(state.inferred.count, event.done), since: Option.none() }
      }
    case "SampleInferred":
      return {
        ...state,
        inferred: advance(state.inferred, event.inferred, now),
        errors: Math.max(state.errors, event.errors)
      }
    case "SampleScored":
      return {
        ...state,
        scored: advance(state.scored, event.scored, now),
        errors: Math.max(state.errors, event.errors)
      }
    case "RunFinished":
      // every sample of a finished run is final
      return {
        ...state,
        inferred: advance(state.inferred, event.metrics.numSamples, now),
        scored: advance(state.scored, event.metrics.numSamples, now),
        errors: Math.max(state.errors, event.metrics.numErrors),
        status: Option.some(event.status)
      }
  }
}

/**
 * A stage's rate in samples per second since it was first seen, when it has moved.
 *
 * @since 0.1.0
 * @category combinators
 */
export const rate = (stage: Stage, now: number): Option.Option<number> =>
  Option.flatMap(stage.since, (since) => {
    const seconds = (now - since.at) / 1000
    const done = stage.count - since.count
    return done > 0 && seconds > 0 ? Option.some(done / seconds) : Option.none()
  })

/** `42s`, `3m04s`, `2h05m` (rounded up: an ETA is not optimistic). */
const duration = (seconds: number): string => {
  const whole = Math.max(0, Math.ceil(seconds))
  if (whole < 60) return `${whole}s`
  if (whole < 3600) return `${Math.floor(whole / 60)}m${String(whole % 60).padStart(2, "0")}s`
  return `${Math.floor(whole / 3600)}h${String(Math.floor((whole % 3600) / 60)).padStart(2, "0")}m`
}

const renderStage = (name: string, stage: Stage, total: number, now: number, width: number): string => {
  const filled = total === 0 ? 0 : Math.min(width, Math.round((stage.count / total) * width))
  const speed = rate(stage, now)
  const left = Math.max(0, total - stage.count)
  const eta = left === 0
    ? "done"
    : Option.match(speed, { onNone: () => "ETA --", onSome: (perSecond) => `ETA ${duration(left / perSecond)}` })
  const perSecond = Option.match(speed, {
    onNone: () => "-/s",
    onSome: (value) => `${value >= 100 ? value.toFixed(0) : value.toFixed(1)}/s`
  })
  return `${name} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${stage.count}/${total} ${perSecond} ${eta}`
}

/**
 * The progress as one line: `inferred [####----] 6/12 3.0/s ETA 2s | scored [#-------] 2/12 1.0/s ETA 10s |
 * 0 errors | 4s`.
 *
 * @since 0.1.0
 * @category rendering
 */
export const render = (state: State, now: number, width = 16): string =>
  [
    renderStage("inferred", state.inferred, state.total, now, width),
    renderStage("scored", state.scored, state.total, now, width),
    `${state.errors} error${state.errors === 1 ? "" : "s"}`,
    duration(Math.floor((now - state.startedAt) / 1000))
  ].join(" | ")

/**
 * How progress is shown: `write` gets each rendered line; on a terminal (`tty`) a line is redrawn in
 * place at most every `interval`, otherwise a line is written at most every `interval`. Nothing is
 * shown before `delay` has passed (a short run shows no bar).
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly tty: boolean
  readonly write: (text: string) => Effect.Effect<void>
  readonly interval?: Duration.DurationInput
  readonly delay?: Duration.DurationInput
}

/** Reads events into the state and draws it, until the run finishes or the fiber is interrupted. */
const draw = (
  runId: string,
  queue: Queue.Dequeue<RunEvents.RunEvent>,
  options: Options,
  drawn: { shown: boolean }
) =>
  Effect.gen(function*() {
    const interval = Duration.toMillis(options.interval ?? (options.tty ? "100 millis" : "5 seconds"))
    const delay = Duration.toMillis(options.delay ?? "1 second")
    let state = initial(runId, yield* Clock.currentTimeMillis)
    let shownAt = Number.NEGATIVE_INFINITY
    const show = (now: number) =>
      Effect.suspend(() => {
        shownAt = now
        drawn.shown = true
        const line = render(state, now)
        return options.write(options.tty ? `\r${line} ` : `progress: ${line}\n`)
      })
    while (true) {
      // a tick without events still moves the clock and the ETA
      const batch = yield* Effect.timeout(Queue.takeBetween(queue, 1, 4096), "1 second").pipe(Effect.option)
      const now = yield* Clock.currentTimeMillis
      if (Option.isSome(batch)) { for (const event of batch.value) state = update(state, event, now) }
      const finished = Option.isSome(state.status)
      if (now - state.startedAt >= delay && (finished || now - shownAt >= interval)) yield* show(now)
      if (finished) return
    }
  })

/**
 * Runs `effect` while showing the progress of run `runId`: the subscription is open before `effect`
 * starts (so its first event is seen) and closed when it ends. A stack without `RunEvents` shows none.
 *
 * @since 0.1.0
 * @category combinators
 */
export const showWhile = <A, E, R>(
  runId: string,
  effect: Effect.Effect<A, E, R>,
  options: Options
): Effect.Effect<A, E, R> =>
  Effect.flatMap(
    Effect.serviceOption(RunEvents.RunEvents),
    (hub) =>
      Option.isNone(hub) ? effect : Effect.scoped(Effect.gen(function*() {
        const events = hub.value
        const queue = yield* events.subscribe
        const drawn = { shown: false }
        const drawing = yield* Effect.forkScoped(draw(runId, queue, options, drawn))
        // on success, the last frame (the finished run) is drawn before the bar's line is ended
        const endLine = Effect.suspend(() => options.tty && drawn.shown ? options.write("\n") : Effect.void)
        return yield* Effect.tap(effect, () => Effect.ignore(Effect.timeout(Fiber.await(drawing), "1 second"))).pipe(
          Effect.ensuring(Effect.zipRight(Fiber.interrupt(drawing), endLine))
        )
      }))
  )
