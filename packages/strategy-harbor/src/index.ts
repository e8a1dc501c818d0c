/**
 * @since 0.1.0
 */
export * as Collation from "./Collation.js"
export * as HarborResult from "./HarborResult.js"
