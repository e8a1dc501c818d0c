/**
 * Test helpers shared by the suites.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"

/**
 * The error an effect fails with. An unexpected success becomes a defect with a short message
 * (unlike `Effect.flip`, which would fail the test with the whole success value as its error).
 *
 * @since 0.1.0
 * @category assertions
 */
export const expectFailure = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<E, never, R> =>
  Effect.flatMap(Effect.either(effect), (result) =>
    Either.isLeft(result)
      ? Effect.succeed(result.left)
      : Effect.dieMessage("Expected the effect to fail, but it succeeded."))
