/**
 * A `DatasetSource` whose rows are Harbor tasks: `{ split: [task, …] }`, the sample id being the
 * position in the list. A task is a name, or `{ include, resultKey }` when the `-i` glob differs
 * from the `task_name` Harbor writes (`org/name` for registry and named tasks).
 *
 * @since 0.1.0
 */
import { DatasetSource, HoldoutError } from "@holdout/core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"

/**
 * One Harbor task as a row: what to pass to `-i`, and the `task_name` its trials carry.
 *
 * @since 0.1.0
 * @category models
 */
export const HarborTask = Schema.Struct({ include: Schema.NonEmptyString, resultKey: Schema.NonEmptyString })

/**
 * @since 0.1.0
 * @category models
 */
export type HarborTask = typeof HarborTask.Type

/**
 * A partition as configured: per split, task names or `{ include, resultKey }`.
 *
 * @since 0.1.0
 * @category models
 */
export type Partition = Readonly<Record<string, ReadonlyArray<string | HarborTask>>>

const isTask = Schema.is(HarborTask)

/**
 * Checks a partition and turns every entry into a `HarborTask`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const normalize = (
  partition: Partition
): Effect.Effect<Readonly<Record<string, ReadonlyArray<HarborTask>>>, HoldoutError.ConfigError> =>
  Effect.suspend(() => {
    const splits = Object.entries(partition)
    if (splits.length === 0) {
      return Effect.fail(
        new HoldoutError.ConfigError({ message: "The Harbor partition has no split; list the tasks of each split." })
      )
    }
    const result: Record<string, ReadonlyArray<HarborTask>> = {}
    for (const [split, tasks] of splits) {
      const rows: Array<HarborTask> = []
      const seen = new Set<string>()
      for (const [index, task] of tasks.entries()) {
        const row = typeof task === "string" && task.length > 0 ? { include: task, resultKey: task } : task
        if (!isTask(row)) {
          return Effect.fail(
            new HoldoutError.ConfigError({
              message: `Task #${index + 1} of split "${split}" must be a task name or { include, resultKey }, ` +
                `got ${JSON.stringify(task)}.`
            })
          )
        }
        if (seen.has(row.resultKey)) {
          return Effect.fail(
            new HoldoutError.ConfigError({ message: `Split "${split}" lists task "${row.resultKey}" twice.` })
          )
        }
        seen.add(row.resultKey)
        rows.push(row)
      }
      result[split] = rows
    }
    return Effect.succeed(result)
  })

/**
 * The Harbor tasks of a partition as the rows of dataset `datasetId`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: {
  readonly datasetId: string
  readonly partition: Partition
}): Layer.Layer<DatasetSource.DatasetSource, HoldoutError.ConfigError> =>
  Layer.effect(
    DatasetSource.DatasetSource,
    Effect.map(normalize(options.partition), (splits) => DatasetSource.makeRecords({ [options.datasetId]: splits }))
  )
