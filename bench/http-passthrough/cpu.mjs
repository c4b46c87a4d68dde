// bench/http-passthrough/cpu.mjs: where a proxy's CPU goes per 1 KiB request, by part (issue 18).
//
//   node bench/http-passthrough/cpu.mjs [--size 1k] [--seconds 6] [--top 30] [--rounds 1] [--json F] [--save DIR] TARGET...
//
// TARGET is a data plane's dist/cli.js (run with harmony.toml.tmpl, access log on; append
// `:nolog` for logging.access_log = false, `:llhttp` for the backend's client = "llhttp", `:nogc`
// for metrics.gc = false, or several: `cli.js:llhttp:nolog`), `floor`, or one of floor-raw.mjs's `floor-raw`, `floor-rawserver`,
// `floor-rawclient` (as run.sh names them). Each runs pinned to CPU 1 with wrk and the
// upstream on CPU 0, with the image's --max-semi-space-size=2 (HARMONY_NODE_FLAGS overrides).
// After a 2 s warm-up, V8's sampling CPU profiler (inspector Profiler domain, 50 µs interval) runs
// for exactly the measured wrk window, so start-up is not in it. Samples are summed by self time
// and divided by the requests wrk counted: µs of sampled CPU per request, split into GC, Node's
// own JS by module, native calls, undici, and Harmony's functions. With --rounds N the targets
// run interleaved N times (A B A B ...), so a comparison pairs turns seconds apart.
//
// Absolute µs here include the profiler's own overhead and the box's load; compare targets
// within one run. All ports are dynamic, so it can run beside run.sh (not during it).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { HERE, withProfiledTarget, wrk, wrkRequests } from "./profiled.mjs";

const { values: opt, positionals: targets } = parseArgs({
  allowPositionals: true,
  options: {
    size: { type: "string", default: "1k" },
    seconds: { type: "string", default: "6" },
    top: { type: "string", default: "30" },
    rounds: { type: "string", default: "1" },
    json: { type: "string" },
    save: { type: "string" },
  },
});
if (!targets.length) {
  console.error(
    "usage: node cpu.mjs [--size 1k] [--seconds 6] [--top 30] [--rounds 1] <dist/cli.js[:llhttp][:nolog] | floor | floor-raw*>...",
  );
  process.exit(2);
}
/** /proc/<pid>/stat utime + stime of a process, in µs. */
function cpuUs(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8");
  const parts = f.slice(f.lastIndexOf(")") + 2).split(" ");
  return ((Number(parts[11]) + Number(parts[12])) * 1e6) / 100; // USER_HZ = 100
}

function measure(target) {
  const [cli, ...modes] = target.split(":");
  const o = {
    tmpPrefix: "harmony-cpu-",
    readyPath: opt.size,
    cli,
    accessLog: !modes.includes("nolog"),
    client: modes.includes("llhttp") ? "llhttp" : undefined,
    http1Server: modes.includes("node") ? "node" : undefined,
    gcMetric: !modes.includes("nogc"),
    accessLogFile: true,
    settleMs: 500,
  };
  return withProfiledTarget(target, o, async ({ port, proxy, cdp }) => {
    wrk(port, 2, opt.size); // warm-up: JIT, pools, not sampled
    await cdp.send("Profiler.enable");
    await cdp.send("Profiler.setSamplingInterval", { interval: 50 });
    await cdp.send("Profiler.start");
    const cpu0 = cpuUs(proxy.pid);
    const out = wrk(port, Number(opt.seconds), opt.size, ["-s", join(HERE, "report.lua")]).toString();
    const cpu1 = cpuUs(proxy.pid);
    const { profile } = await cdp.send("Profiler.stop");
    return { requests: wrkRequests(out), profile, cpuUs: cpu1 - cpu0 };
  });
}

/** The part of the stack a profile node's self time belongs to. */
function partOf(cf) {
  const { url, functionName: fn } = cf;
  if (fn === "(garbage collector)") return "GC";
  if (fn === "(idle)") return "(idle)";
  if (fn === "(program)") return "(program: V8/native, unattributed)";
  if (fn === "(root)") return "(root)";
  if (!url) return `native ${fn}`;
  if (url.includes("/dataplane/")) return "harmony " + url.slice(url.indexOf("/dist/") + 6);
  if (url.includes("undici")) return "undici";
  if (url.startsWith("node:")) return url.replace(/^node:(internal\/)?/, "node ");
  const nm = url.lastIndexOf("node_modules/");
  if (nm >= 0) return "pkg " + url.slice(nm + 13).split("/")[0];
  return url.split("/").slice(-2).join("/");
}

