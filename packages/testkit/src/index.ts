/**
 * Conformance suites for Holdout backends. A backend package calls the suite of its service from
 * a test file, then adds its own backend-specific cases.
 *
 * @since 0.1.0
 */
export * from "./Assertions.js"
export * from "./LedgerConformance.js"
export * from "./StrategyConformance.js"
export * from "./TaskStoreConformance.js"
