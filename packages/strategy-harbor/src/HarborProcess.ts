/**
 * Supervising one nested `harbor run`: start it, copy its output to a log file (keeping the tail of
 * its error output), report progress while it lasts, and end it and everything it started on timeout
 * or interruption. What the command is comes from `HarborArgs`.
 *
 * @since 0.1.0
 */
import * as Command from "@effect/platform/Command"
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as FileSystem from "@effect/platform/FileSystem"
import { HoldoutError } from "@holdout/core"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"

/**
 * How a nested run ended.
 *
 * @since 0.1.0
 * @category models
 */
export type Ended =
  | { readonly _tag: "Exited"; readonly code: number }
  | { readonly _tag: "Signalled"; readonly reason: string }
  | { readonly _tag: "TimedOut"; readonly seconds: number }

/**
 * How a nested run ended, as words ("exited with code 2").
 *
 * @since 0.1.0
 * @category utils
 */
export const describeEnd = (ended: Ended): string => {
  switch (ended._tag) {
    case "Exited":
      return `exited with code ${ended.code}`
    case "Signalled":
      return `ended abnormally (${ended.reason})`
    case "TimedOut":
      return `timed out after ${ended.seconds} s and was terminated`
  }
}

/**
 * What {@link supervise} needs.
 *
 * @since 0.1.0
 * @category models
 */
export interface Supervision {
  /** The whole command, the program first. */
  readonly args: readonly [string, ...Array<string>]
  readonly cwd: string
  /** Where stdout and stderr are appended. */
  readonly logFile: string
  readonly timeoutSeconds: number
  /** How long a terminated run gets between SIGTERM and SIGKILL. */
  readonly killGrace: Duration.Duration
  readonly progressInterval: Duration.Duration
  /** Logged every `progressInterval` while the run lasts (e.g. the trials finished so far). */
  readonly progress: (elapsedSeconds: number) => Effect.Effect<void>
}

/**
 * How a supervised run ended, and the last 2000 characters of its error output.
 *
 * @since 0.1.0
 * @category models
 */
export interface Supervised {
  readonly ended: Ended
  readonly outputTail: string
}

const failure = (message: string) => new HoldoutError.StrategyError({ strategy: "harbor", message })

/** Keeps the last `size` characters of a text stream. */
const makeTail = (size: number) => {
  let text = ""
  const decoder = new TextDecoder()
  return {
    push: (chunk: Uint8Array) => {
      text = (text + decoder.decode(chunk, { stream: true })).slice(-size)
    },
    get: () => text.trim()
  }
}

/** Waits until the process has exited, for at most `grace` (by polling: this also runs in finalizers). */
const awaitExit = (process: CommandExecutor.Process, grace: Duration.Duration) =>
  Effect.gen(function*() {
    const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(grace)
    const running = process.isRunning.pipe(Effect.orElseSucceed(() => false))
    while ((yield* running) && (yield* Clock.currentTimeMillis) < deadline) {
      yield* Effect.sleep("25 millis")
    }
  })

/**
 * Ends a nested run and everything it started: SIGTERM to its process group, then SIGKILL after
 * the grace period (the group may outlive its leader, so SIGKILL is always sent). A signal is
 * sent from a daemon fiber, as `kill` then waits for the exit, which must not hold up a finalizer.
 */
const terminate = (process: CommandExecutor.Process, grace: Duration.Duration) =>
  Effect.gen(function*() {
    yield* Effect.forkDaemon(Effect.ignore(process.kill("SIGTERM")))
    yield* awaitExit(process, grace)
    yield* Effect.forkDaemon(Effect.ignore(process.kill("SIGKILL")))
    yield* awaitExit(process, grace)
  })

/**
 * Runs the command to its end, within one timeout for the whole run; on timeout or interruption
 * the process tree is terminated. A non-zero exit is not a failure: the caller collates what
 * finished. Failing to open the log or to start the program is a `StrategyError`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const supervise = (
  options: Supervision
): Effect.Effect<
  Supervised,
  HoldoutError.StrategyError,
  CommandExecutor.CommandExecutor | FileSystem.FileSystem | Scope.Scope
> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const [program, ...rest] = options.args
    const log = yield* fs.open(options.logFile, { flag: "a" }).pipe(
      Effect.mapError((error) => failure(`Could not open ${options.logFile}: ${error.message}`))
    )
    const process = yield* Command.start(Command.make(program, ...rest).pipe(Command.workingDirectory(options.cwd)))
      .pipe(
        Effect.mapError((error) =>
          failure(
            `Could not start the Harbor launcher "${program}" in ${options.cwd}: ${error.message}. ` +
              `Install Harbor, or set \`launcher\` to the command that runs it.`
          )
        )
      )
    const tail = makeTail(2000)
    const drain = yield* Stream.merge(
      process.stdout,
      Stream.tap(process.stderr, (chunk) => Effect.sync(() => tail.push(chunk)))
    )
      .pipe(
        Stream.runForEach((chunk) => log.write(chunk)),
        Effect.ignore,
        Effect.fork
      )
    const startedAt = yield* Clock.currentTimeMillis
    yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
      yield* Effect.sleep(options.progressInterval)
      yield* options.progress(Math.round(((yield* Clock.currentTimeMillis) - startedAt) / 1000))
    })))
    const exit = yield* process.exitCode.pipe(
      Effect.either,
      Effect.timeoutOption(Duration.seconds(options.timeoutSeconds)),
      Effect.onInterrupt(() => terminate(process, options.killGrace))
    )
    let ended: Ended
    if (Option.isNone(exit)) {
      yield* terminate(process, options.killGrace)
      ended = { _tag: "TimedOut", seconds: options.timeoutSeconds }
    } else if (Either.isRight(exit.value)) {
      ended = { _tag: "Exited", code: exit.value.right }
    } else {
      ended = { _tag: "Signalled", reason: exit.value.left.message }
    }
    // the output of a terminated tree ends with it; do not wait on pipes a stray process holds
    yield* Fiber.join(drain).pipe(Effect.timeoutOption("2 seconds"))
    yield* Fiber.interrupt(drain)
    return { ended, outputTail: tail.get() }
  })
