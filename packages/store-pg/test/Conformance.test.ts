import { PgStore } from "@holdout/store-pg"
import { ledgerConformance, localStrategyConformance, taskStoreConformance } from "@holdout/testkit"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { freshDatabase } from "./support.js"

// Each location is a database of its own on the test server; opening it again is a reopen.
ledgerConformance("postgres", {
  makeLocation: Effect.map(freshDatabase("ledger"), (url) => (budgets) => PgStore.layer({ url, budgets })),
  persistent: true
})

taskStoreConformance("postgres", {
  makeLocation: Effect.map(freshDatabase("tasks"), (url) => () => PgStore.layer({ url, budgets: [] })),
  persistent: true
})

// The local strategy writing to the PostgreSQL task store (its progress is kept by the store).
localStrategyConformance(
  "LocalStrategy on postgres",
  () => Layer.unwrapScoped(Effect.map(freshDatabase("strategy"), (url) => PgStore.layer({ url, budgets: [] })))
)
