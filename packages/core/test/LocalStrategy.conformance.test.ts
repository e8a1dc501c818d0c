import { localStrategyConformance } from "@holdout/testkit"
import * as TaskStore from "../src/TaskStore.js"

localStrategyConformance("LocalStrategy", () => TaskStore.layerMemory)
