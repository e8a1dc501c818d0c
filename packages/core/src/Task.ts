/**
 * An in-process evaluation task: an inference function that turns a row (without its label fields)
 * into an output, and a scoring function that grades the output against the full row. The local
 * strategy (`LocalStrategy`) runs a task as a staged, resumable pipeline.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type { RunPlan } from "./EvalStrategy.js"
import { ConfigError } from "./HoldoutError.js"

/**
 * The brand of a `Task` value.
 *
 * @since 0.1.0
 * @category symbols
 */
export const TypeId: unique symbol = Symbol.for("@holdout/core/Task")

/**
 * @since 0.1.0
 * @category symbols
 */
export type TypeId = typeof TypeId

/**
 * The brand of a value made by `output`.
 *
 * @since 0.1.0
 * @category symbols
 */
export const OutputTypeId: unique symbol = Symbol.for("@holdout/core/Task/Output")

/**
 * @since 0.1.0
 * @category symbols
 */
export type OutputTypeId = typeof OutputTypeId

/**
 * What a task function may return: a plain value, a Promise of it, or an Effect producing it.
 * A thrown exception, a rejected Promise and a failed (or dying) Effect are all failures of the call.
 *
 * @since 0.1.0
 * @category models
 */
export type Result<A> = A | PromiseLike<A> | Effect.Effect<A, unknown>

/**
 * An inference output with a trace or a soft error attached, made by `output`. A soft error marks
 * the sample as failed (it is not scored) without throwing; it is never retried.
 *
 * @since 0.1.0
 * @category models
 */
export interface Output<out A> {
  readonly [OutputTypeId]: OutputTypeId
  readonly value: A
  readonly trace?: unknown
  readonly error?: string | Error
}

/**
 * Attaches an execution trace and/or a soft error to an inference output.
 *
 * @example
 * ```ts
 * const infer = async (row: { question: string }) => {
 *   const { text, steps } = await agent.run(row.question)
 *   return Task.output(text, { trace: steps })
 * }
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const output = <A>(
  value: A,
  options: { readonly trace?: unknown; readonly error?: string | Error | undefined } = {}
): Output<A> => {
  const marked: { -readonly [K in keyof Output<A>]: Output<A>[K] } = { [OutputTypeId]: OutputTypeId, value }
  if (options.trace !== undefined) marked.trace = options.trace
  if (options.error !== undefined) marked.error = options.error
  return marked
}

/**
 * Whether a value was made by `output`.
 *
 * @since 0.1.0
 * @category guards
 */
export const isOutput = (u: unknown): u is Output<unknown> => typeof u === "object" && u !== null && OutputTypeId in u

/**
 * The stored inference result a scoring function receives: the output and the trace, if any.
 * Samples whose inference failed are never scored, so there is no error here. An inference that
 * returned `undefined` is stored (and scored) as `null`.
 *
 * @since 0.1.0
 * @category models
 */
export interface StoredOutput<out A> {
  readonly output: A
  readonly trace?: unknown
}

/**
 * What a scoring function may return besides a bare number. `evalError` marks the scoring as
 * failed (the sample counts as an error) without throwing.
 *
 * @since 0.1.0
 * @category models
 */
export interface Score {
  readonly score?: number | undefined
  readonly feedback?: string | undefined
  readonly metrics?: Readonly<Record<string, number>> | undefined
  readonly evalError?: string | undefined
  readonly evalTrace?: unknown
}

/**
 * The row type inference receives: `Row` without the label fields `L` (when `Row` is an object).
 *
 * @since 0.1.0
 * @category models
 */
export type Scrubbed<Row, L extends string> = [L] extends [never] ? Row
  : Row extends object ? Omit<Row, L>
  : Row

/**
 * A task. `Row` is a dataset row, `Out` what inference produces, `Input` what inference receives
 * (the row without its label fields). Exactly one of `infer` / `inferBatch` and exactly one of
 * `score` / `scoreBatch` must be set; `validate` checks it (the local strategy does so when its
 * layer is built).
 *
 * @since 0.1.0
 * @category models
 */
export interface Task<in out Row = unknown, in out Out = unknown, in out Input = Row> {
  readonly [TypeId]: TypeId
  readonly name: string
  /** Fields removed from a row (when it is a plain object) before inference sees or stores it. */
  readonly labelFields: ReadonlyArray<string>
  /** The chunk size of `inferBatch` / `scoreBatch`; the strategy's option overrides it. */
  readonly batchSize: number | undefined
  readonly infer: ((row: Input, run: RunPlan) => Result<Out | Output<Out>>) | undefined
  readonly inferBatch:
    | ((rows: ReadonlyArray<Input>, run: RunPlan) => Result<ReadonlyArray<Out | Output<Out>>>)
    | undefined
  readonly score: ((row: Row, output: StoredOutput<Out>, run: RunPlan) => Result<number | Score>) | undefined
  readonly scoreBatch:
    | ((
      rows: ReadonlyArray<Row>,
      outputs: ReadonlyArray<StoredOutput<Out>>,
      run: RunPlan
    ) => Result<ReadonlyArray<number | Score>>)
    | undefined
}

/**
 * The functions and settings of a task, as given to `make`.
 *
 * @since 0.1.0
 * @category models
 */
