#!/usr/bin/env node
// Part of @holdout/strategy-harbor ("@holdout/strategy-harbor/fake-harbor"), for tests of stacks that use it.
// A stand-in for the `harbor` CLI in tests. It parses the flags of `harbor run` (v0.17) and writes
// job directories in Harbor's on-disk format, without containers or agents: what each attempt of a
// task yields is read from the task directory's `fake.json`:
//
//   { "attempts": [ { "rewards": { "reward": 1 } },          // reward.json form
//                   { "rewardTxt": "0.5" },                   // reward.txt form → { reward: 0.5 }
//                   { "exception": "RateLimitError", "message": "…" },   // dead attempt
//                   { "exception": "AgentTimeoutError", "rewards": { "reward": 0 } } ] }
//
// Attempt k of a task uses attempts[k % length] (a missing fake.json scores 1). With
// `{ "rounds": [[…attempts…], […attempts…]] }` instead, the n-th nested run of the task (counted in the
// task directory's `.fake-runs`) uses rounds[min(n, length - 1)], e.g. an outage then a recovery.
// An attempt may also leave agent logs in its trial's `agent/`:
//   "pane": "…"  → agent/terminus_2.pane      "trajectory": "…"  → agent/trajectory.json
//   "paneLink": PATH → agent/terminus_2.pane is a symlink to PATH
//   "agentLink": PATH → agent/ itself is a symlink to the directory PATH
// and `{ "noResult": true }` is an attempt that never finishes (its trial has no result.json).
// Test-only flags
// (given through the strategy's `extraArgs`):
//   --fake-log FILE         append { argv, cwd, pid, script } of this invocation as one JSON line (script:
//                           the path this executable was started as)
//   --fake-hang-after N     after N trials, start a grandchild that sleeps, write its pid to
//                           <jobs-dir>/grandchild.pid, and hang (the process tree must be killed)
//   --fake-ignore-term      ignore SIGTERM while hanging (only SIGKILL ends it)
//   --fake-exit CODE        exit with CODE after writing the trials
//   --fake-registry DIR     resolve `-d org/name[@v]` to DIR/name (task names become `org/<dir>`)
//   --fake-state DIR        if DIR/fail-next exists: delete it and write no result for the first trial
//   --fake-project DIR      accepted and ignored (stands for a launcher's `--project {candidatePath}`)
import { spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync
} from "node:fs"
import { basename, join, resolve } from "node:path"

const fail = (code, message) => {
  process.stderr.write(`${message}\n`)
  process.exit(code)
}

const argv = process.argv.slice(2)
const valued = new Map([
  ["-p", "path"],
  ["--path", "path"],
  ["-d", "dataset"],
  ["--dataset", "dataset"],
  ["-a", "agent"],
  ["--agent", "agent"],
  ["--agent-import-path", "agent"],
  ["-m", "model"],
  ["--model", "model"],
  ["-e", "env"],
  ["--env", "env"],
  ["-n", "concurrency"],
  ["--n-concurrent", "concurrency"],
  ["-k", "attempts"],
  ["--n-attempts", "attempts"],
  ["-r", "retries"],
  ["--max-retries", "retries"],
  ["-o", "jobsDir"],
  ["--jobs-dir", "jobsDir"],
  ["--job-name", "jobName"],
  ["--fake-log", "log"],
  ["--fake-hang-after", "hangAfter"],
  ["--fake-exit", "exit"],
  ["--fake-registry", "registry"],
  ["--fake-state", "state"],
  ["--fake-project", "project"]
])
const repeated = new Set(["-i", "--include-task-name", "--task-name"])
const options = { include: [] }
let command
for (let index = 0; index < argv.length; index++) {
  const arg = argv[index]
  if (arg === "--fake-ignore-term") options.ignoreTerm = true
  else if (repeated.has(arg)) options.include.push(argv[++index])
  else if (valued.has(arg)) {
    if (index + 1 >= argv.length) fail(2, `Error: Option '${arg}' requires an argument.`)
    options[valued.get(arg)] = argv[++index]
  } else if (!arg.startsWith("-") && command === undefined) command = arg
  else fail(2, `Error: No such option: ${arg}`)
}
if (options.log !== undefined) {
  appendFileSync(
    options.log,
    JSON.stringify({ argv, cwd: process.cwd(), pid: process.pid, script: process.argv[1] }) + "\n"
  )
}
if (command !== "run") fail(2, `Error: No such command '${command}'.`)
if ((options.path === undefined) === (options.dataset === undefined)) {
  fail(2, "Error: give exactly one of --path / --dataset.")
}
if (options.agent === undefined) fail(2, "Error: Missing option '--agent'.")
for (const [flag, key] of [["-n", "concurrency"], ["--n-attempts", "attempts"], ["--max-retries", "retries"]]) {
  if (options[key] !== undefined && !/^\d+$/.test(options[key])) {
    fail(2, `Error: Invalid value for '${flag}': ${options[key]}`)
  }
}

