/**
 * @since 0.1.0
 */
export * as GitWorkspace from "./GitWorkspace.js"
