// bench/http-passthrough/heap.mjs: the two memory figures behind the proxy's GC cost (issue 18),
// both independent of how busy the box is, unlike CPU time:
//
//   live heap   V8 heap in use after start-up and a full GC. Every full (mark-compact) GC marks all
//               of it, and streaming 1 MiB bodies triggers full GCs often (the chunks are external
//               memory), so a larger live heap costs CPU per MiB.
//   allocated   bytes allocated per request under wrk -c64 (V8's sampling heap profiler, objects
//               collected by scavenges included), by source file and function. Young-generation
//               allocation per request sets how often scavenges run.
//
//   node bench/http-passthrough/heap.mjs [--size 1k|1m] [--seconds 4] [--top 25] TARGET...
//
// TARGET is a data plane's dist/cli.js (run with bench/http-passthrough/harmony.toml.tmpl, access
// log on; `:llhttp` and `:nolog` suffixes as in cpu.mjs), `floor`, or floor-raw.mjs's `floor-raw*`. Each runs alone, pinned to CPU 1 with wrk and the upstream on CPU 0, with
// --max-semi-space-size=2 (HARMONY_NODE_FLAGS overrides) and an inspector on a free loopback port.
// All ports are dynamic, so it can run beside run.sh.
import { join } from "node:path";
import { parseArgs } from "node:util";
import { HERE, withProfiledTarget, wrk, wrkRequests } from "./profiled.mjs";

const { values: opt, positionals: targets } = parseArgs({
  allowPositionals: true,
  options: {
    size: { type: "string", default: "1k" },
    seconds: { type: "string", default: "4" },
    top: { type: "string", default: "25" },
  },
});
if (!targets.length) {
  console.error(
    "usage: node heap.mjs [--size 1k|1m] [--seconds 4] [--top 25] <dist/cli.js[:llhttp][:nolog] | floor | floor-raw*>...",
  );
  process.exit(2);
}
function measure(target) {
  const [cli, ...modes] = target.split(":");
  const o = {
    tmpPrefix: "harmony-heap-",
    readyPath: "1k",
    cli,
    accessLog: !modes.includes("nolog"),
    client: modes.includes("llhttp") ? "llhttp" : undefined,
    gcMetric: !modes.includes("nogc"),
  };
  return withProfiledTarget(target, o, async ({ port, cdp }) => {
    await cdp.send("HeapProfiler.enable");
    await cdp.send("HeapProfiler.collectGarbage");
    const live = await cdp.send("Runtime.evaluate", { expression: "process.memoryUsage().heapUsed" });
    wrk(port, 1, opt.size); // warm-up, not sampled
    await cdp.send("HeapProfiler.startSampling", {
      samplingInterval: 256,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    const out = wrk(port, Number(opt.seconds), opt.size, ["-s", join(HERE, "report.lua")]).toString();
    const { profile } = await cdp.send("HeapProfiler.stopSampling");
    return { live: live.result.value, requests: wrkRequests(out), profile };
  });
}

const kib = (b) => (b / 1024).toFixed(1);
for (const target of targets) {
  const { live, requests, profile } = await measure(target);
  const byFile = new Map();
  const byFn = new Map();
  let total = 0;
  const walk = (n) => {
    const { url, functionName, lineNumber } = n.callFrame;
    const file = url.includes("/dataplane/")
      ? "harmony " + url.slice(url.indexOf("/dist/") + 6)
      : url.includes("undici")
        ? "undici"
        : url.startsWith("node:")
          ? url
          : url
            ? url.split("/").slice(-2).join("/")
            : "(native)";
    const fn = `${functionName || "(anonymous)"} ${url.split("/").slice(-2).join("/")}:${lineNumber + 1}`;
    byFile.set(file, (byFile.get(file) ?? 0) + n.selfSize);
    byFn.set(fn, (byFn.get(fn) ?? 0) + n.selfSize);
    total += n.selfSize;
    for (const c of n.children) walk(c);
  };
  walk(profile.head);
  const per = (b) => String(Math.round(b / Math.max(requests, 1))).padStart(7);
  console.log(`\n## ${target}`);
  console.log(`live heap after start-up and a full GC: ${kib(live / 1024)} MiB`);
  console.log(`allocated per /${opt.size} request (sampled, ${requests} requests): ${per(total).trim()} B`);
  console.log("by file (B/request):");
  for (const [k, v] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`${per(v)}  ${k}`);
  console.log("by function (B/request):");
  for (const [k, v] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, Number(opt.top))) console.log(`${per(v)}  ${k}`);
}
