/**
 * The Harbor task compiler, without Docker: the strict build.yaml, the rendered `task.toml` under a
 * schema of Harbor's task configuration, the compose file under a schema of the compose parts it
 * uses, the information boundary of the stack (secrets, token, store and jobs), and an outer trial
 * simulated on this machine: the compiled sidecar started from its rendered configuration, the
 * rendered `solve.sh` and `test.sh` run as processes, the fake harbor for the nested runs.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { assert, describe, it } from "@effect/vitest"
import { expectFailure } from "@holdout/testkit"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { spawn, spawnSync } from "node:child_process"
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync
} from "node:fs"
import { createRequire } from "node:module"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import * as Toml from "toml"
import * as Yaml from "yaml"
import * as HarborBuild from "../src/HarborBuild.js"
import { awaitAddress, bin, environment, holdout, root, sidecarListening, stopAll, track } from "./helpers.js"

const exampleBuild = join(root, "examples", "harbor-task", "build.yaml")
const fakeHarbor = createRequire(import.meta.url).resolve("@holdout/strategy-harbor/fake-harbor")
const tsxLoader = pathToFileURL(join(root, "node_modules", "tsx", "dist", "loader.mjs")).href
const packageNames = ["core", "harness", "store-fs", "store-pg", "store-sqlite", "strategy-harbor"]

/** A scratch directory with stand-ins for the packed packages (the build only copies them). */
const scratchDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "holdout-harbor-build-"))
  mkdirSync(join(dir, "packs"))
  for (const name of packageNames) writeFileSync(join(dir, "packs", `holdout-${name}-0.1.0.tgz`), "packed\n")
  return dir
}

const withScratch = <A, E, R>(use: (dir: string) => Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(scratchDir),
    use,
    (dir) => Effect.zipRight(stopAll, Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
  )

const buildExample = (dir: string, options: HarborBuild.BuildOptions = {}) =>
  HarborBuild.build(exampleBuild, join(dir, "task"), { packages: join(dir, "packs"), env: {}, ...options }).pipe(
    Effect.provide(NodeContext.layer)
  )

/** A build.yaml next to the example's, with `edit` applied to the example's document. */
const variant = (dir: string, edit: (document: Record<string, unknown>) => Record<string, unknown>) => {
  const document = Yaml.parse(readFileSync(exampleBuild, "utf8")) as Record<string, unknown>
  const file = join(dir, "build.yaml")
  const absolute = (relative: string) => join(root, "examples", "harbor-task", relative)
  writeFileSync(
    file,
    Yaml.stringify(edit({
      ...document,
      agentRepo: absolute(document.agentRepo as string),
      innerTask: absolute(document.innerTask as string),
      packages: join(dir, "packs")
    }))
  )
  return file
}

/** Harbor's task configuration (`task.toml`, schema 1.3), the parts a task may set. */
const Seconds = Schema.Number.pipe(Schema.positive())
const HarborTaskToml = Schema.Struct({
  schema_version: Schema.optional(Schema.Literal("1.0", "1.1", "1.2", "1.3")),
  version: Schema.optional(Schema.String),
  task: Schema.optional(Schema.Struct({
    name: Schema.String.pipe(Schema.pattern(/^[a-z0-9][a-z0-9._-]*\/[a-z0-9][a-z0-9._-]*$/)),
    description: Schema.optional(Schema.String),
    authors: Schema.optional(
      Schema.Array(Schema.Struct({ name: Schema.String, email: Schema.optional(Schema.String) }))
    ),
    keywords: Schema.optional(Schema.Array(Schema.String))
  })),
  metadata: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown })),
  agent: Schema.optional(
    Schema.Struct({ timeout_sec: Schema.optional(Seconds), user: Schema.optional(Schema.String) })
  ),
  verifier: Schema.optional(Schema.Struct({
    timeout_sec: Schema.optional(Seconds),
    env: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String })),
    user: Schema.optional(Schema.String),
    environment_mode: Schema.optional(Schema.Literal("shared", "separate")),
    environment: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown })),
    collect: Schema.optional(Schema.Unknown)
  })),
  environment: Schema.optional(Schema.Struct({
    build_timeout_sec: Schema.optional(Seconds),
    docker_image: Schema.optional(Schema.String),
    os: Schema.optional(Schema.String),
    cpus: Schema.optional(Schema.Number),
    memory_mb: Schema.optional(Schema.Number),
    storage_mb: Schema.optional(Schema.Number),
    gpus: Schema.optional(Schema.Number),
    gpu_types: Schema.optional(Schema.Array(Schema.String)),
    env: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String }))
  })),
  solution: Schema.optional(
    Schema.Struct({ env: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String })) })
  ),
  source: Schema.optional(Schema.String)
})

