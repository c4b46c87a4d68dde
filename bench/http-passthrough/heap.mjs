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
// log on) or `floor`. Each runs alone, pinned to CPU 1 with wrk and the upstream on CPU 0, with
// --max-semi-space-size=2 (HARMONY_NODE_FLAGS overrides) and an inspector on a free loopback port.
// All ports are dynamic, so it can run beside run.sh.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

const HERE = new URL(".", import.meta.url).pathname;
const { values: opt, positionals: targets } = parseArgs({
  allowPositionals: true,
  options: {
    size: { type: "string", default: "1k" },
    seconds: { type: "string", default: "4" },
    top: { type: "string", default: "25" },
  },
});
if (!targets.length) {
  console.error("usage: node heap.mjs [--size 1k|1m] [--seconds 4] [--top 25] <dist/cli.js | floor>...");
  process.exit(2);
}
const FLAGS = (process.env.HARMONY_NODE_FLAGS ?? "--max-semi-space-size=2").split(" ").filter(Boolean);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const freePort = () =>
  new Promise((r) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => r(port));
    });
  });
const wrk = (port, seconds, lua = []) =>
  execFileSync("taskset", [
    "-c",
    "0",
    "wrk",
    "-t1",
    "-c64",
    `-d${seconds}s`,
    ...lua,
    `http://127.0.0.1:${port}/${opt.size}`,
  ]);

/** A minimal Chrome DevTools Protocol client over Node's global WebSocket. */
async function inspector(url) {
  const ws = new WebSocket(url);
  await new Promise((r, j) => {
    ws.addEventListener("open", r);
    ws.addEventListener("error", j);
  });
  let id = 0;
  const waiting = new Map();
  ws.addEventListener("message", (e) => {
    const m = JSON.parse(e.data);
    if (m.id && waiting.has(m.id)) {
      waiting.get(m.id)(m.result);
      waiting.delete(m.id);
    }
  });
  return {
    send: (method, params = {}) =>
      new Promise((r) => {
        waiting.set(++id, r);
        ws.send(JSON.stringify({ id, method, params }));
      }),
    close: () => ws.close(),
  };
}

async function measure(target) {
  const [up, port, mgmt] = [await freePort(), await freePort(), await freePort()];
  const dir = mkdtempSync(join(tmpdir(), "harmony-heap-"));
  const upstream = spawn("taskset", ["-c", "0", "node", join(HERE, "upstream.mjs")], {
    env: { ...process.env, PORT: String(up) },
    stdio: "ignore",
  });
  let args = [join(HERE, "floor.mjs")];
  if (target !== "floor") {
    const toml = readFileSync(join(HERE, "harmony.toml.tmpl"), "utf8")
      .replaceAll("@UPSTREAM_PORT@", up)
      .replaceAll("@HARMONY_PORT@", port)
      .replaceAll("@HARMONY_MGMT_PORT@", mgmt)
      .replaceAll("@ACCESS_LOG@", "true")
      // One worker: no `workers` line (run.sh does the same), so an older build reads it too.
      .replace(/^workers = .*\n/m, "");
    writeFileSync(join(dir, "harmony.toml"), toml);
    args = [target, "--config", join(dir, "harmony.toml")];
  }
  const proxy = spawn("taskset", ["-c", "1", "node", ...FLAGS, "--inspect=127.0.0.1:0", ...args], {
    env: { ...process.env, NODE_ENV: "production", PORT: String(port), UPSTREAM: `http://127.0.0.1:${up}` },
    stdio: ["ignore", "ignore", "pipe"],
  });
  try {
    let stderr = "";
    proxy.stderr.setEncoding("utf8").on("data", (c) => (stderr += c));
    let wsUrl;
    for (let i = 0; i < 240 && !wsUrl; i++) {
      wsUrl = /Debugger listening on (ws:\/\/\S+)/.exec(stderr)?.[1];
      if (!wsUrl) await sleep(250);
    }
    let ready = false;
    for (let i = 0; i < 240 && !ready; i++) {
      ready = await fetch(`http://127.0.0.1:${port}/1k`).then(
        (r) => r.ok,
        () => false,
      );
      if (!ready) await sleep(250);
    }
    if (!wsUrl || !ready) throw new Error(`${target} did not start:\n${stderr.slice(-2000)}`);
    const cdp = await inspector(wsUrl);
    await cdp.send("HeapProfiler.enable");
    await cdp.send("HeapProfiler.collectGarbage");
    const live = await cdp.send("Runtime.evaluate", { expression: "process.memoryUsage().heapUsed" });
    wrk(port, 1); // warm-up, not sampled
    await cdp.send("HeapProfiler.startSampling", {
      samplingInterval: 256,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    const out = wrk(port, Number(opt.seconds), ["-s", join(HERE, "report.lua")]).toString();
    const { profile } = await cdp.send("HeapProfiler.stopSampling");
    cdp.close();
    const requests = Number(/"requests":(\d+)/.exec(out)?.[1] ?? 0);
    return { live: live.result.value, requests, profile };
  } finally {
    proxy.kill();
    upstream.kill();
  }
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
