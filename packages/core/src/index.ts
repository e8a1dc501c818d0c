/**
 * @since 0.1.0
 */
export * as DatasetSource from "./DatasetSource.js"
export * as Engine from "./Engine.js"
export * as EvalStrategy from "./EvalStrategy.js"
export * as GroupCommit from "./GroupCommit.js"
export * as HoldoutError from "./HoldoutError.js"
export * as Ledger from "./Ledger.js"
export * as LocalStrategy from "./LocalStrategy.js"
export * as Metrics from "./Metrics.js"
export * as Model from "./Model.js"
export * as RunEvents from "./RunEvents.js"
export * as SplitAccess from "./SplitAccess.js"
export * as Stack from "./Stack.js"
export * as Task from "./Task.js"
export * as TaskStore from "./TaskStore.js"
export * as View from "./View.js"
export * as Workspace from "./Workspace.js"
