import * as NodeContext from "@effect/platform-node/NodeContext"
import * as FileSystem from "@effect/platform/FileSystem"
import { assert, describe, it } from "@effect/vitest"
import { Engine, type HoldoutError } from "@holdout/core"
import { StackConfig } from "@holdout/harness"
import { expectFailure } from "@holdout/testkit"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const fixture = fileURLToPath(new URL("./fixtures/stack", import.meta.url))

/** A stack over the fixture's data and task (YAML): its store, its budgets' lines and further sections. */
const fixtureYaml = (store: string, budgets: string, sections: string) =>
  `store: ${store}
datasets: { kind: jsonl, dir: ${JSON.stringify(join(fixture, "data"))} }
strategy: { kind: task, module: ${JSON.stringify(join(fixture, "task.ts"))} }
budgets:
${budgets}
policy: { train: viewable, validation: non_viewable, test: no_access }
${sections}`

/** A memory stack over the fixture's data, with `releases` (YAML) added. */
const yaml = (releases: string, verifier = "") =>
  fixtureYaml(
    "{ kind: memory }",
    "  - { datasetId: qa, split: train, runs: 5 }\n  - { datasetId: qa, split: validation, runs: 5 }",
    `${releases}\n${verifier}`
  )

const parse = (text: string) => StackConfig.parse("holdout.yaml", text)

const message = (result: Either.Either<StackConfig.HoldoutConfig, HoldoutError.ConfigError>): string =>
  Either.match(result, { onLeft: (error) => error.message, onRight: () => "" })

/** A configuration as if loaded from the fixture's directory; one that does not decode fails the test. */
const loadedOf = (text: string) =>
  Effect.gen(function*() {
    const parsed = parse(text)
    assert.isTrue(Either.isRight(parsed), message(parsed))
    if (Either.isLeft(parsed)) return yield* Effect.die("unparsed")
    return { config: parsed.right, baseDir: fixture, file: join(fixture, "holdout.yaml") }
  })

describe("StackConfig — releases", () => {
  it("each split's mechanism becomes EngineOptions.releases", () => {
    const parsed = parse(yaml(`releases:
  validation: { kind: thresholdout, reference: train, threshold: 0.04, sigma: 0.01, overfitBudget: 3 }
  train: { kind: exact }`))
    assert.isTrue(Either.isRight(parsed), message(parsed))
    if (Either.isLeft(parsed)) return
    assert.deepStrictEqual(StackConfig.releases(parsed.right), {
      validation: { _tag: "thresholdout", reference: "train", threshold: 0.04, sigma: 0.01, overfitBudget: 3 },
      train: { _tag: "exact" }
    })
    const ladder = parse(yaml(`releases: { validation: { kind: ladder, eta: 0.05 } }`))
    assert.deepStrictEqual(Either.getOrThrow(Either.map(ladder, StackConfig.releases)), {
      validation: { _tag: "ladder", eta: 0.05 }
    })
    // no releases: every split is exact
    assert.deepStrictEqual(Either.getOrThrow(Either.map(parse(yaml("")), StackConfig.releases)), {})
  })

  it("decoding is strict: unknown keys, unknown kinds, missing and invalid fields are named, with the shapes", () => {
    const cases: ReadonlyArray<readonly [string, ReadonlyArray<string>]> = [
      [
        `releases: { validation: { kind: thresholdout, reference: train, threshold: 0.04, sigma: 0.01, overfitBudget: 3, sigmaa: 1 } }`,
        [`unknown field "releases.validation.sigmaa"`, `"sigma"`]
      ],
      [`releases: { validation: { kind: ladderr, eta: 0.01 } }`, [`"releases.validation.kind"`, `"ladderr"`]],
      [`releases: { validation: { kind: ladder, eta: -1 } }`, [`"releases.validation.eta"`, "positive"]],
      [
        `releases: { validation: { kind: thresholdout, reference: train, threshold: 0.04 } }`,
        [`"releases.validation.sigma" is missing`, `"releases.validation.overfitBudget" is missing`]
      ],
      [`releases: { validation: { _tag: ladder, eta: 0.01 } }`, [`"releases.validation`]],
      [
        `releases: { validation: { kind: thresholdout, reference: train, threshold: 0.04, sigma: 0.01, overfitBudget: 0 } }`,
        [
          `"releases.validation.overfitBudget"`
        ]
      ]
    ]
    for (const [releases, expected] of cases) {
      const text = message(parse(yaml(releases)))
      assert.include(text, "holdout.yaml is not a valid Holdout configuration", releases)
      for (const part of expected) assert.include(text, part, `${releases}: ${text}`)
      // what a release looks like, and what to do
      assert.include(text, "{ kind: ladder, eta: η }", text)
      assert.include(text, "Fix the file and run again.", text)
      assert.notInclude(text, "Expected undefined", text)
      assert.notInclude(text, "\n", text)
    }
    assert.include(
      message(parse(yaml("", "verifier: { mode: auto_best, targets: [], significance: 1.5 }"))),
      "significance"
    )
  })

  it.effect("a stack from the configuration tells through its mechanism and meters the overfitting budget", () =>
    Effect.gen(function*() {
      const parsed = parse(yaml(`releases:
  validation: { kind: thresholdout, reference: train, threshold: 0.04, sigma: 0.01, overfitBudget: 3 }`))
      assert.isTrue(Either.isRight(parsed))
      if (Either.isLeft(parsed)) return
      const stack = StackConfig.stack({ config: parsed.right, baseDir: fixture, file: join(fixture, "holdout.yaml") })
      yield* Effect.gen(function*() {
        const engine = yield* Engine.Engine
        // thresholdout compares with the candidate's mean on the reference split
        yield* engine.evaluate({ datasetId: "qa", split: "train", candidate: { id: "exact" } })
        const experiment = yield* engine.evaluate({ datasetId: "qa", split: "validation", candidate: { id: "exact" } })
        assert.strictEqual(experiment.release?.mechanism, "thresholdout")
        const validation = (yield* engine.status()).find((entry) => entry.split === "validation")
        assert.deepStrictEqual(validation?.overfit?.limit, 3)
      }).pipe(Effect.provide(stack.pipe(Layer.provide(NodeContext.layer))))
    }))

  it.effect("a mechanism the tiers do not allow is a ConfigError saying what to do", () =>
    Effect.gen(function*() {
      for (
        const [releases, expected] of [
          [`releases: { train: { kind: ladder, eta: 0.01 } }`, "Tier it non_viewable or drop its release"],
          [
            `releases: { validation: { kind: thresholdout, reference: test, threshold: 0.04, sigma: 0.01, overfitBudget: 3 } }`,
            "Give a split the optimizer evaluates candidates on"
          ]
        ] as const
      ) {
        const parsed = parse(yaml(releases))
        assert.isTrue(Either.isRight(parsed))
        if (Either.isLeft(parsed)) return
        const stack = StackConfig.stack({ config: parsed.right, baseDir: fixture, file: join(fixture, "holdout.yaml") })
        const built = yield* Effect.either(
          Layer.build(stack.pipe(Layer.provide(NodeContext.layer))).pipe(Effect.scoped)
        )
        assert.isTrue(Either.isLeft(built))
        if (Either.isRight(built)) return
        assert.strictEqual(built.left._tag, "ConfigError")
        assert.include(built.left.message, expected)
      }
    }))
})

