import { taskStoreConformance } from "@holdout/testkit"
import * as Effect from "effect/Effect"
import * as TaskStore from "../src/TaskStore.js"

taskStoreConformance("memory", {
  makeLocation: Effect.succeed(() => TaskStore.layerMemory),
  persistent: false
})