/** Self time in µs by node id: sample counts weighted by the time each sample stood for. */
function selfTimes(profile) {
  const t = new Map();
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    // timeDeltas[i] is the time before sample i; the sample stands for the interval after it.
    const dt = timeDeltas[i + 1] ?? 0;
    t.set(samples[i], (t.get(samples[i]) ?? 0) + Math.max(dt, 0));
  }
  return t;
}

function summarize({ requests, profile, cpuUs: cpu }) {
  const self = selfTimes(profile);
  const byPart = new Map();
  const byFn = new Map();
  let busy = 0;
  for (const n of profile.nodes) {
    const us = self.get(n.id) ?? 0;
    if (!us) continue;
    const part = partOf(n.callFrame);
    byPart.set(part, (byPart.get(part) ?? 0) + us);
    const { url, functionName, lineNumber } = n.callFrame;
    const fn = `${functionName || "(anonymous)"} ${url ? url.split("/").slice(-2).join("/") + ":" + (lineNumber + 1) : ""}`;
    byFn.set(fn, (byFn.get(fn) ?? 0) + us);
    if (part !== "(idle)") busy += us;
  }
  // Inclusive time of Harmony's functions (and of the stdout write path under them): each node's
  // self time counts once for every distinct Harmony function on its stack.
  const inclusive = new Map();
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const walk = (n, stack) => {
    const { url, functionName, lineNumber } = n.callFrame;
    let key;
    if (url.includes("/dataplane/"))
      key = `${functionName || "(anonymous)"} ${url.split("/").slice(-2).join("/")}:${lineNumber + 1}`;
    const here = key && !stack.includes(key) ? [...stack, key] : stack;
    const us = self.get(n.id) ?? 0;
    if (us) for (const k of here) inclusive.set(k, (inclusive.get(k) ?? 0) + us);
    for (const c of n.children ?? []) walk(byId.get(c), here);
  };
  walk(profile.nodes[0], []);
  return { requests, cpu, busy, byPart, byFn, inclusive };
}

const rounds = Number(opt.rounds);
const runs = new Map(targets.map((t) => [t, []]));
for (let r = 0; r < rounds; r++) {
  for (const target of r % 2 ? [...targets].reverse() : targets) {
    const m = await measure(target);
    // --save DIR: the raw profile too, for Chrome DevTools or a closer look at one function's callers.
    if (opt.save)
      writeFileSync(
        join(opt.save, `${target.replace(/[^\w.-]+/g, "_")}-${r + 1}.cpuprofile`),
        JSON.stringify(m.profile),
      );
    const s = summarize(m);
    runs.get(target).push(s);
    process.stderr.write(
      `round ${r + 1} ${target}: ${s.requests} requests, ${(s.cpu / s.requests).toFixed(1)} µs CPU/req (/proc), ${(s.busy / s.requests).toFixed(1)} sampled\n`,
    );
  }
}

const f1 = (x) => x.toFixed(2).padStart(7);
const json = {};
for (const target of targets) {
  const rs = runs.get(target);
  const req = rs.reduce((a, s) => a + s.requests, 0);
  const sum = (key) => {
    const m = new Map();
    for (const s of rs) for (const [k, v] of s[key]) m.set(k, (m.get(k) ?? 0) + v);
    return m;
  };
  const byPart = sum("byPart");
  const byFn = sum("byFn");
  const inclusive = sum("inclusive");
  const busy = rs.reduce((a, s) => a + s.busy, 0);
  const cpu = rs.reduce((a, s) => a + s.cpu, 0);
  console.log(`\n## ${target}`);
  console.log(`${req} requests in ${rs.length} turn(s) of ${opt.seconds} s`);
  console.log(
    `CPU (/proc utime+stime): ${(cpu / req).toFixed(1)} µs/req; sampled, not idle: ${(busy / req).toFixed(1)} µs/req`,
  );
  console.log("by part (µs/request, self time):");
  for (const [k, v] of [...byPart]
    .sort((a, b) => b[1] - a[1])
    .filter(([k]) => k !== "(idle)")
    .slice(0, 25))
    console.log(`${f1(v / req)}  ${k}`);
  console.log("by function (µs/request, self time):");
  for (const [k, v] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, Number(opt.top)))
    console.log(`${f1(v / req)}  ${k}`);
  if (inclusive.size) {
    console.log("Harmony's functions, inclusive (µs/request, self time of everything they call):");
    for (const [k, v] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, Number(opt.top)))
      console.log(`${f1(v / req)}  ${k}`);
  }
  json[target] = {
    requests: req,
    cpu_us_per_req: cpu / req,
    sampled_us_per_req: busy / req,
    parts: Object.fromEntries([...byPart].map(([k, v]) => [k, v / req])),
  };
}
if (opt.json) writeFileSync(opt.json, JSON.stringify(json, null, 1));
