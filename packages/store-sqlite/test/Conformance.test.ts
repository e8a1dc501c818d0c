import * as NodeContext from "@effect/platform-node/NodeContext"
import * as FileSystem from "@effect/platform/FileSystem"
import { SqliteStore } from "@holdout/store-sqlite"
import { ledgerConformance, taskStoreConformance } from "@holdout/testkit"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

// better-sqlite3 is a native Node addon that does not load under Deno (DESIGN §1): under Deno the
// libsql client runs the same suites.
const isDeno = "Deno" in globalThis

const tempFile = Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped()).pipe(
  Effect.map((dir) => `${dir}/holdout.db`),
  Effect.provide(NodeContext.layer)
)

const onNode = (open: typeof SqliteStore.layer) => (options: SqliteStore.Options) =>
  open(options).pipe(Layer.provide(NodeContext.layer))

const clients = [
  ...(isDeno ? [] : [["better-sqlite3", onNode(SqliteStore.layer)] as const]),
  ["libsql", onNode(SqliteStore.layerLibsql)] as const
]

for (const [name, open] of clients) {
  ledgerConformance(`sqlite (${name})`, {
    makeLocation: Effect.map(tempFile, (filename) => (budgets) => open({ filename, budgets })),
    persistent: true
  })
  taskStoreConformance(`sqlite (${name})`, {
    makeLocation: Effect.map(tempFile, (filename) => () => open({ filename, budgets: [] })),
    persistent: true
  })
}
