/**
 * The staged, resumable local pipeline behind `LocalStrategy`. A run's stored records are streamed
 * once into a compact status of its plan; the rows of the samples left to do are then read from the
 * `DatasetSource` in chunks and flow through the inference stage and the scoring stage (one generic
 * stage, `stage.ts`), each sample going on to scoring as soon as it is inferred and its record
 * written the moment a stage finishes it. Nothing is kept per sample beyond the status byte.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type { DatasetSource } from "../DatasetSource.js"
import type { RunPlan } from "../EvalStrategy.js"
import { type StoreError, StrategyError } from "../HoldoutError.js"
import type { SampleRecord } from "../Model.js"
import type * as RunEvents from "../RunEvents.js"
import type * as Task from "../Task.js"
import { forEachPage, type TaskStore } from "../TaskStore.js"
import type { RetryPolicy } from "./failure.js"
import { runPage } from "./page.js"
import * as PlanStatus from "./planStatus.js"
import * as Stage from "./stage.js"
import type { Item, Settings } from "./stage.js"
import * as TaskStages from "./taskStages.js"

/** @internal */
export const strategyName = "local"

/**
 * How many sample ids one call of `DatasetSource.rows` asks for: the size of a page of work.
 *
 * @internal
 */
export const rowsPerRead = 1000

/**
 * Pages of work in flight at once: while the last units of one page finish, the next one runs.
 *
 * @internal
 */
export const pagesInFlight = 2

/**
 * A copy of a plain-object row without the label fields; any other row is returned as is.
 *
 * @internal
 */
export const scrub = (row: unknown, labels: ReadonlySet<string>): unknown => {
  if (labels.size === 0 || typeof row !== "object" || row === null || Array.isArray(row)) return row
  const proto = Object.getPrototypeOf(row)
  if (proto !== Object.prototype && proto !== null) return row
  const copy: Record<string, unknown> = {}
  for (const key of Object.keys(row)) {
    if (!labels.has(key)) copy[key] = (row as Record<string, unknown>)[key]
  }
  return copy
}

const readError = (plan: RunPlan, message: string) =>
  new StrategyError({
    strategy: strategyName,
    message: `Cannot read the rows of run "${plan.runId}" (split "${plan.split}" of dataset "${plan.datasetId}"): ` +
      `${message}`
  })

/** The stored records of `wanted` (ascending ids of one chunk), read page by page from the first. */
const storedRecords = (
  store: TaskStore["Type"],
  runId: string,
  wanted: ReadonlyArray<number>,
  pageSize: number
): Effect.Effect<Map<number, SampleRecord>, StoreError> => {
  const found = new Map<number, SampleRecord>()
  const wantedIds = new Set(wanted)
  const last = wanted[wanted.length - 1]!
  return Effect.as(
    forEachPage(store, runId, (page) => {
      for (const record of page) if (wantedIds.has(record.sampleId)) found.set(record.sampleId, record)
      return Effect.succeed(page.length > 0 && page[page.length - 1]!.sampleId < last)
    }, { after: wanted[0]! > 0 ? wanted[0]! - 1 : undefined, pageSize }),
    found
  )
}

/**
 * The samples of a plan that are not final, with their rows, in pages of `rowsPerRead`, read as
 * the stages take them.
 */
const pendingPages = (
  store: TaskStore["Type"],
  source: DatasetSource["Type"],
  plan: RunPlan,
  status: PlanStatus.PlanStatus,
  labels: ReadonlySet<string>
): Stream.Stream<ReadonlyArray<Item>, StrategyError | StoreError> =>
  Stream.paginateEffect(0, (from: number) => readPage(store, source, plan, status, labels, from))

/** The page of pending samples from position `from` of the plan, and where the next one starts. */
const readPage = (
  store: TaskStore["Type"],
  source: DatasetSource["Type"],
  plan: RunPlan,
  status: PlanStatus.PlanStatus,
  labels: ReadonlySet<string>,
  from: number
): Effect.Effect<readonly [ReadonlyArray<Item>, Option.Option<number>], StrategyError | StoreError> =>
  Effect.gen(function*() {
    const ids: Array<number> = []
    const unfinished: Array<number> = []
    let position = from
    for (; position < status.ids.length && ids.length < rowsPerRead; position++) {
      const state = status.status[position]
      if (state === PlanStatus.Final) continue
      ids.push(status.ids.at(position))
      if (state === PlanStatus.Unfinished) unfinished.push(status.ids.at(position))
    }
    while (position < status.ids.length && status.status[position] === PlanStatus.Final) position++
    const next = position < status.ids.length ? Option.some(position) : Option.none()
    if (ids.length === 0) return [[], next]
    const rows = yield* source.rows(plan.datasetId, plan.split, ids).pipe(
      Effect.catchTags({
        InvalidRequest: (error) => Effect.fail(readError(plan, error.message)),
        UnknownSplit: (error) => Effect.fail(readError(plan, error.message))
      })
    )
    if (rows.length !== ids.length) {
      return yield* readError(plan, `the dataset source returned ${rows.length} rows for ${ids.length} sample ids`)
    }
    const records = unfinished.length === 0
      ? undefined
      : yield* storedRecords(store, plan.runId, unfinished, rowsPerRead)
    const items = ids.map((sampleId, index): Item => {
      const record = records?.get(sampleId)
      const row = rows[index]
      return record === undefined
        ? { sampleId, row, input: scrub(row, labels), record: undefined }
        : { sampleId, row, input: record.input, record }
    })
    return [items, next]
  })

/**
 * Runs the pipeline for one plan.
 *
 * @internal
 */
export const produce = (
  task: Task.Task<unknown, unknown, unknown>,
  settings: Settings,
  retry: RetryPolicy,
  store: TaskStore["Type"],
  source: DatasetSource["Type"],
  events: Option.Option<RunEvents.RunEvents["Type"]>,
  plan: RunPlan
): Effect.Effect<void, StrategyError | StoreError> =>
  Effect.gen(function*() {
    const status = yield* PlanStatus.read(
      store,
      plan.runId,
      plan.sampleIds,
      (record) => !TaskStages.needsScoring(record)
    )
    if (status.final === status.ids.length) return
    const runner = yield* Stage.makeRunner(settings, retry, store)
    const landed = Option.isSome(events) ? TaskStages.makeLanded(events.value, plan.runId, status) : undefined
    const context: TaskStages.Context = { task, settings, plan, landed }
    const scoring = TaskStages.scoring(context)
    const stages = [TaskStages.inference(context, scoring), scoring]
    const labels = new Set(task.labelFields)
    // a run of one page (the sidecar's usual) takes no stream
    if (status.ids.length - status.final <= rowsPerRead) {
      const [page] = yield* readPage(store, source, plan, status, labels, 0)
      return yield* runPage(runner, stages, page)
    }
    yield* pendingPages(store, source, plan, status, labels).pipe(
      Stream.mapEffect((page) => runPage(runner, stages, page), { concurrency: pagesInFlight, unordered: true }),
      Stream.runDrain
    )
  }).pipe(Effect.scoped)
