/**
 * Preloaded into the operator by bench/operator-scale/run.ts with ALLOC_PROFILE=<dir>: who allocates
 * while pipelines arrive. V8's sampling heap profiler, objects later collected included (what a
 * heap snapshot cannot show: the garbage), from start until SIGUSR2, which the bench sends once every
 * pipeline is Programmed. Writes <dir>/alloc-<pid>.txt: sampled bytes by function (own allocation),
 * by module, and inclusive for the operator's phases (each counted at its outermost frame).
 * Plain JavaScript: the operator runs from dist/ without tsx.
 */
import { Session } from "node:inspector/promises";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const dir = process.env.ALLOC_PROFILE;
const session = new Session();
session.connect();
await session.post("HeapProfiler.startSampling", {
  samplingInterval: 32768,
  includeObjectsCollectedByMajorGC: true,
  includeObjectsCollectedByMinorGC: true,
});

const PHASES = [
  "reconcileGateway",
  "render",
  "renderPipeline",
  "checkConfig",
  "writeConfig",
  "writeStatus",
  "reconcileEndpoint",
  "patchStatus",
  "watch",
  "listNamespacedCustomObject",
  "listClusterCustomObject",
  "addOrUpdateObject",
];
const MiB = (n) => (n / 2 ** 20).toFixed(1);
const short = (url) =>
  url
    .replace(/^file:\/\//, "")
    .replace(/^.*\/node_modules\//, "node_modules/")
    .replace(/^.*\/(operator|dataplane)\/dist\//, "$1/");
const moduleOf = (url) => {
  const u = short(url);
  const m = /^node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u);
  return m ? m[1] : u.startsWith("operator/") || u.startsWith("dataplane/") ? u : u || "(native/V8)";
};

process.once("SIGUSR2", async () => {
  const { profile } = await session.post("HeapProfiler.stopSampling");
  const byFn = new Map();
  const byModule = new Map();
  let total = 0;
  const add = (m, k, v) => m.set(k, (m.get(k) ?? 0) + v);
  const size = (n) => n.selfSize + n.children.reduce((s, c) => s + size(c), 0);
  const inclusive = new Map();
  // Built-ins (JSON.parse, String.prototype.repeat...) have no URL: they count for their caller's module.
  const walk = (n, open, caller = "(native/V8)") => {
    const f = n.callFrame;
    const mod = f.url ? moduleOf(f.url) : caller;
    add(byFn, `${f.functionName || "(anonymous)"} ${short(f.url)}:${f.lineNumber + 1}`, n.selfSize);
    add(byModule, mod, n.selfSize);
    total += n.selfSize;
    const here = PHASES.includes(f.functionName) && !open.has(f.functionName);
    if (here) add(inclusive, f.functionName, size(n));
    const next = here ? new Set([...open, f.functionName]) : open;
    for (const c of n.children) walk(c, next, mod);
  };
  walk(profile.head, new Set());
  const top = (m, k) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, k)
      .map(([name, v]) => `  ${MiB(v).padStart(7)} MiB  ${name}`);
  const text = [
    `allocated (sampled, collected objects included) ${MiB(total)} MiB, pid ${process.pid}, uptime ${process.uptime().toFixed(1)} s`,
    `by phase (inclusive, outermost frame): ${[...inclusive].map(([k, v]) => `${k} ${MiB(v)}`).join(", ")} MiB`,
    "by module (own allocation):",
    ...top(byModule, 20),
    "by function (own allocation):",
    ...top(byFn, 40),
  ].join("\n");
  writeFileSync(join(dir, `alloc-${process.pid}.txt`), text + "\n");
});
