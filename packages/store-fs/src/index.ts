/**
 * @since 0.1.0
 */
export * as FsStore from "./FsStore.js"
export * as LedgerFs from "./LedgerFs.js"
export * as TaskStoreFs from "./TaskStoreFs.js"
