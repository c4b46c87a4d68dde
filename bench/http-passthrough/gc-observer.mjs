// bench/http-passthrough/gc-observer.mjs: what recording every GC's duration costs (issue 18,
// `nodejs_gc_duration_seconds`), per GC and per 1 KiB-like "request", apart from everything else.
//
//   node bench/http-passthrough/gc-observer.mjs [--rounds 5] [--requests 400000] [--bytes 19000] \
//     [--semi 2,16] [--modes none,noop,prom,harmony]
//
// Each turn is a child process pinned to CPU 1 (taskset) with `--max-semi-space-size=<semi>`. It
// allocates like the proxy does per request (--bytes of short-lived small objects and strings, 64
// "requests" in flight, so a scavenge has survivors to copy) and reports its CPU time per request
// (process.cpuUsage) and the GCs it saw. Modes: `none` (no observer), `noop` (a PerformanceObserver
// on 'gc' whose callback does nothing: Node's own per-GC work), `prom` (prom-client's default gc
// metric), `harmony` (the data plane's recorder, dataplane/dist/observability/gc-metric.js).
// Turns are interleaved by round (every mode and semi-space once per round, order rotating), and
// the summary gives medians; the per-GC cost is (mode − none) ÷ GCs in the same round.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const ROOT = new URL("../../", import.meta.url);

if (process.env.GC_OBSERVER_CHILD) {
  await child(process.env.GC_OBSERVER_CHILD);
} else {
  await parent();
}

async function child(mode) {
  const requests = Number(process.env.REQUESTS);
  const bytes = Number(process.env.BYTES);
  const { PerformanceObserver } = await import("node:perf_hooks");
  let gcs = 0;
  let counter; // the recorder's own count of the GCs it saw (harmony mode)
  // Every mode loads the same code (prom-client, the data plane's recorder), so a difference is
  // what the mode runs per GC, not a bigger heap.
  const { createRequire } = await import("node:module");
  const req = createRequire(new URL("dataplane/package.json", ROOT));
  const client = req("prom-client");
  const promGc = req("prom-client/lib/metrics/gc.js");
  const { GcMetric } = await import(new URL("dataplane/dist/observability/gc-metric.js", ROOT).href);
  const count = () =>
    new PerformanceObserver((list) => (gcs += list.getEntries().length)).observe({ entryTypes: ["gc"] });
  if (mode === "noop") {
    count();
  } else if (mode === "prom") {
    promGc(new client.Registry(), {});
    count();
  } else if (mode === "harmony") {
    const m = new GcMetric(new client.Registry());
    m.enable();
    counter = () => m.observed;
  }
  // Objects and strings of a request's sizes, garbage once the request is done; 64 requests in
  // flight keep a small state each (a ring), so a scavenge has a few survivors to copy, as the
  // proxy's in-flight exchanges are, and costs what a scavenge of the proxy costs, not more.
  const ring = new Array(64).fill(null);
  const scratch = new Array(8).fill(null);
  const per = Math.max(1, Math.round(bytes / 160));
  let sink = 0;
  const turn = () => new Promise((r) => setImmediate(r));
  const t0 = process.cpuUsage();
  for (let i = 0; i < requests; i++) {
    for (let k = 0; k < per; k++) {
      // ~160 B each: an object with a few fields, a short string and a small array, stored where
      // the optimizer cannot prove it dead (so it is really allocated), and overwritten soon.
      scratch[k & 7] = { a: i, b: k, c: "x" + ((i * 31 + k) % 9973), d: [k, i] };
    }
    ring[i & 63] = { id: i, last: scratch[0] };
    sink += scratch[0].b;
    // An event-loop turn per 16 requests, as the proxy has at -c64: Node reports GCs to observers
    // from the loop (an immediate), so a loop that never yields would defer all of that work.
    if ((i & 15) === 15) await turn();
  }
  await turn();
  const t = process.cpuUsage(t0);
  const seen = counter ? counter() : gcs;
  process.stdout.write(JSON.stringify({ mode, us: t.user + t.system, requests, gcs: seen, sink }) + "\n");
}

async function parent() {
  const { values: opt } = parseArgs({
    options: {
      rounds: { type: "string", default: "5" },
      requests: { type: "string", default: "400000" },
      bytes: { type: "string", default: "19000" },
      semi: { type: "string", default: "2,16" },
      modes: { type: "string", default: "none,noop,prom,harmony" },
    },
  });
  const modes = opt.modes.split(",");
  const semis = opt.semi.split(",");
  const turns = semis.flatMap((s) => modes.map((m) => ({ semi: s, mode: m })));
  const results = new Map(turns.map((t) => [`${t.semi} ${t.mode}`, []]));
  for (let r = 0; r < Number(opt.rounds); r++) {
    const order = turns.map((_, i) => turns[(i + r) % turns.length]);
    const round = new Map();
    for (const { semi, mode } of order) {
      const out = execFileSync(
        "taskset",
        ["-c", "1", process.execPath, `--max-semi-space-size=${semi}`, fileURLToPath(import.meta.url)],
        {
          env: { ...process.env, GC_OBSERVER_CHILD: mode, REQUESTS: opt.requests, BYTES: opt.bytes },
          cwd: HERE,
        },
      ).toString();
      const j = JSON.parse(out);
      round.set(`${semi} ${mode}`, j);
    }
    for (const { semi, mode } of turns) {
      const j = round.get(`${semi} ${mode}`);
      const none = round.get(`${semi} none`);
      const gcs = j.gcs || round.get(`${semi} noop`)?.gcs || 0;
      results.get(`${semi} ${mode}`).push({
        usPerReq: j.us / j.requests,
        gcsPer1k: (gcs * 1000) / j.requests,
        usPerGc: none && gcs ? (j.us - none.us) / gcs : NaN,
      });
    }
    process.stderr.write(`round ${r + 1} done\n`);
  }
  const med = (xs) => {
    const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
    return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
  };
  console.log(
    "| semi-space MiB | mode | µs/request (median) | GCs per 1,000 requests | µs per GC over none (median) |",
  );
  console.log("|---|---|---|---|---|");
  for (const { semi, mode } of turns) {
    const rs = results.get(`${semi} ${mode}`);
    console.log(
      `| ${semi} | ${mode} | ${med(rs.map((x) => x.usPerReq)).toFixed(3)} | ${med(rs.map((x) => x.gcsPer1k)).toFixed(1)} | ${mode === "none" ? "" : med(rs.map((x) => x.usPerGc)).toFixed(1)} |`,
    );
  }
}
