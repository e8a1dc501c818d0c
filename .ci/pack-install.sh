#!/usr/bin/env bash
# CI: Holdout as a user installs it. Builds the packages, packs each one, installs the tarballs into
# a scratch project outside this repository (third-party dependencies come from the registry), and
# there, with plain `node` and no TypeScript loader of the user's: `holdout --help`, `view --help`
# and `mcp --help`, `holdout init` with a run and a report of the project it writes, a run of a small
# task from a `.mjs` module and from a `.ts` module, a report, a test file that imports
# @holdout/core, and a type-check of a TypeScript file against the packages' declarations.
#
#   .ci/pack-install.sh            (KEEP=1 keeps the scratch project and prints where it is)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

step() { echo "-- $*"; }
fail() {
  echo "pack-install: $*" >&2
  exit 1
}

step "build"
npm run build --silent

scratch=$(mktemp -d "${TMPDIR:-/tmp}/holdout-pack-XXXXXX")
if [ "${KEEP:-}" = 1 ]; then
  echo "scratch project: $scratch"
else
  trap 'rm -rf "$scratch"' EXIT
fi
mkdir -p "$scratch/tarballs" "$scratch/project"

step "pack"
packages=(core testkit store-fs store-sqlite store-pg strategy-harbor harness)
for name in "${packages[@]}"; do
  npm pack --silent --pack-destination "$scratch/tarballs" --workspace "packages/$name" >/dev/null
done
for name in "${packages[@]}"; do
  tarball="$scratch/tarballs/holdout-$name-0.1.0.tgz"
  [ -f "$tarball" ] || fail "no tarball for @holdout/$name"
  listing=$(tar -tzf "$tarball")
  for file in package/dist/index.js package/dist/index.d.ts; do
    grep -qx "$file" <<<"$listing" || fail "@holdout/$name's tarball lacks ${file#package/}"
  done
  if grep -q '^package/src/' <<<"$listing"; then fail "@holdout/$name's tarball ships its TypeScript sources"; fi
  if grep -q 'tsbuildinfo' <<<"$listing"; then fail "@holdout/$name's tarball ships tsc's build info"; fi
done

cd "$scratch/project"
cat >package.json <<'EOF'
{
  "name": "holdout-scratch",
  "private": true,
  "type": "module",
  "allowScripts": { "better-sqlite3": true, "esbuild": true }
}
EOF

step "install the tarballs (the test kit, whose peers are vitest, is packed but not installed)"
runtime=()
for name in core store-fs store-sqlite store-pg strategy-harbor harness; do
  runtime+=("$scratch/tarballs/holdout-$name-0.1.0.tgz")
done
# better-sqlite3 downloads its native module, or builds it where it cannot (JOBS: with every core)
JOBS=max npm install --no-audit --no-fund --prefer-offline --loglevel=error "${runtime[@]}" "typescript@$(node -p "require('$repo/node_modules/typescript/package.json').version")"
[ -x node_modules/.bin/holdout ] || fail "installing @holdout/harness gave no holdout executable"

step "holdout --help"
npx --no-install holdout --help >help.txt
grep -q "holdout" help.txt || fail "holdout --help printed no usage"

step "holdout view --help, holdout mcp --help"
for name in view mcp; do
  npx --no-install holdout "$name" --help >"help-$name.txt"
  grep -q "holdout $name" "help-$name.txt" || fail "holdout $name --help printed no usage"
done

step "holdout init, then a run and a report of the project it writes"
mkdir init
(cd init && npx --no-install holdout init)
[ -f init/holdout.yaml ] || fail "holdout init wrote no holdout.yaml"
(cd init && npx --no-install holdout run -c holdout.yaml --dataset sums --split train --candidate careful) | tee init-run.txt
grep -q "mean 100.0%" init-run.txt || fail "the run of the project holdout init wrote did not score 100%"
(cd init && npx --no-install holdout report -c holdout.yaml) | tee init-report.txt
grep -q "careful" init-report.txt || fail "the report of the project holdout init wrote does not list the candidate"

step "a small task, from a .mjs module and from a .ts module"
mkdir -p data/qa
for split in train validation test; do
  : >"data/qa/$split.jsonl"
  for a in 0 1 2 3 4 5 6 7; do echo "{\"a\": $a, \"b\": $((a * 2)), \"sum\": $((a * 3))}" >>"data/qa/$split.jsonl"; done
done
cat >task.mjs <<'EOF'
import { Task } from "@holdout/core"

export default Task.make({
  name: "sum",
  labelFields: ["sum"],
  infer: (row, run) => (run.candidate.id === "off-by-one" && row.a % 4 === 3 ? row.a + row.b + 1 : row.a + row.b),
  score: (row, stored) => (stored.output === row.sum ? 1 : 0)
})
EOF
cat >task.ts <<'EOF'
import { Task } from "@holdout/core"

