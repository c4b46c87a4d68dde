/**
 * bench/operator-scale: N HarmonyPipelines (each with its own HarmonyEndpoint) on one gateway,
 * created against the real kube-apiserver of test/controlplane. Reports time until every pipeline
 * is Programmed, the operator's CPU and peak memory over that time, and its writes during a
 * steady-state window (the target is zero).
 *
 *   node --import tsx bench/operator-scale/run.ts            # N=1000, 60 s steady state, 100 CR changes
 *   CHANGES=40 node --import tsx bench/operator-scale/run.ts # fewer CR changes (their p99 is then the max)
 *   N=200 STEADY_S=20 node --import tsx bench/operator-scale/run.ts
 *   N=10000 node --import tsx bench/operator-scale/run.ts    # sharded config (README: Large gateways)
 *   OPERATOR_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" SKIP_CHANGE=1 ...   # profile the operator
 *   node bench/operator-scale/prof-window.mjs /tmp/prof/*.cpuprofile <steady window µs>   # where that window went
 *   HEAP_SNAPSHOT=/tmp/snap STEADY_S=30 ...   # a heap snapshot of the operator as the steady state starts
 *   ALLOC_PROFILE=/tmp/alloc SKIP_CHANGE=1 ... # who allocated (garbage included) until all are Programmed
 *   OPERATOR_ARGS="--relist-interval 60s" ...  # more operator flags (a relist inside a 60 s steady state)
 *   OPERATOR_LOG=/tmp/op.log OPERATOR_NODE_ARGS=--trace-gc ...   # the operator's stdout (its log, --trace-gc lines) to a file
 *
 * The operator runs with the flags of its image (docker/operator.Dockerfile's NODE_OPTIONS), its
 * old-space share of the memory limit turned into the size Node computes under the chart's default
 * limit (test/operator-heap.ts); IMAGE_FLAGS=0 without any.
 */
import { spawn } from "node:child_process";
import { createWriteStream, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startControlPlane } from "../../test/controlplane/controlplane.js";
import { startProjectedSyncer, startSyncer } from "../../test/syncer.js";
import { freePort, startDataplane, startUpstream } from "../../dataplane/test/helpers.js";
import { benchNodeFlags } from "../../test/operator-heap.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const N = Number(process.env.N ?? 1000);
const STEADY_S = Number(process.env.STEADY_S ?? 60);
/**
 * CR changes timed until served. Percentiles are nearest-rank: p99 of n is the ⌈0.99·n⌉-th fastest,
 * so with 100 it is the second slowest, and with fewer than 100 it is the slowest (the max).
 */
const CHANGES = Number(process.env.CHANGES ?? 100);
const CHUNK = 250;
/** Names as before up to 10,000 (ep-0000), one digit more beyond. */
const DIGITS = Math.max(4, String(N - 1).length);
const ns = "scale";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const out = (s: string) => process.stdout.write(s + "\n");

function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in clock ticks of 1/100 s
}
/** CPU seconds per thread name (V8's GC helpers, libuv's pool, the main thread...). */
function threadCpu(pid: number): Map<string, number> {
  const m = new Map<string, number>();
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      const raw = readFileSync(`/proc/${pid}/task/${t}/stat`, "utf8");
      const name = raw.slice(raw.indexOf("(") + 1, raw.lastIndexOf(")"));
      const f = raw.slice(raw.lastIndexOf(") ") + 2).split(" ");
      m.set(name, (m.get(name) ?? 0) + (Number(f[11]) + Number(f[12])) / 100);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return m;
}
/**
 * This control plane's kube-apiserver and etcd, by binary name: their command lines name its
 * directory (cert and data dirs), which no other bench's or test's control plane shares.
 */
