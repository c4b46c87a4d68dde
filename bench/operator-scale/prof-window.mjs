#!/usr/bin/env node
/**
 * Where a --cpu-prof profile of the operator spent a window of time (run.ts prints the steady
 * window in the profile's clock): self time by function, and time by the operator source file
 * (or package) on the stack nearest to the sample, which names the job (informer, api-health,
 * metrics...) better than the leaf does.
 *
 *   node bench/operator-scale/prof-window.mjs <file.cpuprofile> [fromµs toµs] [--top 25]
 */
import { readFileSync } from "node:fs";

const args = process.argv.slice(2);
const topAt = args.indexOf("--top");
const top = topAt >= 0 ? Number(args.splice(topAt, 2)[1]) : 25;
const [file, from, to] = args;
if (!file) {
  process.stderr.write("usage: prof-window.mjs <file.cpuprofile> [fromµs toµs] [--top 25]\n");
  process.exit(2);
}
const p = JSON.parse(readFileSync(file, "utf8"));
const lo = from ? Number(from) : -Infinity;
const hi = to ? Number(to) : Infinity;
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const where = (n) => {
  const u = n.callFrame.url.replace(/^file:\/\//, "");
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u);
  return m ? m[1] : u.includes("/operator/dist/") ? u.slice(u.indexOf("/operator/dist/") + 1) : u || "(native)";
};
const label = (n) => `${n.callFrame.functionName || "(anonymous)"} ${where(n)}:${n.callFrame.lineNumber + 1}`;
/** The operator's own frame nearest the leaf, else the first package frame, else the leaf's name. */
const owner = (id) => {
  let pkg;
  for (let n = byId.get(id); n; n = byId.get(parent.get(n.id))) {
    const w = where(n);
    if (w.startsWith("operator/dist/")) return w;
    if (!pkg && w !== "(native)" && !w.startsWith("node:")) pkg = w;
  }
  return pkg ?? byId.get(id).callFrame.functionName;
};

const self = new Map();
const own = new Map();
let t = p.startTime;
let total = 0;
let idle = 0;
for (let i = 0; i < p.samples.length; i++) {
  const dt = p.timeDeltas[i] ?? 0;
  t += dt;
  if (t < lo || t > hi) continue;
  const n = byId.get(p.samples[i]);
  // A sample's time is the gap to the next one: attribute it to this sample.
  const us = p.timeDeltas[i + 1] ?? 0;
  if (n.callFrame.functionName === "(idle)") {
    idle += us;
    continue;
  }
  total += us;
  self.set(label(n), (self.get(label(n)) ?? 0) + us);
  const o = owner(n.id);
  own.set(o, (own.get(o) ?? 0) + us);
}
const ms = (us) => (us / 1000).toFixed(1).padStart(8);
const print = (title, m) => {
  console.log(`\n${title}`);
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${ms(v)} ms  ${k}`);
};
console.log(
  `window ${((Math.min(hi, t) - Math.max(lo, p.startTime)) / 1e6).toFixed(1)} s: ${ms(total)} ms busy on the main thread (sampled), ${ms(idle)} ms idle`,
);
print("by owner (the operator file nearest the leaf, else the package)", own);
print("self time by function", self);
