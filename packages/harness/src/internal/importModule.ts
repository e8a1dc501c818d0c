/**
 * Imports a module of the user's (a task module, a stack module) by its path. `.js` and `.mjs` load
 * as they are; TypeScript loads natively where the runtime strips types (Deno, tsx, vitest, newer
 * Node), and otherwise through tsx, registered the first time it is needed: an installed `holdout`
 * runs on plain Node without a loader until a `.ts` module is asked for.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { pathToFileURL } from "node:url"
import type * as Tsx from "tsx/esm/api"

const typeScript = /\.[cm]?tsx?$/

/**
 * The importer the built executable's launcher provides: the bundle runs as a script compiled with
 * V8's code cache, and such a script has no `import()` of its own on Node 20.
 */
const hostImport = (globalThis as { readonly [key: symbol]: unknown })[Symbol.for("@holdout/harness/import")] as
  | ((specifier: string) => Promise<unknown>)
  | undefined

const load = (url: string) =>
  Effect.tryPromise({
    try: () => (hostImport === undefined ? import(url) : hostImport(url)) as Promise<Record<string, unknown>>,
    catch: (error) => error
  })

const isUnknownExtension = (error: unknown) =>
  typeof error === "object" && error !== null && "code" in error && error.code === "ERR_UNKNOWN_FILE_EXTENSION"

let registered: Promise<unknown> | undefined

/** tsx's loader hooks, registered once per process. */
const registerTsx = Effect.tryPromise({
  try: () =>
    registered ??= (hostImport === undefined
      ? import("tsx/esm/api")
      : hostImport("tsx/esm/api") as Promise<typeof Tsx>).then((tsx) => tsx.register()),
  catch: (error) => error
})

/** The namespace of the module at `file` (an absolute path). */
export const importModule = (file: string): Effect.Effect<Record<string, unknown>, unknown> => {
  const url = pathToFileURL(file).href
  return load(url).pipe(
    Effect.catchIf(
      (error) => typeScript.test(file) && isUnknownExtension(error),
      () =>
        registerTsx.pipe(
          // under a URL of its own: the failed import is remembered under the first
          Effect.zipRight(load(`${url}?tsx`))
        )
    )
  )
}
