/**
 * An idle operator must stay idle: its default process metrics must not wake the event loop a
 * hundred times a second. prom-client's event-loop-lag metric samples with a libuv timer at the
 * precision it is given (10 ms by default), and on Node 24 under load that timer alone cost the
 * operator about 5 s of CPU a minute with nothing to do (bench/operator-scale, steady state).
 * Counted in wake-ups of the main thread (voluntary context switches), never in time.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { OperatorMetrics } from "../src/metrics.js";

const wakeups = () =>
  Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/self/task/${process.pid}/status`, "utf8"))![1]);

test("the operator's metrics do not keep waking an idle process", async () => {
  const m = new OperatorMetrics();
  // Let start-up work (module loading, the first samples) settle before counting.
  await new Promise((r) => setTimeout(r, 200));
  const before = wakeups();
  await new Promise((r) => setTimeout(r, 2000));
  const n = wakeups() - before;
  // A 10 ms sampler wakes the thread ~200 times in 2 s; a once-a-second one about twice.
  assert.ok(n < 40, `main thread woke ${n} times in 2 s of idling`);
  // The lag metric is still there, just sampled less often.
  assert.match(await m.registry.metrics(), /^nodejs_eventloop_lag_p99_seconds /m);
});
