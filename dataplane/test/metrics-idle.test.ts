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
  // The quietest of three 1 s windows counts: a one-off burst (the test runner's own IPC, a GC, a
  // loaded box) can land in one window, a sampler that keeps ticking is in all three.
  const windows: number[] = [];
  for (let i = 0; i < 3; i++) {
    const before = wakeups();
    await new Promise((r) => setTimeout(r, 1000));
    windows.push(wakeups() - before);
  }
  const n = Math.min(...windows);
  // A 10 ms sampler wakes the thread ~100 times a second; a 100 ms one about 10.
  assert.ok(n < 40, `main thread woke ${windows.join("/")} times in three 1 s windows of idling`);
  assert.match(await m.registry.metrics(), /^nodejs_eventloop_lag_p99_seconds /m);
});
