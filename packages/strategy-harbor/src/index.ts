/**
 * @since 0.1.0
 */
export * as Collation from "./Collation.js"
export * as HarborArgs from "./HarborArgs.js"
export * as HarborConfig from "./HarborConfig.js"
export * as HarborDataset from "./HarborDataset.js"
export * as HarborLauncher from "./HarborLauncher.js"
export * as HarborProcess from "./HarborProcess.js"
export * as HarborResult from "./HarborResult.js"
export * as HarborStrategy from "./HarborStrategy.js"
export * as HarborTranscript from "./HarborTranscript.js"
