/**
 * bench/config-push: CR edit → served, through the Kubernetes API path (`--config-source`), on the
 * real kube-apiserver of test/controlplane with the real operator. The data plane runs as the
 * gateway's ServiceAccount; its mounted files are written once and never synced (no kubelet), so
 * every change it serves came through the watch. Each round patches one HarmonyEndpoint's
 * pathPrefix and polls the new path every 10 ms until it answers.
 *
 *   node --import tsx bench/config-push/run.ts                 # N=1 pipeline, 50 edits
 *   N=1000 EDITS=20 node --import tsx bench/config-push/run.ts
 */
import { readFileSync } from "node:fs";
import { startPushRig } from "../../test/config-push.js";

const N = Number(process.env.N ?? 1);
const EDITS = Number(process.env.EDITS ?? 50);
const out = (s: string) => process.stdout.write(s + "\n");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;
const rssMiB = (pid: number) => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;

const rig = await startPushRig({ pipelines: N });
try {
  const { dp, ns, webPort, kubectl } = rig;
  const total: number[] = [];
  const loadedAt: number[] = [];
  for (let round = 1; round <= EDITS; round++) {
    const prefix = `/edit-${round}`;
    const seen = dp.logs.length;
    const t = Date.now();
    await kubectl([
      "patch",
      "harmonyendpoint",
      "ep-0000",
      "-n",
      ns,
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { pathPrefix: prefix } }),
    ]);
    for (;;) {
      const r = await fetch(`http://127.0.0.1:${webPort}${prefix}/x`).catch(() => undefined);
      if (r && r.status !== 404) break;
      if (Date.now() - t > 60_000) throw new Error(`edit ${round} not served within 60 s`);
      await sleep(10);
    }
    total.push(Date.now() - t);
    const loaded = dp.logs.slice(seen).find((l) => l.message === "config loaded");
    if (loaded) loadedAt.push(Date.parse(String(loaded.timestamp)) - t);
  }
  const sorted = [...total].sort((a, b) => a - b);
  const viaApi = dp.logs.filter((l) => l.message === "config loaded" && l.trigger === "kubernetes").length;
  out(`## bench/config-push — ${new Date().toISOString()}`);
  out(
    `node ${process.version} · ${N} pipeline(s) on one gateway · ${EDITS} edits · load ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}`,
  );
  out("");
  out("| measure | value |");
  out("|---|---|");
  out(
    `| CR edit (kubectl patch) → new path served | p50 **${pct(sorted, 50)} ms**, p99 **${pct(sorted, 99)} ms**, max ${sorted.at(-1)} ms, min ${sorted[0]} ms |`,
  );
  if (loadedAt.length) {
    const l = [...loadedAt].sort((a, b) => a - b);
    out(`| of which until the data plane logged "config loaded" | p50 ${pct(l, 50)} ms, p99 ${pct(l, 99)} ms |`);
  }
  out(`| reloads through the API / edits | ${viaApi} / ${EDITS} (the files never changed) |`);
  out(`| data plane peak RSS | ${rssMiB(dp.pid).toFixed(0)} MiB |`);
} finally {
  await rig.stop();
}
