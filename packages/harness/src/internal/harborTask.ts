/**
 * The files of a compiled Harbor task (`HarborBuild`): the sidecar's stack, \`task.toml\`, the compose
 * file, both Dockerfiles, the seed, test and solution scripts and the instruction, each rendered from
 * a decoded \`build.yaml\`.
 *
 * @internal
 */
import { Ledger } from "@holdout/core"
import type { HarborConfig } from "@holdout/strategy-harbor"
import type { BuildConfig } from "../HarborBuild.js"

/** Where things are in the containers. */
const agentRepoPath = "/app/agent"
const sidecarHome = "/srv/holdout"
const tokenMount = "/state/token"
const resultsMount = "/state/agent-results"
const sidecarPort = 8000

/** The sidecar's own harbor, installed by its Dockerfile: the nested runs' `trustedHarbor` by default. */
export const imageHarbor = "/opt/harbor/bin/harbor"

/** The packages both images install (the harness and what it depends on). */
export const packageNames = ["core", "harness", "store-fs", "store-pg", "store-sqlite", "strategy-harbor"] as const

/**
 * The stack the sidecar serves, as `environment/sidecar/holdout.yaml` (paths relative to it, as it
 * sits in `/srv/holdout`).
 */
export const sidecarConfig = (
  config: BuildConfig,
  harbor: HarborConfig.Input,
  baseCommit: string
): Record<string, unknown> => ({
  store: { kind: "sqlite", filename: "admin/holdout.db" },
  datasets: { kind: "harbor", datasetId: config.datasetId, partition: config.partition },
  strategy: { kind: "harbor", harbor, dir: "admin/harbor" },
  workspace: { kind: "git", repo: "agent-repo", dir: "admin/checkouts" },
  budgets: config.budgets.map((budget) => ({ datasetId: config.datasetId, ...budget })),
  policy: config.policy,
  verifier: {
    mode: config.verifier.mode,
    selection: { datasetId: config.datasetId, split: config.verifier.selection },
    targets: config.verifier.targets.map((target) => ({ datasetId: config.datasetId, ...target })),
    baseline: baseCommit,
    topK: config.verifier.topK,
    ...(config.verifier.significance === undefined ? {} : { significance: config.verifier.significance }),
    ...(config.verifier.freeBaseline ? { freeBaseline: true } : {}),
    ...(config.verifier.poolTrees ? { poolTrees: true } : {})
  },
  sidecar: { tokenFile: "token/admin.token", resultsDir: "results", host: "0.0.0.0", port: sidecarPort }
})

const tomlString = (text: string) => JSON.stringify(text)

/**
 * `task.toml`: Harbor's task configuration of the outer task.
 */
export const taskToml = (config: BuildConfig, verifierTimeoutSeconds: number): string =>
  [
    `schema_version = "1.3"`,
    ``,
    `[task]`,
    `name = ${tomlString(config.name)}`,
    `description = ${tomlString(config.description)}`,
    ``,
    `[agent]`,
    `user = "agent"`,
    `timeout_sec = ${config.timeoutSeconds.toFixed(1)}`,
    ``,
    `[verifier]`,
    `environment_mode = "shared"`,
    `timeout_sec = ${verifierTimeoutSeconds.toFixed(1)}`,
    ``,
    `[environment]`,
    `build_timeout_sec = 1800.0`,
    ``
  ].join("\n")

/**
 * `environment/docker-compose.yaml`: `main` (merged over Harbor's own) and `eval-sidecar`.
 */
export const composeFile = (config: BuildConfig): Record<string, unknown> => ({
  services: {
    main: {
      build: { context: ".", dockerfile: "Dockerfile" },
      user: "root",
      command: ["/opt/holdout/seed.sh"],
      environment: { HOLDOUT_URL: `http://eval-sidecar:${sidecarPort}` },
      volumes: [
        `agent_repo:${agentRepoPath}`,
        `agent_results:${resultsMount}:ro`,
        `token_state:${tokenMount}:ro`
      ],
      depends_on: { "eval-sidecar": { condition: "service_healthy" } }
    },
    "eval-sidecar": {
      build: { context: ".", dockerfile: "sidecar/Dockerfile" },
      user: "root",
      command: ["holdout", "serve", "--config", `${sidecarHome}/holdout.yaml`],
      working_dir: sidecarHome,
      environment: {
        HOLDOUT_LOG: "info",
        ...Object.fromEntries(
          config.secrets.map((name) => [name, `\${${name}:?set ${name} on the host running harbor}`])
        )
      },
      volumes: [
        `agent_repo:${sidecarHome}/agent-repo:ro`,
        `agent_results:${sidecarHome}/results`,
        `admin_state:${sidecarHome}/admin`,
        `token_state:${sidecarHome}/token`
      ],
      healthcheck: {
        test: [
          "CMD",
          "node",
          "-e",
          `fetch("http://127.0.0.1:${sidecarPort}/health").then(r=>process.exit(r.ok?0:1),()=>process.exit(1))`
        ],
        interval: "5s",
        timeout: "5s",
        retries: 30
      }
    }
  },
  volumes: { agent_repo: {}, agent_results: {}, admin_state: {}, token_state: {} }
})