describe("StackConfig — engine", () => {
  /** The fixture's stack on the SQLite file `filename`, with an `engine` section of its own. */
  const onFile = (filename: string, engine: string) =>
    fixtureYaml(
      `{ kind: sqlite, filename: ${JSON.stringify(filename)} }`,
      "  - { datasetId: qa, split: train, runs: 5 }",
      engine
    )

  /** The engine of the stack a configuration describes (scoped). */
  const engineOf = (text: string) =>
    Effect.gen(function*() {
      const stack = StackConfig.stack(yield* loadedOf(text))
      const context = yield* Layer.build(stack.pipe(Layer.provide(NodeContext.layer)))
      return Context.get(context, Engine.Engine)
    })

  const trainRuns = (engine: Engine.Engine["Type"]) =>
    Effect.map(engine.status(), (status) => status.find((entry) => entry.split === "train")?.spent.runs)

  it.scoped("statusMaxAge reaches the engine: 0 shows another process's charge at once, 1 hour not yet", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const filename = join(yield* fs.makeTempDirectoryScoped(), "holdout.db")
      const exact = yield* engineOf(onFile(filename, "engine: { statusMaxAge: 0 }"))
      const lagging = yield* engineOf(onFile(filename, "engine: { statusMaxAge: 1 hour }"))
      const other = yield* engineOf(onFile(filename, ""))
      assert.strictEqual(yield* trainRuns(exact), 0)
      assert.strictEqual(yield* trainRuns(lagging), 0)
      yield* other.evaluate({ datasetId: "qa", split: "train", candidate: { id: "elsewhere" } })
      assert.strictEqual(yield* trainRuns(exact), 1)
      assert.strictEqual(yield* trainRuns(lagging), 0)
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("an unknown engine option is named; a statusMaxAge that is no duration is a ConfigError naming it", () =>
    Effect.gen(function*() {
      assert.include(
        message(parse(onFile("holdout.db", "engine: { statusMaxAg: 0 }"))),
        `unknown field "engine.statusMaxAg"`
      )
      assert.include(message(parse(onFile("holdout.db", "engine: { statusMaxAge: -1 }"))), "engine.statusMaxAge")
      const fs = yield* FileSystem.FileSystem
      const filename = join(yield* fs.makeTempDirectoryScoped(), "holdout.db")
      const error = yield* expectFailure(engineOf(onFile(filename, "engine: { statusMaxAge: soon }")))
      assert.strictEqual(error._tag, "ConfigError")
      assert.include(error.message, "statusMaxAge must be a finite duration")
    }).pipe(Effect.provide(NodeContext.layer)))
})

describe("StackConfig — the Harbor strategy's options", () => {
  /** A stack with the Harbor strategy, its `harbor` section given as YAML. */
  const harborYaml = (harbor: string) =>
    `store: { kind: memory }
datasets: { kind: harbor, datasetId: tb, partition: { train: [a] } }
strategy: { kind: harbor, dir: harbor, harbor: ${harbor} }
budgets: [{ datasetId: tb, split: train, runs: 1 }]
policy: { train: viewable }
`

  const build = (text: string) =>
    Effect.gen(function*() {
      const stack = StackConfig.stack(yield* loadedOf(text))
      return yield* Effect.either(Layer.build(stack.pipe(Layer.provide(NodeContext.layer))).pipe(Effect.scoped))
    })

  it.effect("the levers are accepted; a misspelt or invalid one is a ConfigError naming it", () =>
    Effect.gen(function*() {
      const accepted = yield* build(harborYaml(
        `{ taskSource: org/tasks, agent: "a:A", infraRetryRounds: 2, infraRetryDelaySeconds: 5, ` +
          `feedbackTranscripts: true, feedbackMaxBytes: 1000, exposeAttemptDetail: true }`
      ))
      assert.isTrue(Either.isRight(accepted), Either.isLeft(accepted) ? accepted.left.message : "")
      for (
        const [field, harbor] of [
          ["exposeAttemptDetails", `{ taskSource: org/tasks, agent: "a:A", exposeAttemptDetails: true }`],
          ["infraRetryRounds", `{ taskSource: org/tasks, agent: "a:A", infraRetryRounds: -1 }`]
        ] as const
      ) {
        const refused = yield* build(harborYaml(harbor))
        assert.isTrue(Either.isLeft(refused), field)
        if (Either.isRight(refused)) continue
        assert.strictEqual(refused.left._tag, "ConfigError")
        assert.include(refused.left.message, `"${field}"`)
      }
    }))
})

describe("StackConfig — levers", () => {
  /** The fixture's stack with `budgets` and `verifier` sections of one's own. */
  const levers = (budgets: string, verifier: string) => fixtureYaml("{ kind: memory }", budgets, verifier)

  const build = (text: string) =>
    Effect.gen(function*() {
      const loaded = yield* loadedOf(text)
      const layer = StackConfig.verifier(loaded).pipe(Layer.provideMerge(StackConfig.stack(loaded)))
      return yield* Effect.either(Layer.build(layer.pipe(Layer.provide(NodeContext.layer))).pipe(Effect.scoped))
    })

  const autoBest = "verifier: { mode: auto_best, selection: { datasetId: qa, split: validation }, targets: [], " +
    "baseline: main"

  it.effect("reservedForFinalize, freeBaseline and poolTrees are read; a stack with them starts", () =>
    Effect.gen(function*() {
      const text = levers(
        "  - { datasetId: qa, split: validation, runs: 5, samples: 100, reservedForFinalize: { runs: 2, samples: 40 } }",
        `${autoBest}, freeBaseline: true }`
      )
      const parsed = parse(text)
      assert.isTrue(Either.isRight(parsed), message(parsed))
      if (Either.isLeft(parsed)) return
      assert.deepStrictEqual(parsed.right.budgets[0]?.reservedForFinalize, { runs: 2, samples: 40 })
      assert.strictEqual(parsed.right.verifier?.freeBaseline, true)
      assert.isTrue(Either.isRight(yield* build(text)))
    }))

  it.effect("a reserve over its budget, freeBaseline without a baseline and poolTrees without git are ConfigErrors", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [string, string, string]> = [
        [
          "  - { datasetId: qa, split: validation, runs: 2, reservedForFinalize: { runs: 3 } }",
          "",
          "more than its 2 runs"
        ],
        [
          "  - { datasetId: qa, split: validation, runs: 2 }",
          "verifier: { mode: auto_best, selection: { datasetId: qa, split: validation }, targets: [], " +
          "freeBaseline: true }",
          "needs a baseline"
        ],
        [
          "  - { datasetId: qa, split: validation, runs: 2 }",
          `${autoBest}, poolTrees: true }`,
          "needs a git workspace"
        ]
      ]
      for (const [budgets, verifier, expected] of cases) {
        const built = yield* build(levers(budgets, verifier))
        assert.isTrue(Either.isLeft(built), expected)
        if (Either.isRight(built)) continue
        assert.strictEqual(built.left._tag, "ConfigError")
        assert.include(built.left.message, expected)
      }
    }))

  it("decoding is strict: an unknown field of reservedForFinalize or a mistyped lever is named", () => {
    const unknown = message(parse(levers(
      "  - { datasetId: qa, split: validation, runs: 5, reservedForFinalize: { run: 2 } }",
      ""
    )))
    assert.include(unknown, `unknown field "budgets.0.reservedForFinalize.run"`)
    const mistyped = message(
      parse(levers("  - { datasetId: qa, split: validation, runs: 5 }", `${autoBest}, freeBaseline: yes }`))
    )
    assert.include(mistyped, `"verifier.freeBaseline"`)
  })
})
