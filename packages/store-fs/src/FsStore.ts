/**
 * The file-system store of a stack: a `Ledger` and a `TaskStore` in one directory.
 *
 * @since 0.1.0
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import type { HoldoutError, Ledger, Model, TaskStore } from "@holdout/core"
import * as Layer from "effect/Layer"
import * as LedgerFs from "./LedgerFs.js"
import * as TaskStoreFs from "./TaskStoreFs.js"

/**
 * The ledger journal (`<dir>/ledger.jsonl`) and the task log (`<dir>/tasks.jsonl`) of one
 * directory.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: {
  readonly dir: string
  readonly budgets: ReadonlyArray<Model.SplitBudget>
  readonly onCorrupt?: "fail" | "exhaust"
  /** The journal size past which the ledger journal and the task log are rewritten (default 64 MiB). */
  readonly compactAfterBytes?: number
}): Layer.Layer<
  Ledger.Ledger | TaskStore.TaskStore,
  HoldoutError.LedgerCorrupt | HoldoutError.LedgerLocked | HoldoutError.ConfigError | HoldoutError.StoreError,
  FileSystem.FileSystem | Path.Path
> =>
  Layer.merge(
    LedgerFs.layer({
      path: `${options.dir}/ledger.jsonl`,
      budgets: options.budgets,
      ...(options.onCorrupt === undefined ? {} : { onCorrupt: options.onCorrupt }),
      ...(options.compactAfterBytes === undefined ? {} : { compactAfterBytes: options.compactAfterBytes })
    }),
    TaskStoreFs.layer({
      dir: options.dir,
      ...(options.compactAfterBytes === undefined ? {} : { compactAfterBytes: options.compactAfterBytes })
    })
  )
