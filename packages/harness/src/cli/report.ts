/**
 * `holdout report`: scores per candidate and split, and the budgets left.
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
  "report",
  {
    ...Shared.stackOptions,
    html: Options.file("html").pipe(
      Options.optional,
      Options.withDescription("Also write a self-contained HTML page.")
    ),
    ...Shared.formats
  },
  (options) =>
    handled(
      Effect.gen(function*() {
        yield* Shared.oneFormat(options)
        const Report = yield* Effect.promise(() => import("../Report.js"))
        // the tables read the runs' stored metrics, no sample; only the HTML page gathers the viewer's data
        const data = yield* Report.collect
        if (options.json) yield* Console.log(JSON.stringify(data, null, 2))
        else if (options.csv) yield* Console.log(Report.csv(data))
        else yield* Console.log(Report.text(data))
        if (Option.isSome(options.html)) {
          const fs = yield* FileSystem.FileSystem
          yield* fs.writeFileString(options.html.value, yield* Report.html)
          yield* Console.error(`HTML report: ${options.html.value}`)
        }
      }).pipe(Effect.provide(Shared.stackOf(options.config, options.stack)))
    )
).pipe(
  Command.withDescription(Shared.describedWith(
    "Scores per candidate and split (whole-split runs and subsets apart, failed runs counted) and the budgets left.",
    ["report -c holdout.yaml", "report -c holdout.yaml --html report.html", "report -c holdout.yaml --csv > report.csv"]
  ))
)