export interface TaskOptions<Row, Out, L extends string> {
  /** A non-empty name, used in messages and reports. */
  readonly name: string
  /** Row fields inference must not see (answers, labels); they are also left out of the stored `input`. */
  readonly labelFields?: ReadonlyArray<L>
  /** The chunk size of the batch functions (default 16). */
  readonly batchSize?: number
  /**
   * Infers one sample: receives the row without its label fields, and the run (its candidate,
   * dataset and split), so one task can serve every candidate.
   */
  readonly infer?: (row: Scrubbed<Row, L>, run: RunPlan) => Result<Out | Output<Out>>
  /** Infers a chunk of samples; must return one result per row, in order. */
  readonly inferBatch?: (
    rows: ReadonlyArray<Scrubbed<Row, L>>,
    run: RunPlan
  ) => Result<ReadonlyArray<Out | Output<Out>>>
  /** Scores one sample: receives the full row, the stored inference output and the run. */
  readonly score?: (row: Row, output: StoredOutput<Out>, run: RunPlan) => Result<number | Score>
  /** Scores a chunk of samples; must return one result per row, in order. */
  readonly scoreBatch?: (
    rows: ReadonlyArray<Row>,
    outputs: ReadonlyArray<StoredOutput<Out>>,
    run: RunPlan
  ) => Result<ReadonlyArray<number | Score>>
}

/**
 * Builds a task. With `labelFields`, inference receives the row type without those fields: pass
 * the type arguments (`Task.make<Row, Output, "answer">`) or annotate the inference function's row
 * with the scrubbed type (TypeScript cannot infer `Row` for an unannotated inference function from
 * the scoring function that follows it). Annotating it with the full row type is a type error, on
 * purpose: the label fields are not there at run time.
 *
 * Inference returns the output (or `output(value, { trace, error })`); an `Error` value returned
 * in place of an output counts as a failure of that sample. Scoring returns a number (the score) or
 * a `Score` object. The task is checked when the strategy's layer is built, not here.
 *
 * @example
 * ```ts
 * interface Row { readonly question: string; readonly answer: string }
 *
 * const task = Task.make<Row, string, "answer">({
 *   name: "qa",
 *   labelFields: ["answer"],
 *   infer: async (row) => callModel(row.question), // row: { question: string }
 *   score: (row, { output }) => (output === row.answer ? 1 : 0)
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <Row, Out, const L extends string = never>(
  options: TaskOptions<Row, Out, L>
): Task<Row, Out, Scrubbed<Row, L>> => ({
  [TypeId]: TypeId,
  name: options.name,
  labelFields: options.labelFields ?? [],
  batchSize: options.batchSize,
  infer: options.infer,
  inferBatch: options.inferBatch,
  score: options.score,
  scoreBatch: options.scoreBatch
})

/**
 * Whether a value is a `Task`.
 *
 * @since 0.1.0
 * @category guards
 */
export const isTask = (u: unknown): u is Task<unknown, unknown, unknown> =>
  typeof u === "object" && u !== null && TypeId in u

/** The problems that make a task unusable, one message each (empty when it is fine). */
const problems = (task: unknown): ReadonlyArray<string> => {
  const found: Array<string> = []
  if (!isTask(task)) return ["The value given as a task was not made by Task.make; build it with Task.make({ ... })."]
  const name = typeof task.name === "string" && task.name.length > 0 ? task.name : undefined
  const which = name === undefined ? "The task" : `Task "${name}"`
  if (name === undefined) found.push("A task needs a non-empty name: Task.make({ name: \"my-task\", ... }).")
  const isFunction = (u: unknown) => typeof u === "function"
  const slot = (single: unknown, batch: unknown, singleName: string, batchName: string, what: string) => {
    if (single !== undefined && !isFunction(single)) found.push(`${which}: ${singleName} must be a function.`)
    if (batch !== undefined && !isFunction(batch)) found.push(`${which}: ${batchName} must be a function.`)
    if (single === undefined && batch === undefined) {
      found.push(`${which} has no ${what} function: give exactly one of ${singleName} or ${batchName}.`)
    } else if (single !== undefined && batch !== undefined) {
      found.push(`${which} has both ${singleName} and ${batchName}: give exactly one of them.`)
    }
  }
  slot(task.infer, task.inferBatch, "infer", "inferBatch", "inference")
  slot(task.score, task.scoreBatch, "score", "scoreBatch", "scoring")
  if (task.batchSize !== undefined && !(Number.isInteger(task.batchSize) && task.batchSize >= 1)) {
    found.push(`${which}: batchSize must be an integer >= 1, got ${String(task.batchSize)}.`)
  }
  if (!Array.isArray(task.labelFields) || task.labelFields.some((field) => typeof field !== "string")) {
    found.push(`${which}: labelFields must be an array of field names (strings).`)
  }
  return found
}

/**
 * Checks a task: a non-empty name, exactly one of `infer` / `inferBatch`, exactly one of `score` /
 * `scoreBatch`, and a `batchSize` that is an integer >= 1. Every problem found is listed in the
 * `ConfigError`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const validate = <Row, Out, Input>(
  task: Task<Row, Out, Input>
): Effect.Effect<Task<Row, Out, Input>, ConfigError> => {
  const found = problems(task)
  return found.length === 0 ? Effect.succeed(task) : Effect.fail(new ConfigError({ message: found.join(" ") }))
}
