/**
 * An idle data plane must stay idle: its process metrics must not wake the event loop a hundred
 * times a second (prom-client's event-loop-lag sampler runs a libuv timer at the precision it is
 * given, 10 ms by default). Counted in wake-ups of the main thread (voluntary context switches),
 * never in time.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Metrics } from "../src/observability/metrics.js";

const wakeups = () =>
  Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/self/task/${process.pid}/status`, "utf8"))![1]);

test("the data plane's process metrics do not keep waking an idle process", async () => {
  const m = new Metrics();
  await new Promise((r) => setTimeout(r, 200));
  const before = wakeups();
  await new Promise((r) => setTimeout(r, 2000));
  const n = wakeups() - before;
  // A 10 ms sampler wakes the thread ~200 times in 2 s; a 100 ms one about 20.
  assert.ok(n < 80, `main thread woke ${n} times in 2 s of idling`);
  assert.match(await m.registry.metrics(), /^nodejs_eventloop_lag_p99_seconds /m);
});