/** The parts of the compose specification the rendered file uses. */
const Compose = Schema.Struct({
  services: Schema.Record({
    key: Schema.String,
    value: Schema.Struct({
      build: Schema.Struct({ context: Schema.String, dockerfile: Schema.String }),
      user: Schema.optional(Schema.String),
      command: Schema.Array(Schema.String),
      working_dir: Schema.optional(Schema.String),
      environment: Schema.Record({ key: Schema.String, value: Schema.String }),
      volumes: Schema.Array(Schema.String.pipe(Schema.pattern(/^[a-z_]+:\/[^:]*(:ro)?$/))),
      depends_on: Schema.optional(Schema.Record({
        key: Schema.String,
        value: Schema.Struct({ condition: Schema.Literal("service_started", "service_healthy") })
      })),
      healthcheck: Schema.optional(Schema.Struct({
        test: Schema.Array(Schema.String),
        interval: Schema.String,
        timeout: Schema.String,
        retries: Schema.Int
      }))
    })
  }),
  volumes: Schema.Record({ key: Schema.String, value: Schema.Struct({}) })
})

const strict = { onExcessProperty: "error", errors: "all" } as const
const decodeToml = Schema.decodeUnknownEither(HarborTaskToml, strict)
const decodeCompose = Schema.decodeUnknownEither(Compose, strict)

const read = (dir: string, relative: string) => readFileSync(join(dir, "task", relative), "utf8")

