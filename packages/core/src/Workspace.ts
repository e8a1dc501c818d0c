/**
 * A place where a candidate's code is checked out, for strategies that run it. A checkout is
 * scoped: it is released when the scope (the run) closes.
 *
 * A workspace also says what a candidate id names: `resolve` turns the id a caller gave into the
 * one the run is recorded under (for git, a full commit hash), or refuses it. The engine resolves
 * every candidate before anything is charged.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { InvalidRequest, StrategyError } from "./HoldoutError.js"
import type { Candidate } from "./Model.js"

/**
 * The workspace service.
 *
 * @since 0.1.0
 * @category tags
 */
export class Workspace extends Context.Tag("@holdout/core/Workspace")<Workspace, {
  /**
   * The candidate as it is to be recorded and checked out: its id made exact (for git, the full
   * commit hash; the name given is kept as `label` when there was none). Resolving a resolved
   * candidate returns it unchanged. An id that names nothing evaluable is `InvalidRequest`; a
   * workspace that cannot answer is `StrategyError`. Neither message carries a path of this
   * machine or a tool's raw output.
   */
  readonly resolve: (candidate: Candidate) => Effect.Effect<Candidate, InvalidRequest | StrategyError>
  /** A directory holding the candidate's code, valid until the scope closes. */
  readonly checkout: (candidate: Candidate) => Effect.Effect<string, StrategyError, Scope.Scope>
  /**
   * Optional: an id of what a candidate evaluates, equal for candidates whose content is the same
   * (for git, the commit's tree hash: re-commits of one tree share it). A workspace without it treats
   * every candidate id as content of its own.
   */
  readonly contentOf?: (candidate: Candidate) => Effect.Effect<string, InvalidRequest | StrategyError>
}>() {}

/**
 * A workspace that is always the same directory, whatever the candidate; a candidate resolves to
 * itself.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerStatic = (path: string): Layer.Layer<Workspace> =>
  Layer.succeed(Workspace, { resolve: Effect.succeed, checkout: () => Effect.succeed(path) })
