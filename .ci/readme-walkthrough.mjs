// CI: runs the README's "Getting started" walk-through as written, in an empty directory, against the
// packed packages. Every ```sh block of that section runs, in order, as one bash script that stops at
// the first command that fails. Two things stand in for what a user's machine has and CI has not:
// `npm install @holdout/…` installs the packed tarballs (the packages are not taken from a
// registry), and after a line that starts the sidecar in the background the script waits until it
// answers, as a user would before typing the next command. The script runs with job control, as an
// interactive shell does.
//
//   node .ci/readme-walkthrough.mjs <README.md> <tarball directory> <empty directory>
import { spawn } from "node:child_process"
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { createConnection } from "node:net"
import { join, resolve } from "node:path"

const [readmePath, tarballDir, workDir] = process.argv.slice(2).map((argument) => resolve(argument))
const fail = (message) => {
  console.error(`readme-walkthrough: ${message}`)
  process.exit(1)
}
if (!readmePath || !tarballDir || !workDir) fail("usage: readme-walkthrough.mjs <README.md> <tarballs> <empty dir>")
if (readdirSync(workDir).length > 0) fail(`${workDir} is not empty`)

const readme = readFileSync(readmePath, "utf8")
const start = readme.indexOf("\n## Getting started\n")
if (start < 0) fail("the README has no \"## Getting started\" section")
const end = readme.indexOf("\n## ", start + 1)
const section = readme.slice(start, end < 0 ? undefined : end)
const blocks = [...section.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((match) => match[1])
const lines = blocks.flatMap((block) => block.split("\n")).filter((line) => line.trim() !== "")

// the walk-through must keep showing each step of a user's first hour, so that this check stays one
for (
  const needed of [
    "npm install @holdout/",
    "holdout init",
    "holdout run ",
    "holdout serve ",
    "holdout eval ",
    "holdout finalize ",
    "holdout report "
  ]
) {
  if (!lines.some((line) => line.includes(needed))) fail(`the walk-through no longer shows \`${needed.trim()}\``)
}

const tarballs = readdirSync(tarballDir)
  .filter((name) => name.endsWith(".tgz") && !name.includes("testkit"))
  .map((name) => join(tarballDir, name))
const quote = (text) => `'${text.replaceAll("'", `'\\''`)}'`
const port = 8000
const waitForSidecar = `node -e ${
  quote(`
const net = require("node:net")
const deadline = Date.now() + 30000
const attempt = () => {
  const socket = net.createConnection(${port}, "127.0.0.1")
  socket.on("connect", () => { socket.end(); process.exit(0) })
  socket.on("error", () => Date.now() > deadline ? (console.error("the sidecar did not start"), process.exit(1)) : setTimeout(attempt, 200))
}
attempt()
`)
}`

// job control on, as in the user's interactive shell: a background job is a process group of its own,
// so `kill %1` stops the sidecar with the npm and shell processes `npx` starts it under
const script = ["set -euo pipefail -m"]
for (const line of lines) {
  script.push(`echo ${quote(`$ ${line}`)}`)
  if (/^npm install @holdout\//.test(line)) {
    script.push(
      `JOBS=max npm install --no-audit --no-fund --prefer-offline --loglevel=error ${tarballs.map(quote).join(" ")}`
    )
  } else {
    script.push(line)
  }
  if (/holdout serve .*&\s*$/.test(line)) script.push(waitForSidecar)
}
const scriptPath = join(workDir, ".walkthrough.sh")
writeFileSync(scriptPath, script.join("\n") + "\n")

const listening = () =>
  new Promise((done) => {
    const socket = createConnection(port, "127.0.0.1")
    socket.on("connect", () => {
      socket.end()
      done(true)
    })
    socket.on("error", () => done(false))
  })
if (await listening()) fail(`port ${port} is taken before the walk-through starts: stop what listens there`)

// its own process group, so that whatever it leaves running is stopped with it
const child = spawn("bash", [scriptPath], { cwd: workDir, stdio: "inherit", detached: true })
const timer = setTimeout(() => process.kill(-child.pid, "SIGKILL"), 540_000)
const [code, signal] = await new Promise((done) => child.on("exit", (...outcome) => done(outcome)))
clearTimeout(timer)
// `kill %1` is the walk-through's last line: give the sidecar ten seconds to close
let leftOver = await listening()
for (let attempt = 0; leftOver && attempt < 50; attempt++) {
  await new Promise((done) => setTimeout(done, 200))
  leftOver = await listening()
}
try {
  process.kill(-child.pid, "SIGTERM")
} catch {
  // the group is gone: nothing was left running
}
if (code !== 0) fail(`the walk-through failed (exit ${code ?? signal})`)
if (leftOver) fail("the sidecar still listens after the walk-through's `kill %1`")

// what the walk-through says it leaves behind
const project = join(workDir, "my-eval")
const reward = JSON.parse(readFileSync(join(project, "reward.json"), "utf8"))
if (reward.accuracy !== 1) fail(`reward.json is ${JSON.stringify(reward)}, the README says {"accuracy":1}`)
if (!existsSync(join(project, "report.html"))) fail("holdout report --html wrote no report.html")
console.log(`readme-walkthrough: ok (${lines.length} lines)`)