interface Row {
  readonly a: number
  readonly b: number
  readonly sum: number
}

export const sum = Task.make<Row, number, "sum">({
  name: "sum",
  labelFields: ["sum"],
  infer: (row: { readonly a: number; readonly b: number }) => row.a + row.b,
  score: (row: Row, stored: { readonly output: number }): number => (stored.output === row.sum ? 1 : 0)
})
EOF
config() { # module, export, store
  cat <<EOF
store: $3
datasets: { kind: jsonl, dir: data }
strategy: { kind: task, module: $1, export: $2 }
budgets:
  - { datasetId: qa, split: train, runs: 5 }
  - { datasetId: qa, split: validation, runs: 3 }
policy: { train: viewable, validation: non_viewable, test: no_access }
EOF
}
config task.mjs default "{ kind: sqlite, filename: .holdout/holdout.db }" >holdout.yaml
config task.ts sum "{ kind: fs, dir: .holdout/fs }" >holdout-ts.yaml

node_modules/.bin/holdout run -c holdout.yaml --dataset qa --split train --candidate exact | tee run.txt
grep -q "mean 100.0%" run.txt || fail "the run of task.mjs did not score 100%"
node_modules/.bin/holdout run -c holdout.yaml --dataset qa --split validation --candidate off-by-one | tee run.txt
grep -q "mean 75.0%" run.txt || fail "the run of task.mjs on validation did not score 75%"
node_modules/.bin/holdout run -c holdout-ts.yaml --dataset qa --split train --candidate exact | tee run-ts.txt
grep -q "mean 100.0%" run-ts.txt || fail "the run of task.ts did not score 100%"

step "holdout report"
node_modules/.bin/holdout report -c holdout.yaml --html report.html | tee report.txt
grep -q "exact" report.txt || fail "the report does not list the candidate"
grep -q "off-by-one" report.txt || fail "the report does not list the second candidate"
[ -s report.html ] || fail "holdout report --html wrote nothing"

step "a test file on plain node that imports @holdout/core"
cat >core.test.mjs <<'EOF'
import { DatasetSource, Engine, Ledger, LocalStrategy, Stack, Task, TaskStore } from "@holdout/core"
import * as Effect from "effect/Effect"
import assert from "node:assert/strict"
import { test } from "node:test"

const rows = Array.from({ length: 10 }, (_, a) => ({ a, double: 2 * a }))
const task = Task.make({ name: "double", labelFields: ["double"], infer: (row) => row.a * 2, score: (row, stored) => (stored.output === row.double ? 1 : 0) })
const stack = Stack.layerWith({
  budgets: [{ datasetId: "nums", split: "train", runs: 1 }],
  policy: { train: "viewable" },
  ledger: Ledger.layerMemory,
  store: TaskStore.layerMemory,
  datasets: DatasetSource.layerRecords({ nums: { train: rows } }),
  strategy: LocalStrategy.layer(task)
})

test("an evaluation is scored and charged; the spent budget refuses the next", async () => {
  const [experiment, second] = await Effect.runPromise(
    Effect.gen(function*() {
      const engine = yield* Engine.Engine
      const request = { datasetId: "nums", split: "train", candidate: { id: "c1" } }
      const experiment = yield* engine.evaluate(request)
      const second = yield* Effect.flip(engine.evaluate({ ...request, candidate: { id: "c2" } }))
      return [experiment, second]
    }).pipe(Effect.provide(stack))
  )
  assert.equal(experiment.metrics.numSamples, 10)
  assert.equal(experiment.metrics.avgFilledScore, 1)
  assert.equal(second._tag, "BudgetExhausted")
})
EOF
node --test core.test.mjs

step "TypeScript against the packages' declarations"
cat >check.ts <<'EOF'
import { Engine, Task } from "@holdout/core"
import { StackConfig } from "@holdout/harness"
import { SqliteStore } from "@holdout/store-sqlite"
import { HarborStrategy } from "@holdout/strategy-harbor"

const task = Task.make<{ readonly a: number; readonly sum: number }, number, "sum">({
  name: "t",
  labelFields: ["sum"],
  infer: (row) => row.a,
  score: (row, stored) => (stored.output === row.sum ? 1 : 0)
})
const name: string = task.name
export const used = [Engine.Engine, StackConfig.load, SqliteStore.layer, HarborStrategy.layer, name] as const
EOF
node_modules/.bin/tsc --noEmit --strict --skipLibCheck --module nodenext --moduleResolution nodenext --target es2022 check.ts

echo "pack-install: ok"
