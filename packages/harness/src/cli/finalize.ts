/**
 * `holdout finalize`: the verifier's answer, and a flat `reward.json`.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { handled } from "./errors.js"
import * as Shared from "./shared.js"

export const command = Command.make(
  "finalize",
  {
    url: Shared.url,
    tokenFile: Options.file("token-file", { exists: "yes" }).pipe(
      Options.withDescription("The admin token file the sidecar wrote (sidecar.tokenFile).")
    ),
    output: Options.file("output").pipe(Options.optional, Options.withDescription("Where to write reward.json."))
  },
  (options) =>
    handled(
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const token = (yield* fs.readFileString(options.tokenFile)).trim()
        const api = yield* Shared.client(options.url, token)
        const answer = yield* api.admin.finalize()
        yield* Console.log(JSON.stringify(answer, null, 2))
        if (Option.isSome(options.output)) {
          const Verifier = yield* Effect.promise(() => import("../Verifier.js"))
          yield* Verifier.writeRewards(options.output.value, answer.rewards)
        }
      }).pipe(Effect.provide(Shared.clientLayer))
    )
).pipe(
  Command.withDescription(Shared.describedWith(
    "Choose and score the final candidate as the verifier; every call gives the same answer.",
    ["finalize --token-file .holdout/admin.token --output reward.json"]
  ))
)
