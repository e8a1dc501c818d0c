#!/usr/bin/env node
// The `holdout` executable once built (copied to packages/harness/dist/bin.js by bundle-bin.ts):
// runs the bundled command line, holdout.cjs, compiled with V8's code cache when there is one, and
// leaves a cache for the next start when there is none (or V8 rejected it). A cache holds what the
// run compiled, so there is one per command (`holdout.cjs.eval.cache`, …). Where the package's
// directory is not writable, each start compiles the bundle.
import { readFileSync, renameSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname } from "node:path"
import { fileURLToPath } from "node:url"
import * as vm from "node:vm"

const file = fileURLToPath(new URL("holdout.cjs", import.meta.url))
const command = /^[a-z][a-z-]{0,31}$/.test(process.argv[2] ?? "") ? process.argv[2] : "main"
const cacheFile = `${file}.${command}.cache`

const readCache = () => {
  try {
    return readFileSync(cacheFile)
  } catch {
    return undefined
  }
}

const cachedData = readCache()
// a CommonJS module's wrapper; the bundle's first line (#!) is blanked, keeping line numbers
const source = "(function (exports, require, module, __filename, __dirname) {" +
  readFileSync(file, "utf8").replace(/^#!.*/, "") + "\n})"
const script = new vm.Script(source, {
  filename: file,
  cachedData
})

if (cachedData === undefined || script.cachedDataRejected === true) {
  process.once("exit", () => {
    try {
      const partial = `${cacheFile}.${process.pid}`
      writeFileSync(partial, script.createCachedData())
      renameSync(partial, cacheFile)
    } catch {
      // a read-only installation: no cache
    }
  })
}

// such a script has no `import()` of its own (on Node 20): the bundle imports a user's task module
// and tsx through this one (see packages/harness/src/internal/importModule.ts)
globalThis[Symbol.for("@holdout/harness/import")] = (specifier) => import(specifier)

const module = { exports: {} }
script.runInThisContext().call(module.exports, module.exports, createRequire(file), module, file, dirname(file))
