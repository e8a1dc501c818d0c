import { assert, describe, it } from "@effect/vitest"
import { Engine, Metrics, RunEvents, Stack, Task } from "@holdout/core"
import { Progress } from "@holdout/harness"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"

const inferred = (runId: string, sampleId: number, count: number, errors: number) =>
  new RunEvents.SampleInferred({ runId, sampleId, error: errors > 0, inferred: count, errors })

const metrics = Metrics.compute([{ score: 1 }, { score: 1 }, { score: 1 }, { error: "failed" }])

describe("Progress: a run's two stages from its events", () => {
  it("counts, rates, ETA and errors; other runs' events and stale counts change nothing", () => {
    const started = new RunEvents.RunStarted({
      runId: "r",
      datasetId: "ds",
      split: "train",
      candidateId: "c",
      admin: false,
      samples: 4,
      done: 0
    })
    let state = Progress.update(Progress.initial("r", 0), started, 0)
    assert.include(Progress.render(state, 0), "inferred [----------------] 0/4 -/s ETA --")
    state = Progress.update(state, inferred("r", 0, 1, 0), 1000)
    state = Progress.update(state, inferred("r", 1, 2, 1), 2000)
    // a late event with an older count, and another run's event
    state = Progress.update(state, inferred("r", 2, 1, 0), 2000)
    state = Progress.update(state, inferred("other", 0, 4, 4), 2000)
    assert.deepStrictEqual([state.inferred.count, state.scored.count, state.errors], [2, 0, 1])
    // one more inferred in the 2 s since the first event: 0.5/s, 2 left → 4 s
    assert.deepStrictEqual(Progress.rate(state.inferred, 3000), Option.some(0.5))
    assert.strictEqual(
      Progress.render(state, 3000),
      "inferred [########--------] 2/4 0.5/s ETA 4s | scored [----------------] 0/4 -/s ETA -- | 1 error | 3s"
    )
    state = Progress.update(state, new RunEvents.RunFinished({ runId: "r", status: "failed", metrics }), 4000)
    assert.deepStrictEqual(state.status, Option.some("failed"))
  })

  it.live("the bar moves during inference: a slow task, read from the events the run publishes", () =>
    Effect.gen(function*() {
      const total = 8
      // inference waits, so the inferred bar must move while samples are still being inferred
      const task = Task.make<{ readonly index: number }, number>({
        name: "slow",
        infer: (row) => Effect.as(Effect.sleep("60 millis"), row.index),
        score: () => 1
      })
      const stack = Stack.layerMemory({
        datasets: { ds: { train: Array.from({ length: total }, (_, index) => ({ index })) } },
        budgets: [{ datasetId: "ds", split: "train", runs: 1 }],
        policy: { train: "viewable" },
        task,
        local: { concurrency: 2 }
      })
      const lines: Array<string> = []
      const experiment = yield* Effect.flatMap(Engine.Engine, (engine) =>
        Progress.showWhile(
          Engine.runIdForKey("k"),
          engine.evaluate({ datasetId: "ds", split: "train", candidate: { id: "c" }, idempotencyKey: "k" }),
          {
            tty: false,
            interval: 0,
            delay: 0,
            write: (text) => Effect.sync(() => lines.push(text))
          }
        )).pipe(Effect.provide(stack))
      assert.strictEqual(experiment.metrics.numSamples, total)
      const counts = lines.map((line) => {
        const match = /inferred \[[#-]+\] (\d+)\/8 .* scored \[[#-]+\] (\d+)\/8/.exec(line)
        assert.isNotNull(match, line)
        return [Number(match![1]), Number(match![2])] as const
      })
      // during inference (some samples inferred, not all) the inferred bar passes through intermediate counts
      const duringInference = counts.filter(([inferred]) => inferred > 0 && inferred < total)
      assert.isAtLeast(new Set(duringInference.map(([inferred]) => inferred)).size, 3, lines.join(""))
      // and it ends complete, with a rate and no errors
      assert.match(
        lines[lines.length - 1]!,
        /inferred \[#{16}\] 8\/8 [\d.]+\/s done \| scored \[#{16}\] 8\/8 .* 0 errors/
      )
    }))
})
