/**
 * Hosts for the multi-host test: each a network namespace of its own (`holdout-h<k>-<pid>`), joined
 * to this process's namespace by a veth pair. Every host side carries 10.77.0.1 (the test subnet's
 * gateway, where a database server for the hosts listens); each namespace gets a free address of
 * 10.77.0.0/24 with point-to-point routes both ways, so two runs of the test never share a route.
 * Needs root. Not a test file: vitest collects `*.test.ts` only.
 */
import * as Command from "@effect/platform/Command"
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"

/** The address every host reaches this namespace on (a database server listens there). */
export const gateway = "10.77.0.1"

/** The test subnet's first three octets. */
const subnet = "10.77.0"

/** A host: its namespace, its address, and the veth pair that joins it to this namespace. */
export interface Host {
  readonly index: number
  readonly namespace: string
  readonly address: string
  readonly outerLink: string
  readonly innerLink: string
}

/** A host could not be made or removed; the message says what failed and what to do. */
export class NetworkError extends Data.TaggedError("NetworkError")<{ readonly message: string }> {
  override toString() {
    return this.message
  }
}

/** What `command` printed, and its exit code. */
export const outputOf = (command: Command.Command) =>
  Effect.scoped(Effect.gen(function*() {
    const process = yield* Command.start(command)
    const [stdout, stderr, code] = yield* Effect.all([
      Stream.mkString(Stream.decodeText(process.stdout)),
      Stream.mkString(Stream.decodeText(process.stderr)),
      process.exitCode
    ], { concurrency: 3 })
    return { stdout, stderr, code }
  }))

/** Why a command failed: the first line of its stderr, or its exit code. */
export const failureOf = (output: { readonly stderr: string; readonly code: number }): string =>
  output.stderr.trim().split("\n")[0] || `exit code ${output.code}`

/** `ip <args>`: its stdout, or a NetworkError with its first line of stderr. */
export const ip = (...args: Array<string>): Effect.Effect<string, NetworkError, CommandExecutor.CommandExecutor> =>
  Effect.flatMap(outputOf(Command.make("ip", ...args)), (output) =>
    output.code === 0
      ? Effect.succeed(output.stdout)
      : Effect.fail(new NetworkError({ message: `ip ${args.join(" ")} failed: ${failureOf(output)}` }))).pipe(
      Effect.catchTag("SystemError", "BadArgument", (error) =>
        Effect.fail(
          new NetworkError({
            message: `cannot run ip (${error.message}): the multi-host test needs iproute2 (apt-get install iproute2).`
          })
        ))
    )

/** Names of this test's namespaces and links, for process `pid`. */
const names = (index: number, pid: number) => ({
  namespace: `holdout-h${index}-${pid}`,
  // interface names have at most 15 characters: "hoh" + index + "-" + a pid of up to 7 digits
  outerLink: `hoh${index}-${pid}`,
  innerLink: `hon${index}-${pid}`
})

/** Whether process `pid` still runs. */
const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as { code?: string }).code === "EPERM"
  }
}

/**
 * Removes what earlier runs of the test left behind when they died before their cleanup: the
 * namespaces and links named after a process that no longer runs.
 */
export const removeStale = Effect.gen(function*() {
  const namespaces = (yield* ip("netns", "list")).split("\n").map((line) => line.split(" ")[0] ?? "")
  for (const namespace of namespaces) {
    const match = /^holdout-h\d+-(\d+)$/.exec(namespace)
    if (match !== null && !alive(Number(match[1]))) yield* ip("netns", "delete", namespace).pipe(Effect.ignore)
  }
  const links = (yield* ip("-o", "link", "show")).split("\n").map((line) => line.split(": ")[1]?.split("@")[0] ?? "")
  for (const link of links) {
    const match = /^ho[hn]\d+-(\d+)$/.exec(link)
    if (match !== null && !alive(Number(match[1]))) yield* ip("link", "delete", link).pipe(Effect.ignore)
  }
})

/** Host numbers of the test subnet that no route or address of this namespace uses yet. */
const freeHostNumbers = Effect.gen(function*() {
  const used = new Set<number>()
  const text = (yield* ip("-4", "-o", "address", "show")) + (yield* ip("-4", "route", "show"))
  for (const match of text.matchAll(/\b10\.77\.0\.(\d+)\b/g)) used.add(Number(match[1]))
  return Array.from({ length: 252 }, (_, index) => index + 2).filter((number) => !used.has(number))
})

/** Deletes a host's namespace (its veth pair goes with it) and, if it is left, the outer link. */
const remove = (host: Pick<Host, "namespace" | "outerLink">) =>
  Effect.gen(function*() {
    yield* ip("netns", "delete", host.namespace).pipe(Effect.ignore)
    const links = yield* ip("-o", "link", "show").pipe(Effect.orElseSucceed(() => ""))
    if (links.includes(` ${host.outerLink}@`) || links.includes(` ${host.outerLink}:`)) {
      yield* ip("link", "delete", host.outerLink).pipe(Effect.ignore)
    }
  })

/** One host: its namespace with lo up, the veth pair, the addresses and the routes both ways. */
const make = (index: number, address: string) =>
  Effect.gen(function*() {
    const { innerLink, namespace, outerLink } = names(index, process.pid)
    const host: Host = { index, namespace, address, outerLink, innerLink }
    yield* Effect.acquireRelease(
      ip("netns", "add", namespace).pipe(
        Effect.mapError((error) =>
          new NetworkError({
            message: `cannot create the network namespace ${namespace} (${error.message}): ` +
              `the multi-host test needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN); run it as root.`
          })
        )
      ),
      () => remove(host)
    )
    yield* ip("link", "add", outerLink, "type", "veth", "peer", "name", innerLink)
    yield* ip("link", "set", innerLink, "netns", namespace)
    yield* ip("address", "add", `${gateway}/32`, "dev", outerLink)
    yield* ip("link", "set", outerLink, "up")
    yield* ip("route", "add", `${address}/32`, "dev", outerLink)
    yield* ip("-n", namespace, "link", "set", "lo", "up")
    yield* ip("-n", namespace, "address", "add", `${address}/32`, "dev", innerLink)
    yield* ip("-n", namespace, "link", "set", innerLink, "up")
    yield* ip("-n", namespace, "route", "add", `${gateway}/32`, "dev", innerLink)
    yield* ip("-n", namespace, "route", "add", "default", "via", gateway, "dev", innerLink)
    return host
  })

/**
 * `count` hosts, removed (namespaces and links) when the scope closes, however it closes. Stale
 * hosts of dead runs are removed first.
 */
export const hosts = (
  count: number
): Effect.Effect<ReadonlyArray<Host>, NetworkError, CommandExecutor.CommandExecutor | Scope.Scope> =>
  Effect.gen(function*() {
    yield* removeStale
    const free = yield* freeHostNumbers
    // start at a place of its own, so that two runs starting together rarely pick the same numbers
    const offset = process.pid % Math.max(1, free.length - count)
    const numbers = free.slice(offset, offset + count)
    if (numbers.length < count) {
      return yield* new NetworkError({
        message: `fewer than ${count} addresses of ${subnet}.0/24 are free: remove the namespaces of other runs.`
      })
    }
    return yield* Effect.forEach(numbers, (number, index) => make(index + 1, `${subnet}.${number}`))
  })
