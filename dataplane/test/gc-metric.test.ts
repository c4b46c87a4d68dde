/**
 * `nodejs_gc_duration_seconds` (observability/gc-metric.ts): every GC counted, by kind, and
 * `metrics.gc = false` takes the observer and the metric away (and a reload brings them back).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Metrics } from "../src/observability/metrics.js";
import { baseConfig, echoPipeline, http, startDataplane, tempDir } from "./helpers.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const majorCount = async (m: Metrics) =>
  Number(/^nodejs_gc_duration_seconds_count\{kind="major"\} (\d+)$/m.exec(await m.registry.metrics())?.[1] ?? 0);

test("every GC is counted, also several in one event-loop turn", async () => {
  const m = new Metrics();
  await new Promise((r) => setImmediate(r));
  const before = await majorCount(m);
  // Three full GCs before Node tells the observer: they reach it as one batch of three entries.
  gc();
  gc();
  gc();
  // Node tells observers from the event loop: give it a few turns (a loaded box is slow to).
  for (let i = 0; i < 40 && (await majorCount(m)) - before < 3; i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok((await majorCount(m)) - before >= 3, `counted ${(await majorCount(m)) - before} of 3`);
  m.setGcMetric(false);
});

test("metrics.gc = false: no GC metric on /metrics; a reload turns it back on", async (t) => {
  const dir = tempDir();
  const file = join(dir, "config.toml");
  const config = (gcLine: string) =>
    baseConfig(echoPipeline("e", "/e")).replace("[management]", `${gcLine}\n[management]`);
  writeFileSync(file, config("[metrics]\ngc = false\n"));
  const dp = await startDataplane(file, { HARMONY_WATCH: "0" });
  t.after(() => dp.stop());
  const scrape = async () => (await http(dp.url("management", "/metrics"))).text;
  const reload = async () => {
    const r = await http(dp.url("management", "/admin/reload"), { method: "POST" });
    assert.equal(r.status, 200, r.text);
    assert.equal((r.json() as { ok: boolean }).ok, true, r.text);
  };

  let text = await scrape();
  assert.doesNotMatch(text, /nodejs_gc_duration_seconds/);
  assert.match(text, /^nodejs_heap_size_used_bytes /m, "the other process metrics stay");

  writeFileSync(file, config(""));
  await reload();
  // Garbage until a GC has been observed (a scavenge comes within a few MiB at 2 MiB semi-spaces).
  for (let i = 0; i < 200 && !/^nodejs_gc_duration_seconds_count\{kind="minor"\} [1-9]/m.test(text); i++) {
    await http(dp.url("default", "/e/" + "x".repeat(2000)));
    text = await scrape();
  }
  assert.match(text, /^# TYPE nodejs_gc_duration_seconds histogram$/m);
  assert.match(text, /^nodejs_gc_duration_seconds_bucket\{le="0.001",kind="minor"\} \d+$/m);
  assert.match(text, /^nodejs_gc_duration_seconds_count\{kind="minor"\} [1-9]\d*$/m);

  writeFileSync(file, config("[metrics]\ngc = false\n"));
  await reload();
  assert.doesNotMatch(await scrape(), /nodejs_gc_duration_seconds/);
});