// fnmatch, as Harbor applies `-i` to task names
const globToRegExp = (glob) =>
  new RegExp("^" + glob.replace(/[.+^${}()|\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".") + "$")

const taskName = (dir, fallback) => {
  const toml = readFileSync(join(dir, "task.toml"), "utf8")
  const section = toml.split(/^\[/m).find((part) => part.startsWith("task]"))
  const name = section?.match(/^name\s*=\s*"([^"]+)"/m)?.[1]
  return name ?? fallback
}

let tasks // [{ id (what -i matches), dir, name (what results are keyed by) }]
if (options.path !== undefined) {
  const root = resolve(options.path)
  if (!existsSync(root)) fail(1, `Error: path ${root} does not exist.`)
  if (existsSync(join(root, "task.toml"))) {
    tasks = [{ id: basename(root), dir: root, name: taskName(root, basename(root)) }]
  } else {
    tasks = readdirSync(root).sort()
      .filter((entry) => existsSync(join(root, entry, "task.toml")))
      .map((entry) => ({ id: entry, dir: join(root, entry), name: taskName(join(root, entry), entry) }))
  }
} else {
  const [org, rest] = options.dataset.split("/")
  const name = (rest ?? "").split("@")[0]
  const root = options.registry === undefined ? undefined : join(options.registry, name)
  if (root === undefined || !existsSync(root)) fail(1, `Error: dataset ${options.dataset} not found in the registry.`)
  tasks = readdirSync(root).sort()
    .filter((entry) => existsSync(join(root, entry, "task.toml")))
    .map((entry) => ({ id: `${org}/${entry}`, dir: join(root, entry), name: `${org}/${entry}` }))
}
const single = options.path !== undefined && existsSync(join(resolve(options.path), "task.toml"))
if (!single && options.include.length > 0) {
  const patterns = options.include.map(globToRegExp)
  tasks = tasks.filter((task) => patterns.some((pattern) => pattern.test(task.id)))
}
if (tasks.length === 0) fail(1, "No tasks matched the filter(s).")

const jobsDir = resolve(options.jobsDir ?? "jobs")
const now = () => new Date().toISOString()
const stamp = now().slice(0, 19).replace("T", "__").replace(/:/g, "-")
const jobDir = join(jobsDir, options.jobName ?? stamp)
mkdirSync(jobDir, { recursive: true })
const attempts = Number(options.attempts ?? 1)
const jobId = randomUUID()
const startedAt = now()
const stats = {
  n_completed_trials: 0,
  n_errored_trials: 0,
  n_running_trials: 0,
  n_pending_trials: 0,
  n_cancelled_trials: 0,
  n_retries: 0,
  evals: {}
}
const writeJob = (finishedAt) =>
  writeFileSync(
    join(jobDir, "result.json"),
    JSON.stringify(
      { id: jobId, started_at: startedAt, finished_at: finishedAt, n_total_trials: tasks.length * attempts, stats },
      null,
      4
    )
  )
writeFileSync(
  join(jobDir, "config.json"),
  JSON.stringify(
    {
      job_name: basename(jobDir),
      jobs_dir: jobsDir,
      n_attempts: attempts,
      agents: [{ import_path: options.agent, model_name: options.model ?? null }]
    },
    null,
    4
  )
)
writeJob(null)

let skipNext = false
if (options.state !== undefined && existsSync(join(options.state, "fail-next"))) {
  rmSync(join(options.state, "fail-next"))
  skipNext = true
}

const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
const shortId = () => Array.from({ length: 7 }, () => letters[Math.floor(Math.random() * letters.length)]).join("")

const hang = () => {
  const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" })
  writeFileSync(join(jobsDir, "grandchild.pid"), String(child.pid))
  if (options.ignoreTerm) process.on("SIGTERM", () => {})
  process.stdout.write("hanging\n")
  setInterval(() => {}, 1000)
}

// what each task's attempts yield in this nested run (a task with rounds counts its runs)
const plans = new Map(tasks.map((task) => {
  const spec = existsSync(join(task.dir, "fake.json"))
    ? JSON.parse(readFileSync(join(task.dir, "fake.json"), "utf8"))
    : {}
  if (spec.rounds === undefined) return [task.dir, spec.attempts ?? [{ rewards: { reward: 1 } }]]
  const counter = join(task.dir, ".fake-runs")
  const run = existsSync(counter) ? Number(readFileSync(counter, "utf8")) : 0
  writeFileSync(counter, String(run + 1))
  return [task.dir, spec.rounds[Math.min(run, spec.rounds.length - 1)]]
}))

const writeAgentLogs = (trialDir, outcome) => {
  const agentDir = join(trialDir, "agent")
  if (outcome.agentLink !== undefined) {
    symlinkSync(outcome.agentLink, agentDir)
    return
  }
  mkdirSync(agentDir, { recursive: true })
  if (outcome.pane !== undefined) writeFileSync(join(agentDir, "terminus_2.pane"), outcome.pane)
  if (outcome.paneLink !== undefined) symlinkSync(outcome.paneLink, join(agentDir, "terminus_2.pane"))
  if (outcome.trajectory !== undefined) writeFileSync(join(agentDir, "trajectory.json"), outcome.trajectory)
}

let written = 0
let lastFinished = 0
const trials = tasks.flatMap((task) => Array.from({ length: attempts }, (_, attempt) => ({ task, attempt })))
for (const { task, attempt } of trials) {
  if (options.hangAfter !== undefined && written >= Number(options.hangAfter)) break
  const plan = plans.get(task.dir)
  const outcome = plan[attempt % plan.length]
  const trialName = `${task.id.split("/").pop().slice(0, 32).replace(/_+$/, "")}__${shortId()}`
  const trialDir = join(jobDir, trialName)
  mkdirSync(join(trialDir, "verifier"), { recursive: true })
  writeAgentLogs(trialDir, outcome)
  writeFileSync(join(trialDir, "trial.log"), `fake trial of ${task.name}\n`)
  written++
  if (skipNext || outcome.noResult === true) {
    skipNext = false
    continue
  }
  let rewards = null
  if (outcome.rewardTxt !== undefined) {
    writeFileSync(join(trialDir, "verifier", "reward.txt"), `${outcome.rewardTxt}\n`)
    rewards = { reward: Number(outcome.rewardTxt) }
  } else if (outcome.rewards !== undefined) {
    writeFileSync(join(trialDir, "verifier", "reward.json"), JSON.stringify(outcome.rewards))
    rewards = outcome.rewards
  }
  const exception = outcome.exception === undefined ? null : {
    exception_type: outcome.exception,
    exception_message: outcome.message ?? `${outcome.exception} in the fake agent`,
    exception_traceback: `Traceback (most recent call last):\n  File "agent.py", line 1\n${outcome.exception}: ${
      outcome.message ?? ""
    }`,
    occurred_at: now()
  }
  if (exception !== null) writeFileSync(join(trialDir, "exception.txt"), exception.exception_traceback)
  // trials finish one after another (distinct times, so the order of attempts is the order written)
  lastFinished = Math.max(Date.now(), lastFinished + 1)
  const finishedAt = new Date(lastFinished).toISOString()
  writeFileSync(
    join(trialDir, "result.json"),
    JSON.stringify(
      {
        id: randomUUID(),
        task_name: task.name,
        trial_name: trialName,
        trial_uri: `file://${trialDir}`,
        task_id: { path: task.dir },
        source: options.path === undefined ? options.dataset : basename(resolve(options.path)),
        task_checksum: "0".repeat(64),
        config: { job_id: jobId, agent: { import_path: options.agent, model_name: options.model ?? null } },
        agent_info: {
          name: "fake",
          version: "0",
          model_info: options.model === undefined ? null : { name: options.model, provider: "fake" }
        },
        agent_result: {
          n_input_tokens: 0,
          n_cache_tokens: null,
          n_output_tokens: 0,
          cost_usd: null,
          rollout_details: null,
          metadata: null
        },
        verifier_result: rewards === null ? null : { rewards },
        exception_info: exception,
        started_at: startedAt,
        finished_at: finishedAt,
        environment_setup: null,
        agent_setup: null,
        agent_execution: null,
        verifier: rewards === null ? null : { started_at: finishedAt, finished_at: finishedAt },
        step_results: null
      },
      null,
      4
    )
  )
  if (exception === null) stats.n_completed_trials++
  else stats.n_errored_trials++
}

if (options.hangAfter !== undefined && written >= Number(options.hangAfter)) {
  hang()
} else {
  writeJob(now())
  process.stdout.write(`fake harbor: ${written} trial(s) in ${jobDir}\n`)
  if (options.exit !== undefined) {
    process.stderr.write(`fake harbor failing with exit code ${options.exit}\n`)
    process.exit(Number(options.exit))
  }
}
