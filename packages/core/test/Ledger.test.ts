import { ledgerConformance } from "@holdout/testkit"
import * as Effect from "effect/Effect"
import * as Ledger from "../src/Ledger.js"

ledgerConformance("memory", {
  makeLocation: Effect.succeed(Ledger.layerMemory),
  persistent: false
})