describe("HarborBuild", () => {
  it("build.yaml is strict: an unknown field is named, with the closest known one", () => {
    const text = readFileSync(exampleBuild, "utf8")
    const typo = HarborBuild.parse("build.yaml", text.replace("readOnlyPaths:", "readOnlyPath:"))
    assert.isTrue(Either.isLeft(typo))
    const message = Either.isLeft(typo) ? typo.left.message : ""
    assert.include(message, `unknown field "readOnlyPath" (did you mean "readOnlyPaths"?)`)
    assert.notInclude(message, "\n")
    const nested = HarborBuild.parse("build.yaml", text.replace("topK: 2", "topk: 2"))
    assert.include(Either.isLeft(nested) ? nested.left.message : "", `"verifier.topk"`)
    assert.isTrue(Either.isRight(HarborBuild.parse("build.yaml", text)))
  })

  it.effect("renders every file of the task, task.toml under Harbor's schema and compose under its own", () =>
    withScratch((dir) =>
      Effect.gen(function*() {
        const built = yield* buildExample(dir)
        for (const file of built.files) assert.isTrue(existsSync(join(dir, "task", file)), file)
        for (const script of ["tests/test.sh", "solution/solve.sh", "environment/main/seed.sh"]) {
          assert.strictEqual(statSync(join(dir, "task", script)).mode & 0o777, 0o755, script)
        }
        assert.deepStrictEqual(
          readdirSync(join(dir, "task", "environment", "sidecar", "inner-task")).sort(),
          ["hello-file", "reverse-words", "sum-numbers"]
        )
        assert.strictEqual(readdirSync(join(dir, "task", "environment", "holdout-packages")).length, 6)

        const toml = decodeToml(Toml.parse(read(dir, "task.toml")))
        assert.isTrue(Either.isRight(toml), Either.isLeft(toml) ? String(toml.left) : "")
        const task = Either.getOrThrow(toml)
        assert.strictEqual(task.schema_version, "1.3")
        assert.strictEqual(task.task?.name, "holdout-examples/optimize-agent")
        assert.strictEqual(task.agent?.user, "agent")
        assert.strictEqual(task.verifier?.environment_mode, "shared")
        // the whole finalize battery: topK (2) re-scores and the baseline, then the target twice, each one nested run
        assert.isAtLeast(task.verifier?.timeout_sec ?? 0, (2 + 1 + 2 * 1) * 1800)

        const compose = decodeCompose(Yaml.parse(read(dir, "environment/docker-compose.yaml")))
        assert.isTrue(Either.isRight(compose), Either.isLeft(compose) ? String(compose.left) : "")
        const { services, volumes } = Either.getOrThrow(compose)
        assert.sameMembers(Object.keys(services), ["main", "eval-sidecar"])
        for (const service of Object.values(services)) {
          for (const volume of service.volumes) assert.property(volumes, volume.split(":")[0]!)
        }
        assert.deepStrictEqual(services["eval-sidecar"]!.command, [
          "holdout",
          "serve",
          "--config",
          "/srv/holdout/holdout.yaml"
        ])
        assert.deepStrictEqual(services.main!.depends_on, { "eval-sidecar": { condition: "service_healthy" } })
      })
    ))

  it.effect("the optimizer's container reads neither the store, the jobs nor the token; secrets go by name to the sidecar only", () =>
    withScratch((dir) =>
      Effect.gen(function*() {
        const file = variant(dir, (document) => ({ ...document, secrets: ["HOLDOUT_TEST_SECRET"] }))
        const missing = yield* expectFailure(
          HarborBuild.build(file, join(dir, "task"), { env: {} }).pipe(Effect.provide(NodeContext.layer))
        )
        assert.strictEqual(missing._tag, "ConfigError")
        assert.include(missing.message, "HOLDOUT_TEST_SECRET")
        assert.isFalse(existsSync(join(dir, "task")), "nothing is rendered when a secret is missing")

        yield* HarborBuild.build(file, join(dir, "task"), { env: { HOLDOUT_TEST_SECRET: "s3cr3t-value" } }).pipe(
          Effect.provide(NodeContext.layer)
        )
        const rendered = spawnSync("grep", ["-rl", "s3cr3t-value", join(dir, "task")], { encoding: "utf8" })
        assert.strictEqual(rendered.stdout, "", "no secret's value is written")
        const compose = Yaml.parse(read(dir, "environment/docker-compose.yaml"))
        const main = compose.services.main
        const sidecar = compose.services["eval-sidecar"]
        assert.match(sidecar.environment.HOLDOUT_TEST_SECRET, /^\$\{HOLDOUT_TEST_SECRET:\?/)
        assert.notProperty(main.environment, "HOLDOUT_TEST_SECRET")

        // the store, the nested jobs and the checkouts are on the admin volume, which main does not mount
        const stack = Yaml.parse(read(dir, "environment/sidecar/holdout.yaml"))
        for (const path of [stack.store.filename, stack.strategy.dir, stack.workspace.dir]) {
          assert.match(path, /^admin\//)
        }
        assert.include(sidecar.volumes, "admin_state:/srv/holdout/admin")
        assert.isFalse(main.volumes.some((volume: string) => volume.startsWith("admin_state:")))
        // the token (written root-only by the sidecar) and the results are read-only in main
        assert.strictEqual(stack.sidecar.tokenFile, "token/admin.token")
        assert.include(main.volumes, "token_state:/state/token:ro")
        assert.include(main.volumes, "agent_results:/state/agent-results:ro")
        // the nested harbor is the sidecar's own, never one the candidate's checkout picks
        assert.notProperty(stack.strategy.harbor, "launcher")
        assert.include(read(dir, "environment/sidecar/Dockerfile"), "/usr/local/bin/harbor")
        assert.include(read(dir, "environment/main/seed.sh"), `chown -R root:root "$repo"/'tests'`)
      })
    ))

  it.effect("the Harbor levers pass through build.yaml to the sidecar's stack; a misspelt one is named", () =>
    withScratch((dir) =>
      Effect.gen(function*() {
        const levers = {
          infraRetryRounds: 2,
          infraRetryDelaySeconds: 15,
          feedbackTranscripts: true,
          feedbackMaxBytes: 2000,
          exposeAttemptDetail: true
        }
        const file = variant(dir, (document) => ({
          ...document,
          harbor: { ...(document.harbor as object), ...levers }
        }))
        yield* HarborBuild.build(file, join(dir, "task"), { env: {} }).pipe(Effect.provide(NodeContext.layer))
        const stack = Yaml.parse(read(dir, "environment/sidecar/holdout.yaml"))
        assert.deepInclude(stack.strategy.harbor, levers)
        rmSync(join(dir, "task"), { recursive: true })
        const typo = yield* expectFailure(
          HarborBuild.build(
            variant(
              dir,
              (document) => ({ ...document, harbor: { ...(document.harbor as object), feedbackTranscript: true } })
            ),
            join(dir, "task"),
            { env: {} }
          ).pipe(Effect.provide(NodeContext.layer))
        )
        assert.strictEqual(typo._tag, "ConfigError")
        assert.include(typo.message, `"feedbackTranscript"`)
        assert.notInclude(typo.message, "\n")
      })
    ))

  it.effect("the verifier's levers (reserve, free baseline, tree pooling) reach the stack and the instruction", () =>
    withScratch((dir) =>
      Effect.gen(function*() {
        // the example sets all three: validation's 6 runs keep 3 for the verifier
        yield* buildExample(dir)
        const stack = Yaml.parse(read(dir, "environment/sidecar/holdout.yaml"))
        assert.deepInclude(stack.budgets, {
          datasetId: "tasks",
          split: "validation",
          runs: 6,
          reservedForFinalize: { runs: 3 }
        })
        assert.include(stack.verifier, { freeBaseline: true, poolTrees: true })
        const instruction = read(dir, "instruction.md")
        // the optimizer is told its own share, and the free evaluation
        assert.include(instruction, "`validation` (non_viewable): you see the mean only; budget: 3 evaluation(s)")
        assert.include(instruction, "first evaluation of the starting commit on each split costs nothing")
        assert.include(instruction, "re-committing a tree does not add it to the shortlist again")
        rmSync(join(dir, "task"), { recursive: true })
        // off by default: nothing of them is rendered
        yield* HarborBuild.build(
          variant(dir, (document) => ({
            ...document,
            budgets: [{ split: "train", runs: 5 }, { split: "validation", runs: 3 }],
            verifier: { selection: "validation", targets: [{ split: "validation" }] }
          })),
          join(dir, "task"),
          { env: {} }
        ).pipe(Effect.provide(NodeContext.layer))
        const plain = Yaml.parse(read(dir, "environment/sidecar/holdout.yaml"))
        assert.notProperty(plain.verifier, "freeBaseline")
        assert.notProperty(plain.verifier, "poolTrees")
        assert.notInclude(read(dir, "instruction.md"), "starting commit on each split costs nothing")
        rmSync(join(dir, "task"), { recursive: true })
        const typo = yield* expectFailure(
          HarborBuild.build(
            variant(dir, (document) => ({
              ...document,
              budgets: [{ split: "validation", runs: 3, reservedForFinalize: { run: 1 } }]
            })),
            join(dir, "task"),
            { env: {} }
          ).pipe(Effect.provide(NodeContext.layer))
        )
        assert.strictEqual(typo._tag, "ConfigError")
        assert.include(typo.message, "reservedForFinalize.run")
        assert.notInclude(typo.message, "\n")
      })
    ))

  it.effect("the rendered stack runs the image's own harbor by absolute path, and carries transfer targets", () =>
    withScratch((dir) =>
      Effect.gen(function*() {
        yield* buildExample(dir)
        const stack = Yaml.parse(read(dir, "environment/sidecar/holdout.yaml"))
        assert.strictEqual(stack.strategy.harbor.trustedHarbor, "/opt/harbor/bin/harbor")
        assert.include(read(dir, "environment/sidecar/Dockerfile"), "/opt/harbor/bin/pip install")
        const build = (edit: (document: Record<string, unknown>) => Record<string, unknown>) =>
          HarborBuild.build(variant(dir, edit), join(dir, "task"), { env: {} }).pipe(Effect.provide(NodeContext.layer))
        yield* build((document) => ({
          ...document,
          harbor: { ...(document.harbor as object), trustedHarbor: "/usr/local/lib/harbor/bin/harbor" },
          verifier: {
            selection: "validation",
            targets: [{ split: "validation" }, { split: "validation", rewardKey: "transfer", model: "other/model" }]
          }
        }))
        const custom = Yaml.parse(read(dir, "environment/sidecar/holdout.yaml"))
        assert.strictEqual(custom.strategy.harbor.trustedHarbor, "/usr/local/lib/harbor/bin/harbor")
        assert.deepStrictEqual(custom.verifier.targets[1], {
          datasetId: "tasks",
          split: "validation",
          rewardKey: "transfer",
          model: "other/model"
        })
        const relative = yield* expectFailure(build((document) => ({
          ...document,
          harbor: { ...(document.harbor as object), trustedHarbor: "bin/harbor" }
        })))
        assert.strictEqual(relative._tag, "ConfigError")
        assert.include(relative.message, "harbor.trustedHarbor must be an absolute path")
      })
    ))

  it.effect("a split the partition lacks, a launcher in the candidate's checkout, an output that is not a task and missing packages are errors", () =>
    withScratch((dir) =>
      Effect.gen(function*() {
        const build = (file: string) =>
          expectFailure(HarborBuild.build(file, join(dir, "task"), { env: {} }).pipe(Effect.provide(NodeContext.layer)))
        const split = yield* build(variant(dir, (document) => ({
          ...document,
          verifier: { selection: "validaton", targets: [{ split: "validation" }] }
        })))
        assert.include(split.message, `"validaton"`)
        const launcher = yield* build(variant(dir, (document) => ({
          ...document,
          harbor: { agent: "oracle", launcher: ["uv", "run", "--project", "{candidatePath}", "harbor"] }
        })))
        assert.include(launcher.message, "harbor.launcher")
        const relative = yield* build(variant(dir, (document) => ({
          ...document,
          harbor: { agent: "oracle", launcher: ["./bin/harbor"] }
        })))
        assert.include(relative.message, "harbor.launcher")
        mkdirSync(join(dir, "task"))
        writeFileSync(join(dir, "task", "notes.txt"), "mine\n")
        const occupied = yield* build(variant(dir, (document) => document))
        assert.include(occupied.message, "Refusing to empty")
        assert.isTrue(existsSync(join(dir, "task", "notes.txt")), "a directory that is not a task is left alone")
        rmSync(join(dir, "task"), { recursive: true })
        rmSync(join(dir, "packs", "holdout-store-pg-0.1.0.tgz"))
        const packages = yield* build(variant(dir, (document) => document))
        assert.include(packages.message, "@holdout/store-pg")
      })
    ))

  it.effect(
    "holdout harbor build and run: help of each, one-line errors, and run hands the rendered task to the harbor on PATH",
    () =>
      withScratch((dir) =>
        Effect.gen(function*() {
          const help = yield* holdout(["harbor", "build", "--help"])
          assert.include(help.stdout, "$ holdout harbor build (-c, --config file)")
          assert.include(help.stdout, "--packages")

          const typo = variant(dir, (document) => ({ ...document, secret: ["X"] }))
          const failed = yield* holdout(["harbor", "build", "-c", typo, "-o", join(dir, "task")])
          assert.strictEqual(failed.code, 1)
          assert.match(failed.stderr.trim(), /^error: .*unknown field "secret" \(did you mean "secrets"\?\)[^\n]*$/)

          const binDir = join(dir, "bin")
          mkdirSync(binDir)
          symlinkSync(fakeHarbor, join(binDir, "harbor"))
          const log = join(dir, "harbor.jsonl")
          const ran = yield* holdout(
            [
              "harbor",
              "run",
              "-c",
              exampleBuild,
              "--packages",
              join(dir, "packs"),
              "-o",
              join(dir, "task"),
              "-a",
              "oracle",
              "--",
              "--jobs-dir",
              join(dir, "jobs"),
              "--fake-log",
              log
            ],
            { env: { PATH: `${binDir}:${process.env.PATH}` } }
          )
          assert.strictEqual(ran.code, 0, ran.stderr)
          const call = JSON.parse(readFileSync(log, "utf8").trim()) as { readonly argv: ReadonlyArray<string> }
          assert.deepStrictEqual(call.argv.slice(0, 7), [
            "run",
            "-p",
            join(dir, "task"),
            "-a",
            "oracle",
            "-e",
            "docker"
          ])
          assert.isTrue(existsSync(join(dir, "task", "task.toml")))
        })
      ),
    120_000
  )

  it.effect(
    "a simulated outer trial: the compiled sidecar, solve.sh, then test.sh writes reward.json",
    () =>
      withScratch((dir) =>
        Effect.gen(function*() {
          // the sidecar's own harbor (the fake one, where the image would have it: its trustedHarbor)
          const binDir = join(dir, "bin")
          mkdirSync(binDir)
          symlinkSync(fakeHarbor, join(binDir, "harbor"))
          const built = yield* HarborBuild.build(
            variant(dir, (document) => ({
              ...document,
              harbor: { ...(document.harbor as object), trustedHarbor: join(binDir, "harbor") }
            })),
            join(dir, "task"),
            { env: {} }
          ).pipe(Effect.provide(NodeContext.layer))
          // what Docker would do: the sidecar's directory in place, the agent repository seeded
          const srv = join(dir, "srv")
          cpSync(join(dir, "task", "environment", "sidecar"), srv, { recursive: true })
          cpSync(join(dir, "task", "environment", "main", "agent-seed"), join(srv, "agent-repo"), { recursive: true })
          // and the holdout CLI, from the sources
          writeFileSync(join(binDir, "holdout"), `#!/bin/sh\nexec node --import "${tsxLoader}" "${bin}" "$@"\n`)
          chmodSync(join(binDir, "holdout"), 0o755)
          const env = environment({ PATH: `${binDir}:${process.env.PATH}`, HOLDOUT_LOG: undefined })

          const child = track(
            spawn("holdout", ["serve", "--config", join(srv, "holdout.yaml"), "--port", "0", "--host", "127.0.0.1"], {
              cwd: srv,
              env,
              stdio: ["ignore", "pipe", "pipe"]
            })
          )
          const served = yield* awaitAddress(child, {
            pattern: sidecarListening,
            what: "the compiled sidecar",
            timeout: 60_000
          })
          const token = join(srv, "token", "admin.token")
          assert.strictEqual(statSync(token).mode & 0o077, 0, "the admin token is its owner's only")

          const script = (relative: string, extra: Record<string, string>) =>
            spawnSync("bash", [join(dir, "task", relative)], {
              cwd: dir,
              env: { ...env, HOLDOUT_URL: served.url, ...extra },
              encoding: "utf8",
              timeout: 90_000
            })
          const solved = script("solution/solve.sh", { HOLDOUT_AGENT_REPO: join(srv, "agent-repo") })
          assert.strictEqual(solved.status, 0, solved.stderr + served.output())
          // the nested run went through the sidecar's harbor, with the baked tasks
          assert.isTrue(existsSync(join(srv, "admin", "harbor", "runs")))
          // the example's levers hold in the compiled sidecar: the verifier's reserve is untouched by the
          // optimizer, and the free evaluation of the starting commit is still to be had
          const status = yield* Effect.promise(() => fetch(`${served.url}/status`).then((response) => response.json()))
          const validation = status.splits.find((split: { split: string }) => split.split === "validation")
          assert.deepInclude(validation, { freeBaseline: true, reserved: { runs: 3, samples: 0 } })

          const logs = join(dir, "logs")
          const verified = script("tests/test.sh", { HOLDOUT_TOKEN_FILE: token, HOLDOUT_LOGS_DIR: logs })
          assert.strictEqual(verified.status, 0, verified.stderr + served.output())
          // the verifier's re-scores were charged (the reserve guaranteed them), the split's limit still holds
          const after = yield* Effect.promise(() => fetch(`${served.url}/status`).then((response) => response.json()))
          const spent = after.splits.find((split: { split: string }) => split.split === "validation")
          const left = (entry: typeof validation) => entry.remaining.runs + entry.reserved.runs
          assert.isBelow(left(spent), left(validation))
          assert.isAtLeast(left(spent), 0)
          const reward = JSON.parse(readFileSync(join(logs, "verifier", "reward.json"), "utf8"))
          // the oracle's commit ties with the baseline on validation, so the baseline is scored: reverse-words' reward
          assert.deepStrictEqual(reward, { reward: 1 })
          // test.sh echoes the verifier's whole answer, then reward.json
          const lines = verified.stdout.trim().split("\n")
          assert.deepStrictEqual(JSON.parse(lines[lines.length - 1]!), { reward: 1 })
          const answer = JSON.parse(lines.slice(0, -1).join("\n"))
          assert.strictEqual(answer.candidate, built.baseCommit)
          assert.strictEqual(answer.shortlist.length, 1)
          assert.notStrictEqual(
            answer.shortlist[0].candidate,
            built.baseCommit,
            "the oracle's commit was the candidate"
          )
        })
      ),
    180_000
  )
})
