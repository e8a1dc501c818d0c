/**
 * @since 0.1.0
 */
export * as Agent from "./Agent.js"
export * as Cli from "./Cli.js"
export * as FreeBaseline from "./FreeBaseline.js"
export * as GitWorkspace from "./GitWorkspace.js"
export * as Jobs from "./Jobs.js"
export * as Mcp from "./Mcp.js"
export * as Progress from "./Progress.js"
export * as Report from "./Report.js"
export * as Results from "./Results.js"
export * as Sidecar from "./Sidecar.js"
export * as SidecarApi from "./SidecarApi.js"
export * as StackConfig from "./StackConfig.js"
export * as Verifier from "./Verifier.js"
export * as Viewer from "./Viewer.js"
