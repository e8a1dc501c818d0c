/**
 * A place where a candidate's code is checked out, for strategies that run it. A checkout is
 * scoped: it is released when the scope (the run) closes.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { StrategyError } from "./HoldoutError.js"
import type { Candidate } from "./Model.js"

/**
 * The workspace service.
 *
 * @since 0.1.0
 * @category tags
 */
export class Workspace extends Context.Tag("@holdout/core/Workspace")<Workspace, {
  /** A directory holding the candidate's code, valid until the scope closes. */
  readonly checkout: (candidate: Candidate) => Effect.Effect<string, StrategyError, Scope.Scope>
}>() {}

/**
 * A workspace that is always the same directory, whatever the candidate.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerStatic = (path: string): Layer.Layer<Workspace> =>
  Layer.succeed(Workspace, { checkout: () => Effect.succeed(path) })
