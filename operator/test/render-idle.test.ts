/**
 * Rendering leaves nothing running. Each render is validated with the data plane's checker, which
 * used to build a full Metrics per call, and with it prom-client's default metrics: an event-loop
 * delay monitor on a 10 ms timer that nothing ever stopped, holding that Metrics (and the compiled
 * generation's 1,000 pipelines of metric children) for the life of the process. After 50 renders of
 * a 1,000-pipeline gateway the operator woke 5,000 times a second with nothing to do and kept
 * hundreds of MiB (bench/operator-scale). Counted in wake-ups of the main thread, never in time.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import type { HarmonyEndpoint, HarmonyGateway, HarmonyPipeline } from "../src/api/v1alpha1.js";
import { render } from "../src/translator/render.js";

const wakeups = () =>
  Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/self/task/${process.pid}/status`, "utf8"))![1]);

const gw = {
  metadata: { name: "edge", namespace: "ns", uid: "u", generation: 1 },
  spec: { networks: [{ name: "web", port: 8080 }] },
} as unknown as HarmonyGateway;
const ep = {
  metadata: { name: "ep", namespace: "ns" },
  spec: { service: "http", pathPrefix: "/a" },
} as HarmonyEndpoint;
const pl = {
  metadata: { name: "p", namespace: "ns", generation: 1 },
  spec: { gatewayRef: { name: "edge" }, endpoints: [{ name: "ep" }], backends: [{ service: "http", url: "http://x" }] },
} as unknown as HarmonyPipeline;

test("renders leave no timer behind: an idle operator stays idle", async () => {
  for (let i = 0; i < 5; i++) {
    const r = render(
      gw,
      [pl],
      () => ep,
      () => undefined,
    );
    assert.equal(r.pipelines[0]?.programmed, true, JSON.stringify(r.pipelines));
  }
  await new Promise((r) => setTimeout(r, 200));
  // A leaked timer wakes the thread in every window; a one-off (a GC helper finishing, the test
  // runner's own IPC under load) in one of them. So the quietest of three 1 s windows counts.
  const counts: number[] = [];
  for (let w = 0; w < 3; w++) {
    const before = wakeups();
    await new Promise((r) => setTimeout(r, 1000));
    counts.push(wakeups() - before);
  }
  // One leaked 10 ms monitor wakes it ~100 times a second (five fire together); none, about once.
  assert.ok(
    Math.min(...counts) < 20,
    `main thread woke ${counts.join(", ")} times in three 1 s windows after 5 renders`,
  );
});
