/**
 * `holdout serve`: the sidecar, serving the configured stack to an optimizer over HTTP.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as HttpServer from "@effect/platform/HttpServer"
import * as Path from "@effect/platform/Path"
import { HoldoutError } from "@holdout/core"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import { createServer } from "node:http"
import { handled } from "./errors.js"
import * as Shared from "./shared.js"

/** What `serve` needs beyond the command line, loaded when it runs (start-up does without it). */
const serverModules = async () => ({
  NodeHttpServer: await import("@effect/platform-node/NodeHttpServer"),
  Sidecar: await import("../Sidecar.js")
})

/** The error code of a failure to listen (`EADDRINUSE`, `EACCES`, …), if it has one. */
const listenCode = (error: unknown): string | undefined => {
  if (typeof error !== "object" || error === null || !("_tag" in error) || error._tag !== "ServeError") return
  const cause = "cause" in error ? error.cause : undefined
  return typeof cause === "object" && cause !== null && "code" in cause ? String(cause.code) : undefined
}

export const command = Command.make(
  "serve",
  {
    config: Shared.config,
    port: Options.integer("port").pipe(
      Options.optional,
      Options.withDescription("The port, overriding sidecar.port (0 picks a free one).")
    ),
    host: Options.text("host").pipe(Options.optional, Options.withDescription("The host, overriding sidecar.host."))
  },
  (options) =>
    handled(Effect.gen(function*() {
      const StackConfig = yield* Shared.loadStackConfig
      const loaded = yield* StackConfig.load(options.config)
      const sidecar = loaded.config.sidecar
      if (sidecar === undefined) {
        return yield* new HoldoutError.ConfigError({
          message: `${options.config} has no "sidecar" section: add one, e.g. ` +
            `sidecar: { tokenFile: .holdout/admin.token, port: 8000 }.`
        })
      }
      const { NodeHttpServer, Sidecar } = yield* Effect.promise(serverModules)
      const path = yield* Path.Path
      const host = Option.getOrElse(options.host, () => sidecar.host)
      const port = Option.getOrElse(options.port, () => sidecar.port)
      const announce = Layer.effectDiscard(
        HttpServer.addressFormattedWith((address) => Console.log(`holdout sidecar listening on ${address}`))
      )
      const server = Sidecar.layer({
        tokenFile: path.resolve(loaded.baseDir, sidecar.tokenFile),
        ...(sidecar.resultsDir === undefined ? {} : { resultsDir: path.resolve(loaded.baseDir, sidecar.resultsDir) }),
        ...(sidecar.maxBodyBytes === undefined ? {} : { maxBodyBytes: sidecar.maxBodyBytes })
      }).pipe(
        Layer.provideMerge(NodeHttpServer.layer(createServer, { port, host })),
        Layer.provide(StackConfig.verifier(loaded).pipe(Layer.provideMerge(StackConfig.stack(loaded))))
      )
      // requests are logged at info level: shown unless HOLDOUT_LOG asks for less (or more)
      const explicitLevel = yield* Config.option(Config.string("HOLDOUT_LOG"))
      // announced once the routes are installed: a client that waits for this line is never early
      yield* Layer.launch(announce.pipe(Layer.provide(server))).pipe(
        (launched) => Option.isNone(explicitLevel) ? Logger.withMinimumLogLevel(launched, LogLevel.Info) : launched,
        Effect.catchIf(
          (error) => listenCode(error) !== undefined,
          (error) =>
            Effect.fail(
              new HoldoutError.ConfigError({
                message: listenCode(error) === "EADDRINUSE"
                  ? `port ${port} on ${host} is in use: stop what listens there, or pass --port <n> ` +
                    `(--port 0 picks a free one).`
                  : `cannot listen on ${host}:${port} (${listenCode(error)}): pass another --host or --port.`
              })
            )
        )
      )
    }))
).pipe(
  Command.withDescription(Shared.describedWith(
    "Serve the stack to an optimizer over HTTP (the sidecar); each request is logged on stderr.",
    ["serve -c holdout.yaml", "serve -c holdout.yaml --port 0"]
  ))
)