const installPackages = [
  `COPY holdout-packages/ /opt/holdout-packages/`,
  `RUN npm install --global --no-audit --no-fund /opt/holdout-packages/*.tgz && holdout --version`
]

/**
 * `environment/Dockerfile`: the optimizer's image (Node 20, git, the `holdout` CLI, the seed).
 */
export const mainDockerfile = (config: BuildConfig): string =>
  [
    `FROM ${config.nodeImage}`,
    `RUN apt-get update && apt-get install -y --no-install-recommends git ca-certificates && rm -rf /var/lib/apt/lists/*`,
    `RUN useradd --create-home --shell /bin/bash agent`,
    ...installPackages,
    `COPY main/agent-seed/ /opt/holdout/agent-seed/`,
    `COPY main/seed.sh /opt/holdout/seed.sh`,
    `RUN chmod 755 /opt/holdout/seed.sh && git config --system --add safe.directory '*'`,
    `ENV HOLDOUT_URL=http://eval-sidecar:${sidecarPort}`,
    `WORKDIR ${agentRepoPath}`,
    ``
  ].join("\n")

/**
 * `environment/sidecar/Dockerfile`: the sidecar's image (Node 20, git, `holdout`, its own `harbor`,
 * the stack's configuration and the inner tasks).
 */
export const sidecarDockerfile = (config: BuildConfig): string =>
  [
    `FROM ${config.nodeImage}`,
    `RUN apt-get update && apt-get install -y --no-install-recommends git ca-certificates python3 python3-venv ` +
    `&& rm -rf /var/lib/apt/lists/*`,
    `RUN python3 -m venv /opt/harbor && /opt/harbor/bin/pip install --no-cache-dir ${
      JSON.stringify(config.harborRequirement)
    } && ln -s ${imageHarbor} /usr/local/bin/harbor`,
    ...installPackages,
    `RUN git config --system --add safe.directory '*'`,
    `COPY sidecar/ ${sidecarHome}/`,
    `WORKDIR ${sidecarHome}`,
    `EXPOSE ${sidecarPort}`,
    ``
  ].join("\n")

const shellQuote = (text: string) => `'${text.replaceAll("'", `'"'"'`)}'`

/**
 * `environment/main/seed.sh`: fills the agent repository from the seed once, gives it to `agent`,
 * makes the read-only paths root's, and keeps the container up.
 */
export const seedScript = (config: BuildConfig): string =>
  [
    `#!/bin/bash`,
    `set -euo pipefail`,
    `repo="\${HOLDOUT_AGENT_REPO:-${agentRepoPath}}"`,
    `if [ ! -d "$repo/.git" ]; then`,
    `  mkdir -p "$repo"`,
    `  cp -a /opt/holdout/agent-seed/. "$repo/"`,
    `fi`,
    `chown -R agent:agent "$repo"`,
    ...config.readOnlyPaths.map((entry) =>
      `if [ -e "$repo"/${shellQuote(entry)} ]; then chown -R root:root "$repo"/${
        shellQuote(entry)
      } && chmod -R a-w "$repo"/${shellQuote(entry)}; fi`
    ),
    `exec sleep infinity`,
    ``
  ].join("\n")

/**
 * `tests/test.sh`: the verifier, run as root in `main` while the stack is up: finalizes with the
 * admin token and writes `reward.json`.
 */
export const testScript = (): string =>
  [
    `#!/bin/bash`,
    `set -euo pipefail`,
    `url="\${HOLDOUT_URL:-http://eval-sidecar:${sidecarPort}}"`,
    `token="\${HOLDOUT_TOKEN_FILE:-${tokenMount}/admin.token}"`,
    `logs="\${HOLDOUT_LOGS_DIR:-/logs}"`,
    `mkdir -p "$logs/verifier"`,
    `holdout finalize --url "$url" --token-file "$token" --output "$logs/verifier/reward.json"`,
    `cat "$logs/verifier/reward.json"`,
    ``
  ].join("\n")

