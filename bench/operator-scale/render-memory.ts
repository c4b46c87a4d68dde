/**
 * bench/operator-scale/render-memory: the operator's render of one gateway with N pipelines, in
 * this process, without an API server: what a render allocates and keeps, and how long it takes,
 * as pipelines arrive (STEPS renders of a growing set, as the operator sees them at first apply)
 * and then for EDITS edits of one endpoint (a CR change at scale).
 *
 *   node --expose-gc --import tsx bench/operator-scale/render-memory.ts          # N=1000
 *   ALLOC=1 node --expose-gc --import tsx bench/operator-scale/render-memory.ts  # + who allocates
 *
 * ALLOC=1 samples every allocation of the renders (V8's sampling heap profiler, collected objects
 * included) and prints the functions that allocated most, by their own frames.
 */
import { readFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import type { HarmonyEndpoint, HarmonyGateway, HarmonyPipeline } from "../../operator/src/api/v1alpha1.js";
import { render } from "../../operator/src/translator/render.js";

const N = Number(process.env.N ?? 1000);
const STEPS = Number(process.env.STEPS ?? 4);
const EDITS = Number(process.env.EDITS ?? 5);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc");
const MiB = (b: number) => (b / 2 ** 20).toFixed(1);
const hwm = () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))![1]) * 1024;

const ns = "scale";
const meta = (name: string, generation = 1) => ({
  name,
  namespace: ns,
  uid: `uid-${name}`,
  generation,
  creationTimestamp: "2026-12-05T00:00:00Z",
});
const gw = {
  apiVersion: "harmony.runbeam.io/v1alpha1",
  kind: "HarmonyGateway",
  metadata: meta("edge"),
  spec: { networks: [{ name: "web", port: 8080, bindAddress: "127.0.0.1" }], management: { port: 9090 } },
} as unknown as HarmonyGateway;
const endpoints = new Map<string, HarmonyEndpoint>();
const pipelines: HarmonyPipeline[] = [];
for (let i = 0; i < N; i++) {
  const id = String(i).padStart(4, "0");
  endpoints.set(`ep-${id}`, {
    metadata: meta(`ep-${id}`),
    spec: { service: "http", pathPrefix: `/p${id}` },
  } as unknown as HarmonyEndpoint);
  pipelines.push({
    metadata: meta(`pl-${id}`),
    spec: {
      gatewayRef: { name: "edge" },
      endpoints: [{ name: `ep-${id}` }],
      backends: [{ service: "http", url: `http://127.0.0.1:1/pipeline/${id}` }],
    },
  } as unknown as HarmonyPipeline);
}
const lookup = (_ns: string, name: string) => endpoints.get(name);
const noSecrets = () => undefined;
const noConfigMaps = () => undefined;
// One render cache for the gateway, as the operator keeps (an older render() ignores the argument).
const Cache = await import("../../operator/src/translator/render-cache.js")
  .then((m: { RenderCache?: new () => unknown }) => m.RenderCache)
  .catch(() => undefined);
const checker = Cache ? new Cache() : undefined;
const renderNow = (ps: HarmonyPipeline[]) =>
  (render as (...a: unknown[]) => unknown)(gw, ps, lookup, noSecrets, noConfigMaps, undefined, checker);
// The operator yields to its event loop between reconciles (pools a check made close then).
const tick = () => new Promise((r) => setImmediate(r));
/** CPU time of this process (ms): wall time on a loaded machine says little. */
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

const session = new Session();
if (process.env.ALLOC) {
  session.connect();
  await session.post("HeapProfiler.startSampling", {
    samplingInterval: 16384,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
}

gc();
const base = process.memoryUsage();
const hwm0 = hwm();
let kept: unknown;
const times: string[] = [];
for (let s = 1; s <= STEPS; s++) {
  const t = cpuMs();
  kept = renderNow(pipelines.slice(0, Math.round((N * s) / STEPS)));
  times.push(`${Math.round((N * s) / STEPS)}: ${(cpuMs() - t).toFixed(0)} ms`);
  await tick();
}
const arrived = process.memoryUsage();
const edits: number[] = [];
for (let e = 1; e <= EDITS; e++) {
  const ep = endpoints.get("ep-0000")!;
  endpoints.set("ep-0000", {
    ...ep,
    metadata: { ...ep.metadata, generation: e + 1 },
    spec: { ...ep.spec, pathPrefix: `/moved-${e}` },
  });
  const t = cpuMs();
  kept = renderNow(pipelines);
  edits.push(cpuMs() - t);
  await tick();
}
const before = process.memoryUsage();
gc();
const after = process.memoryUsage();
const r = kept as { pipelines: { programmed: boolean }[]; hash: string };

const out = (s: string) => process.stdout.write(s + "\n");
out(
  `## render-memory — ${new Date().toISOString()} · node ${process.version} · N=${N} · ${checker ? "incremental" : "whole"} check`,
);
out(`programmed ${r.pipelines.filter((p) => p.programmed).length}/${N}, hash ${r.hash.slice(0, 12)}`);
out(`render CPU as pipelines arrive: ${times.join(", ")}`);
out(`render CPU after an edit: ${edits.map((t) => t.toFixed(0)).join(", ")} ms`);
out(`peak RSS (VmHWM) ${MiB(hwm())} MiB, at start ${MiB(hwm0)} MiB`);
out(
  `heap used: start ${MiB(base.heapUsed)}, after arrival ${MiB(arrived.heapUsed)}, end ${MiB(before.heapUsed)}, after gc ${MiB(after.heapUsed)} MiB (heap total at end ${MiB(before.heapTotal)})`,
);

if (process.env.ALLOC) {
  type Node = {
    callFrame: { functionName: string; url: string; lineNumber: number };
    selfSize: number;
    children: Node[];
  };
  const { profile } = (await session.post("HeapProfiler.stopSampling")) as unknown as { profile: { head: Node } };
  const byFn = new Map<string, number>();
  let total = 0;
  const walk = (n: Node) => {
    const f = n.callFrame;
    const k = `${f.functionName || "(anonymous)"} ${f.url.replace(/^.*\/(node_modules|src)\//, "$1/")}:${f.lineNumber + 1}`;
    byFn.set(k, (byFn.get(k) ?? 0) + n.selfSize);
    total += n.selfSize;
    n.children.forEach(walk);
  };
  walk(profile.head);
  // Inclusive, by phase: each function's whole subtree, counted at its outermost frame.
  const phases = ["renderPipeline", "checkConfig", "loadConfig", "resolveConfig", "compileGeneration", "Metrics"];
  const inclusive = new Map<string, number>();
  const size = (n: Node): number => n.selfSize + n.children.reduce((s, c) => s + size(c), 0);
  const phase = (n: Node, open: Set<string>) => {
    const f = n.callFrame.functionName;
    const here = phases.includes(f) && !open.has(f);
    if (here) inclusive.set(f, (inclusive.get(f) ?? 0) + size(n));
    const next = here ? new Set([...open, f]) : open;
    n.children.forEach((c) => phase(c, next));
  };
  phase(profile.head, new Set());
  out(`by phase (inclusive): ${[...inclusive].map(([k, v]) => `${k} ${MiB(v)}`).join(", ")} MiB`);
  out(`allocated (sampled) ${MiB(total)} MiB; top functions by own allocation:`);
  for (const [k, v] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, 25)) out(`  ${MiB(v).padStart(7)} MiB  ${k}`);
}