function controlPlanePids(dir: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0");
    } catch {
      continue; // ended between the listing and the read
    }
    const bin = argv[0]!.split("/").pop()!;
    if ((bin === "kube-apiserver" || bin === "etcd") && argv.some((a) => a.includes(dir))) m.set(bin, Number(p));
  }
  return m;
}
/** The 1, 5 and 15 minute load averages (the box is shared: every figure comes with its load). */
const loadavg = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
/** Nearest-rank percentile of sorted values (see CHANGES). */
const pct = (sorted: number[], p: number) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
const threadSplit = (now: Map<string, number>, before: Map<string, number>) =>
  [...now]
    .map(([n, v]) => [n, v - (before.get(n) ?? 0)] as const)
    .filter(([, v]) => v > 0)
    .sort((a, b) => b[1] - a[1])
    .map(([n, v]) => `${n} ${v.toFixed(2)}`)
    .join(", ");
function peakRssMiB(pid: number): number {
  return Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
}

// The data plane's ports, free now (fixed ones clashed with other benches on a shared machine).
const webPort = await freePort();
const mgmtPort = await freePort();
// As the operator's image runs it in the chart's default install; IMAGE_FLAGS=0: without.
const opFlags = [
  ...(process.env.IMAGE_FLAGS === "0" ? [] : benchNodeFlags()),
  ...(process.env.OPERATOR_NODE_ARGS ?? "").split(" ").filter(Boolean),
];
// Both signal the operator with SIGUSR2.
if (process.env.HEAP_SNAPSHOT && process.env.ALLOC_PROFILE) throw new Error("HEAP_SNAPSHOT or ALLOC_PROFILE, not both");
const cp = await startControlPlane();
const op = spawn(
  process.execPath,
  [
    ...(process.env.HEAP_SNAPSHOT
      ? ["--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${process.env.HEAP_SNAPSHOT}`]
      : []),
    ...(process.env.ALLOC_PROFILE ? ["--import", join(ROOT, "bench/operator-scale/alloc-profile.mjs")] : []),
    ...opFlags,
    // OPERATOR_MAIN: another build of the operator (e.g. an older commit's) as the baseline of a paired run.
    process.env.OPERATOR_MAIN ?? join(ROOT, "operator/dist/main.js"),
    "--kubeconfig",
    cp.kubeconfig,
    "--leader-elect",
    "false",
    "--manage-workloads",
    "false",
    "--health-port",
    "0",
    "--log-level",
    "info",
    // OPERATOR_ARGS: more operator flags, e.g. "--relist-interval 60s" to put a relist in the steady state.
    ...(process.env.OPERATOR_ARGS ?? "").split(" ").filter(Boolean),
  ],
  {
    stdio: ["ignore", "pipe", "inherit"],
  },
);
let log = "";
// Only until the health port is known: a whole run's log (or --trace-gc) would fill this process.
op.stdout.setEncoding("utf8").on("data", (c: string) => {
  if (log.length < 1 << 20) log += c;
});
if (process.env.OPERATOR_LOG) op.stdout.pipe(createWriteStream(process.env.OPERATOR_LOG));
try {
  const must = async (args: string[], input?: string) => {
    const r = await cp.kubectl(args, input);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  await must(["apply", "--server-side", "-f", join(ROOT, "crds")]);
  await must(["wait", "--for=condition=Established", "--timeout=60s", "crd/harmonypipelines.harmony.runbeam.io"]);
  await must(["create", "namespace", ns]);
  while (!/"health_port":(\d+)/.test(log)) await sleep(50);
  const port = Number(/"health_port":(\d+)/.exec(log)![1]);
  const writes = async () =>
    (await (await fetch(`http://127.0.0.1:${port}/metrics`)).text())
      .split("\n")
      .filter((l) => l.startsWith("harmony_operator_writes_total{"))
      .reduce((n, l) => n + Number(l.split(" ").pop()), 0);

  /**
   * The operator's GC pauses by kind (prom-client's nodejs_gc_duration_seconds: a major GC's final
   * pause, not its incremental steps or concurrent marking, which show in the thread split). A
   * major GC in the steady window is V8 shrinking the heap once the arrival's garbage stops coming,
   * not steady work: this says whether the window caught it.
   */
  const gcStats = async () => {
    const m = new Map<string, { n: number; s: number }>();
    for (const l of (await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).split("\n")) {
      const g = /^nodejs_gc_duration_seconds_(count|sum)\{kind="(\w+)"\} (\S+)$/.exec(l);
      if (!g) continue;
      const e = m.get(g[2]!) ?? { n: 0, s: 0 };
      if (g[1] === "count") e.n = Number(g[3]);
      else e.s = Number(g[3]);
      m.set(g[2]!, e);
    }
    return m;
  };
  const gcSince = (a: Map<string, { n: number; s: number }>, b: Map<string, { n: number; s: number }>) =>
    [...b]
      .map(([k, v]) => [k, v.n - (a.get(k)?.n ?? 0), v.s - (a.get(k)?.s ?? 0)] as const)
      .filter(([, n]) => n > 0)
      .map(([k, n, s]) => `${k} ${n} (${(s * 1000).toFixed(0)} ms)`)
      .join(", ") || "none";
  /**
   * Writes the API server took, by verb and resource, from its own request counter: the operator's
   * metric counts status and object writes, not the Events each status transition records.
   */
  const apiWrites = async (all = false) => {
    const m = new Map<string, number>();
    for (const l of (await must(["get", "--raw", "/metrics"])).split("\n")) {
      if (!l.startsWith("apiserver_request_total{")) continue;
      const label = (k: string) => new RegExp(`[{,]${k}="([^"]*)"`).exec(l)?.[1] ?? "";
      const verb = label("verb");
      if (!all && !["POST", "PUT", "PATCH", "APPLY", "DELETE"].includes(verb)) continue;
      const sub = label("subresource");
      const key = `${verb} ${label("resource")}${sub ? "/" + sub : ""}`;
      m.set(key, (m.get(key) ?? 0) + Number(l.split(" ").pop()));
    }
    return m;
  };
  const writesSince = (a: Map<string, number>, b: Map<string, number>) =>
    [...b]
      .map(([k, v]) => [k, v - (a.get(k) ?? 0)] as const)
      .filter(([, v]) => v > 0)
      .sort((x, y) => y[1] - x[1])
      .map(([k, v]) => `${k} ${v}`)
      .join(", ");
  const api0 = await apiWrites();
  await must(
    ["apply", "--server-side", "-f", "-"],
    JSON.stringify({
      apiVersion: "harmony.runbeam.io/v1alpha1",
      kind: "HarmonyGateway",
      metadata: { name: "edge", namespace: ns },
      spec: { networks: [{ name: "web", port: webPort, bindAddress: "127.0.0.1" }], management: { port: mgmtPort } },
    }),
  );
  // Where the memory is while pipelines arrive: the largest V8 heap and off-heap sizes seen.
  const mem = new Map<string, number>();
  const memTimer = setInterval(() => {
    void fetch(`http://127.0.0.1:${port}/metrics`)
      .then((r) => r.text())
      .then((t) => {
        for (const l of t.split("\n")) {
          const m =
            /^(nodejs_heap_size_(?:total|used)_bytes|nodejs_external_memory_bytes|nodejs_heap_space_size_used_bytes\{space="[a-z_]+"\}) (\d+)/.exec(
              l,
            );
          if (m) mem.set(m[1]!, Math.max(mem.get(m[1]!) ?? 0, Number(m[2])));
        }
      })
      .catch(() => {});
  }, 2000);
  const cpu0 = cpuSeconds(op.pid!);
  const threadsArrival0 = threadCpu(op.pid!);
  const load0 = loadavg();
  // The other side of every request (a TLS handshake per request costs the API server too).
  const cpPids = controlPlanePids(cp.dir);
  const cpCpu0 = new Map([...cpPids].map(([n, pid]) => [n, cpuSeconds(pid)]));
  const t0 = Date.now();
  for (let start = 0; start < N; start += CHUNK) {
    const items: unknown[] = [];
    for (let i = start; i < Math.min(N, start + CHUNK); i++) {
      const id = String(i).padStart(DIGITS, "0");
      items.push({
        apiVersion: "harmony.runbeam.io/v1alpha1",
        kind: "HarmonyEndpoint",
        metadata: { name: `ep-${id}`, namespace: ns },
        spec: { service: "http", pathPrefix: `/p${id}` },
      });
      items.push({
        apiVersion: "harmony.runbeam.io/v1alpha1",
        kind: "HarmonyPipeline",
        metadata: { name: `pl-${id}`, namespace: ns },
        spec: {
          gatewayRef: { name: "edge" },
          endpoints: [{ name: `ep-${id}` }],
          backends: [{ service: "http", url: `http://127.0.0.1:1/pipeline/${id}` }],
        },
      });
    }
    await must(["apply", "--server-side", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items }));
  }
  const created = Date.now() - t0;
  let programmed = 0;
  while (programmed < N) {
    const list = JSON.parse(await must(["get", "harmonypipelines", "-n", ns, "-o", "json"])) as {
      items: { status?: { conditions?: { type: string; status: string }[] } }[];
    };
    programmed = list.items.filter((p) =>
      p.status?.conditions?.some((c) => c.type === "Programmed" && c.status === "True"),
    ).length;
    if (Date.now() - t0 > 600_000 + N * 60) throw new Error(`only ${programmed}/${N} Programmed in time`);
    // Listing 10,000 pipelines is itself work for the API server: poll less often at scale.
    if (programmed < N) await sleep(N > 2000 ? 5000 : 1000);
  }
  const allProgrammed = Date.now() - t0;
  const apiProgrammed = await apiWrites();
  clearInterval(memTimer);
  if (process.env.ALLOC_PROFILE) {
    op.kill("SIGUSR2");
    out(`allocation profile: ${process.env.ALLOC_PROFILE}/alloc-${op.pid}.txt`);
  }
  const cpu = cpuSeconds(op.pid!) - cpu0;
  const threadsArrival = threadSplit(threadCpu(op.pid!), threadsArrival0);
  const loadProgrammed = loadavg();
  const cpCpu = [...cpPids].map(([n, pid]) => `${n} ${(cpuSeconds(pid) - cpCpu0.get(n)!).toFixed(1)} s`).join(", ");
  const rss = peakRssMiB(op.pid!);
  const cm = JSON.parse(await must(["get", "configmap", "edge-harmony-config", "-n", ns, "-o", "json"])) as {
    data: Record<string, string>;
    metadata: { resourceVersion: string };
  };
  const size = Object.values(cm.data).reduce((n, v) => n + Buffer.byteLength(v), 0);
  // A sharded config: the main ConfigMap's manifest names the shards (README: Large gateways).
  const shardNames = cm.data["harmony-shards.json"]
    ? Object.keys((JSON.parse(cm.data["harmony-shards.json"]) as { shards: object }).shards)
    : [];
  const shardSizes: number[] = [];
  for (const name of shardNames) {
    const s = JSON.parse(await must(["get", "configmap", name, "-n", ns, "-o", "json"])) as {
      data: Record<string, string>;
    };
    shardSizes.push(Object.values(s.data).reduce((n, v) => n + Buffer.byteLength(v), 0));
  }

  const metric = async (name: string) =>
    (await (await fetch(`http://127.0.0.1:${port}/metrics`)).text())
      .split("\n")
      .filter((l) => l.startsWith(name + "{"))
      .map((l) => l.replace(name, ""))
      .join(" ");
  out(`reconciles until then: ${await metric("harmony_operator_reconcile_total")}`);
  out(`writes until then: ${await metric("harmony_operator_writes_total")}`);
  out(`API server writes until then (the bench's own applies included): ${writesSince(api0, apiProgrammed)}`);
  // Settled: endpoint statuses follow their pipelines' and may still be on their way; the steady
  // state starts once 10 s pass without a write.
  let settled = Date.now();
  for (let last = await writes(); Date.now() - settled < 10_000 && Date.now() - t0 < 900_000;) {
    await sleep(1000);
    const now = await writes();
    if (now !== last) [last, settled] = [now, Date.now()];
  }
  const settledAfter = settled - t0;
  const w0 = await writes();
  const apiSettled = await apiWrites();
  out(`API server writes from then until settled: ${writesSince(apiProgrammed, apiSettled) || "none"}`);
  const rv0 = cm.metadata.resourceVersion;
  const gc0 = await gcStats();
  // Every request, reads too (the API server's own lease renewals and the bench's reads included).
  const apiAll0 = await apiWrites(true);
  const cpuSteady0 = cpuSeconds(op.pid!);
  const threads0 = threadCpu(op.pid!);
  const mono0 = process.hrtime.bigint() / 1000n;
  // HEAP_SNAPSHOT=<dir>: what the operator holds once everything is programmed (the live set).
  if (process.env.HEAP_SNAPSHOT) op.kill("SIGUSR2");
  await sleep(STEADY_S * 1000);
  // The window in CLOCK_MONOTONIC µs, the clock of a --cpu-prof profile's sample times.
  if (process.env.OPERATOR_NODE_ARGS) out(`steady window (monotonic µs): ${mono0} ${process.hrtime.bigint() / 1000n}`);
  const w1 = await writes();
  const rv1 = (
    JSON.parse(await must(["get", "configmap", "edge-harmony-config", "-n", ns, "-o", "json"])) as {
      metadata: { resourceVersion: string };
    }
  ).metadata.resourceVersion;
  const cpuSteady = cpuSeconds(op.pid!) - cpuSteady0;
  const threads = threadSplit(threadCpu(op.pid!), threads0);
  const loadSteady = loadavg();
  const gcSteady = gcSince(gc0, await gcStats());
  const apiSteady = writesSince(apiAll0, await apiWrites(true));

  out(`## bench/operator-scale — ${new Date().toISOString()}`);
  out(
    `kube-apiserver ${(await must(["version", "-o", "json"])).match(/"gitVersion": "([^"]+)"/g)?.pop() ?? ""} · node ${process.version} · ${N} pipelines + ${N} endpoints on one gateway · operator node flags: ${opFlags.join(" ") || "none"}`,
  );
  out("");
  out("| measure | value |");
  out("|---|---|");
  out(`| objects applied (kubectl apply --server-side, ${CHUNK * 2} per call) | ${(created / 1000).toFixed(1)} s |`);
  // Issue 18's targets: 1,000 in under a minute, 10,000 in under five.
  const target = N > 1000 ? "10,000 in < 300 s" : "1,000 in < 60 s";
  out(
    `| first apply → all ${N} pipelines Programmed | **${(allProgrammed / 1000).toFixed(1)} s** (target ${target}) |`,
  );
  out(`| operator CPU during that time | ${cpu.toFixed(1)} s (by thread: ${threadsArrival}) |`);
  out(`| load average (1/5/15 min) at the first apply → at Programmed | ${load0} → ${loadProgrammed} |`);
  out(`| control plane CPU during that time (the bench's own applies and polls included) | ${cpCpu || "not found"} |`);
  out(`| first apply → last status write (endpoints follow their pipelines) | ${(settledAfter / 1000).toFixed(1)} s |`);
  out(`| operator peak RSS | ${rss.toFixed(0)} MiB |`);
  out(
    `| of which (largest seen, 2 s samples) | ${[...mem].map(([k, v]) => `${k.replace(/^nodejs_|_bytes|_size_used_bytes/g, "")} ${(v / 2 ** 20).toFixed(0)}`).join(", ")} MiB |`,
  );
  out(`| rendered ConfigMap | ${Object.keys(cm.data).length} keys, ${(size / 1024).toFixed(0)} KiB |`);
  if (shardNames.length)
    out(
      `| shard ConfigMaps | ${shardNames.length}, ${(Math.min(...shardSizes) / 1024).toFixed(0)}–${(Math.max(...shardSizes) / 1024).toFixed(0)} KiB each, ${(shardSizes.reduce((a, b) => a + b, 0) / 1024).toFixed(0)} KiB in all |`,
    );
  out(
    `| writes during ${STEADY_S} s of steady state | **${w1 - w0}** (target 0); ConfigMap resourceVersion ${rv0 === rv1 ? "unchanged" : `changed ${rv0} → ${rv1}`} |`,
  );
  out(
    `| operator CPU during steady state | ${cpuSteady.toFixed(2)} s, **${((cpuSteady * 60) / STEADY_S).toFixed(2)} s per minute** (target < 0.5) (by thread: ${threads || "none"}); load average at its end ${loadSteady} |`,
  );
  out(`| of which GC pauses on the main thread (the operator's nodejs_gc_duration_seconds) | ${gcSteady} |`);
  out(`| API server requests during steady state (all clients, reads too) | ${apiSteady || "none"} |`);

  // SKIP_CHANGE: stop right after the steady state, so a --cpu-prof profile ends with it.
  if (!process.env.SKIP_CHANGE) {
    await crChange();
    // Cumulative, so that the changes' own writes are the difference from "writes until then" and
    // the steady state (which has none).
    out(`writes after the ${CHANGES} CR changes: ${await metric("harmony_operator_writes_total")}`);
    out(
      `API server writes during the steady state and the ${CHANGES} CR changes: ${writesSince(apiSettled, await apiWrites())}`,
    );
  }
  async function crChange() {
    // CR change → data plane serving it, through the kubelet-style syncer (file sync mode).
    const dir = mkdtempSync(join(tmpdir(), "harmony-scale-"));
    const kc = (args: string[]) => spawn("kubectl", ["--kubeconfig", cp.kubeconfig, ...args], { env: cp.env });
    // A sharded config is one projected volume of the main ConfigMap and its shards.
    const syncer = shardNames.length
      ? startProjectedSyncer(kc, ns, ["edge-harmony-config", ...shardNames], dir)
      : startSyncer(kc, ns, "edge-harmony-config", dir);
    while (syncer.swaps() === 0) await sleep(50);
    const dp = await startDataplane(join(dir, "config.toml"), { HARMONY_POLL_MS: "1000" }, [], 15_000 + N * 10);
    // A pipeline change points a pipeline at this upstream (its backend was 127.0.0.1:1, a 502):
    // served once the pipeline answers 200.
    const upstream = await startUpstream((_req, res) => res.end("moved"));
    /** Per change: total ms, until the syncer swapped in a changed file, what it edited. */
    const changes: {
      ms: number;
      patched: number;
      swapped: number;
      /** The syncer's own write of the files (a kubelet's atomic writer does the same). */
      written: number;
      kind: "pipeline" | "endpoint";
    }[] = [];
    // The gateway reconciles of the changes (render, check, ConfigMap write, then the statuses).
    const gwTime = async () => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const v = (m: string) => Number(new RegExp(`^${m}\\{kind="gateway"\\} (\\S+)$`, "m").exec(text)?.[1] ?? 0);
      return {
        sum: v("harmony_operator_reconcile_time_seconds_sum"),
        n: v("harmony_operator_reconcile_time_seconds_count"),
      };
    };
    const gw0 = await gwTime();
    const cpuChanges0 = cpuSeconds(op.pid!);
    const cpChanges0 = new Map([...cpPids].map(([n, pid]) => [n, cpuSeconds(pid)]));
    const mono0 = process.hrtime.bigint() / 1000n;
    try {
      for (let k = 0; k < CHANGES; k++) {
        // Each change a different pair, spread over all N (no cache or warm path helps); every
        // third one an endpoint's path, the others a pipeline's backend.
        const id = String(Math.floor(((k + 0.5) * N) / CHANGES) % N).padStart(DIGITS, "0");
        const kind = k % 3 === 2 ? "endpoint" : "pipeline";
        const path = kind === "endpoint" ? `/moved-${k}/x` : `/p${id}/x`;
        const patch =
          kind === "endpoint"
            ? ["harmonyendpoint", `ep-${id}`, { spec: { pathPrefix: `/moved-${k}` } }]
            : ["harmonypipeline", `pl-${id}`, { spec: { backends: [{ service: "http", url: upstream.url }] } }];
        const t = Date.now();
        const swaps0 = syncer.swaps();
        let swapped = 0;
        // The swap's time, apart from the polls: a poll sent before a reload answers only after it.
        const swapWatch = setInterval(() => {
          if (!swapped && syncer.swaps() !== swaps0) swapped = Date.now() - t;
        }, 5).unref();
        await must([
          "patch",
          patch[0] as string,
          patch[1] as string,
          "-n",
          ns,
          "--type=merge",
          "-p",
          JSON.stringify(patch[2]),
        ]);
        const patched = Date.now() - t;
        for (;;) {
          const r = await fetch(`http://127.0.0.1:${webPort}${path}`).catch(() => undefined);
          await r?.body?.cancel();
          if (!swapped && syncer.swaps() !== swaps0) swapped = Date.now() - t;
          if (r && (kind === "endpoint" ? r.status !== 404 : r.status === 200)) break;
          if (Date.now() - t > 60_000) throw new Error(`${kind} change ${k} not served within 60 s`);
          await sleep(20);
        }
        clearInterval(swapWatch);
        const w = syncer.lastWrite();
        changes.push({ ms: Date.now() - t, patched, swapped, written: w.at >= t ? w.ms : 0, kind });
      }
      if (process.env.OPERATOR_NODE_ARGS)
        out(`changes window (monotonic µs): ${mono0} ${process.hrtime.bigint() / 1000n}`);
    } finally {
      syncer.stop();
      await dp.stop();
      await upstream.close();
      rmSync(dir, { recursive: true, force: true });
    }
    const stats = (xs: number[]) => {
      const s = [...xs].sort((a, b) => a - b);
      return `median ${pct(s, 50)} ms, p90 ${pct(s, 90)}, p99 ${pct(s, 99)}, max ${s[s.length - 1]} (min ${s[0]})`;
    };
    const ms = changes.map((c) => c.ms);
    const rankNote = (n: number) => {
      const fromTop = n - Math.ceil(0.99 * n);
      return fromTop === 0 ? "the slowest" : `the slowest but ${fromTop}`;
    };
    out(
      `| CR change → data plane serving it (${N} pipelines, file sync, ${CHANGES} changes) | ${stats(ms)}; p99 of ${CHANGES} is ${rankNote(CHANGES)} |`,
    );
    for (const kind of ["pipeline", "endpoint"] as const) {
      const of = changes.filter((c) => c.kind === kind).map((c) => c.ms);
      if (of.length) out(`| of which ${of.length} ${kind} changes | ${stats(of)} |`);
    }
    const gw1 = await gwTime();
    const cpuChanges = cpuSeconds(op.pid!) - cpuChanges0;
    const cpChanges = [...cpPids]
      .map(([n, pid]) => `${n} ${(((cpuSeconds(pid) - cpChanges0.get(n)!) * 1000) / CHANGES).toFixed(0)} ms`)
      .join(", ");
    const swapped = changes.filter((c) => c.swapped).map((c) => c.swapped);
    out(
      `| operator CPU during the changes | ${cpuChanges.toFixed(1)} s, ${((cpuChanges * 1000) / CHANGES).toFixed(0)} ms per change (control plane per change: ${cpChanges}; the syncer's watch and the bench's patches included) |`,
    );
    out(
      `| until kubectl patch returned (its process start, the API server's write) | ${stats(changes.map((c) => c.patched))} |`,
    );
    out(
      `| gateway reconciles during the changes (render, check, ConfigMap write, statuses) | ${gw1.n - gw0.n}, mean ${(((gw1.sum - gw0.sum) / Math.max(1, gw1.n - gw0.n)) * 1000).toFixed(0)} ms |`,
    );
    const served = changes.filter((c) => c.swapped).map((c) => c.ms - c.swapped);
    out(
      `| until the syncer swapped in a changed file (the patch, the operator's 250 ms quiet period, render and ConfigMap write, the watch, ${N + 1} files written) | ${stats(swapped)} |`,
    );
    out(
      `| of which the syncer's own write: ${N + 1} files, the swap, the old directory removed (a kubelet's atomic writer's part in a pod) | ${stats(changes.filter((c) => c.swapped).map((c) => c.written))} |`,
    );
    out(`| from the swap until served (data plane: file watch, reload) | ${stats(served)} |`);
    out(
      `per change, ms until swapped + then until served: ${changes.map((c) => `${c.swapped || "?"}+${c.ms - c.swapped}`).join(", ")}`,
    );
  }
} finally {
  op.kill("SIGTERM");
  // A --cpu-prof profile is written as the operator exits.
  await new Promise((r) => (op.exitCode !== null ? r(undefined) : op.once("exit", r)));
  await cp.stop();
}