/**
 * `solution/solve.sh`: the oracle's smoke test of the stack: a commit, one evaluation on the
 * selection split, the status.
 */
export const solveScript = (config: BuildConfig): string =>
  [
    `#!/bin/bash`,
    `set -euo pipefail`,
    `url="\${HOLDOUT_URL:-http://eval-sidecar:${sidecarPort}}"`,
    `cd "\${HOLDOUT_AGENT_REPO:-${agentRepoPath}}"`,
    `echo "" >> README.md`,
    `echo "Checked by the oracle." >> README.md`,
    `git add README.md`,
    `git -c user.name=oracle -c user.email=oracle@localhost commit --quiet -m "oracle: smoke test"`,
    `holdout eval --url "$url" --dataset ${shellQuote(config.datasetId)} --split ${
      shellQuote(config.verifier.selection)
    } --commit HEAD`,
    `holdout status --url "$url"`,
    ``
  ].join("\n")

const tierLine = {
  viewable: "you see the mean and every task's result",
  non_viewable: "you see the mean only",
  no_access: "you cannot evaluate on it"
} as const

/**
 * `instruction.md`: what the optimizer is asked to do, and the rules.
 */
export const instruction = (config: BuildConfig): string => {
  const budgetOf = (split: string) => {
    const budget = config.budgets.find((entry) => entry.split === split)
    if (budget === undefined) return "no budget"
    // the optimizer's share, as the ledger tells it before anything is spent (the reserve left out)
    const { runs, samples } = Ledger.snapshot({ datasetId: config.datasetId, ...budget }, Ledger.nothingSpent).remaining
    const parts = [
      ...(runs === null ? [] : [`${runs} evaluation(s)`]),
      ...(samples === null ? [] : [`${samples} task run(s)`])
    ]
    return parts.length === 0 ? "unmetered" : parts.join(", ")
  }
  const splits = Object.entries(config.policy).map(([split, tier]) =>
    `- \`${split}\` (${tier}): ${tierLine[tier]}; budget: ${budgetOf(split)}`
  )
  const selection = config.verifier.mode === "auto_best"
    ? `When your time is up, the candidates with the best recorded means on \`${config.verifier.selection}\` ` +
      `are re-scored, and the best of them (only if it beats the starting commit) is scored on the hidden ` +
      `targets. Your recorded scores only shortlist: evaluate the commits you want considered.`
    : `When your time is up, the commit you submitted with \`holdout submit --commit <commit>\` is scored on ` +
      `the hidden targets.`
  return [
    `# ${config.name}`,
    ``,
    config.description,
    ``,
    `Improve the agent in \`${agentRepoPath}\` (a git repository). Its score is measured by an evaluation`,
    `service you reach with the \`holdout\` command (the service's address is in \`HOLDOUT_URL\`).`,
    ``,
    `## Workflow`,
    ``,
    `1. Change the agent and commit (\`git commit\`): only committed work is evaluated.`,
    `2. \`holdout eval --dataset ${config.datasetId} --split <split> --commit HEAD\` evaluates the commit and`,
    `   charges the split's budget; \`--num-samples N\` evaluates the first N tasks only.`,
    `3. \`holdout status\` shows every split's tier and remaining budget; \`holdout samples\` the per-task`,
    `   results of a viewable split (also under \`${resultsMount}\`).`,
    ``,
    `## Splits`,
    ``,
    ...splits,
    ``,
    `## Rules`,
    ``,
    `- ${selection}`,
    `- Evaluations of the starting commit are never candidates.`,
    ...(config.verifier.freeBaseline
      ? [
        `- Your first evaluation of the starting commit on each split costs nothing (\`holdout status\` shows where it is left).`
      ]
      : []),
    ...(config.verifier.poolTrees && config.verifier.mode === "auto_best"
      ? [
        `- Commits with the same files are one candidate: re-committing a tree does not add it to the shortlist again.`
      ]
      : []),
    `- A budget spent is spent; an evaluation refused for lack of budget costs nothing. Unspent budget is wasted.`,
    ...(config.readOnlyPaths.length === 0
      ? []
      : [`- Do not change: ${config.readOnlyPaths.map((entry) => `\`${entry}\``).join(", ")}.`]),
    ``
  ].join("\n")
}
