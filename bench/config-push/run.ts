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
import { getObject, kubeconfigConnection, watchObjects } from "../../dataplane/src/config/kube/api.js";

const N = Number(process.env.N ?? 1);
const EDITS = Number(process.env.EDITS ?? 50);
const out = (s: string) => process.stdout.write(s + "\n");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;
const rssMiB = (pid: number) => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;

const rig = await startPushRig({ pipelines: N });
// The ConfigMap's changes as an admin watch sees them: splits each edit into the operator's part
// (CR patched → ConfigMap written) and the data plane's (→ served).
const cmWrites: number[] = [];
const admin = new AbortController();
try {
  const { dp, ns, webPort, kubectl } = rig;
  const conn = kubeconfigConnection(rig.cp.kubeconfig);
  const cmPath = `/api/v1/namespaces/${ns}/configmaps`;
  const rv = (await getObject<{ metadata: { resourceVersion: string } }>(conn, `${cmPath}/edge-harmony-config`))!
    .metadata.resourceVersion;
  void watchObjects<unknown>(
    conn,
    `${cmPath}?fieldSelector=metadata.name%3Dedge-harmony-config&watch=true&resourceVersion=${rv}`,
    (ev) => {
      if (ev.type === "MODIFIED") cmWrites.push(Date.now());
    },
    admin.signal,
  ).catch(() => undefined);
  const written: number[] = [];
  const dataPlane: number[] = [];
  // As bench/operator-scale: measure from a settled operator, every pipeline Programmed (its
  // status writes for the initial N would otherwise queue in front of the first edits).
  for (const t0 = Date.now(); ;) {
    const list = JSON.parse(await kubectl(["get", "harmonypipelines", "-n", ns, "-o", "json"])) as {
      items: { status?: { conditions?: { type: string; status: string }[] } }[];
    };
    const done = list.items.filter((p) =>
      p.status?.conditions?.some((c) => c.type === "Programmed" && c.status === "True"),
    );
    if (done.length === N) break;
    if (Date.now() - t0 > 600_000) throw new Error(`only ${done.length}/${N} pipelines Programmed after 600 s`);
    await sleep(2000);
  }
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
      if (Date.now() - t > 60_000) {
        const tail = (xs: string[]) => xs.slice(-15).join("\n");
        const dpLog = dp.logs.map(
          (l) =>
            `${String(l.timestamp)} ${l.level} ${l.message} ${typeof l.trigger === "string" ? l.trigger : ""} ${JSON.stringify(l.problems ?? l.error ?? "").slice(0, 300)}`,
        );
        throw new Error(
          `edit ${round} not served within 60 s; ConfigMap writes since the edit: ${
            cmWrites
              .filter((x) => x >= t)
              .map((x) => `+${x - t} ms`)
              .join(", ") || "none"
          }\ndata plane:\n${tail(dpLog)}\noperator:\n${tail(rig.operatorLog().split("\n"))}`,
        );
      }
      await sleep(10);
    }
    total.push(Date.now() - t);
    const w = cmWrites.find((x) => x >= t);
    if (w) written.push(w - t);
    const loaded = dp.logs.slice(seen).find((l) => l.message === "config loaded");
    if (loaded) loadedAt.push(Date.parse(String(loaded.timestamp)) - t);
    if (loaded && w) dataPlane.push(Date.parse(String(loaded.timestamp)) - w);
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
  if (written.length) {
    const w = [...written].sort((a, b) => a - b);
    out(`| of which until the operator wrote the ConfigMap | p50 ${pct(w, 50)} ms, p99 ${pct(w, 99)} ms |`);
  }
  if (dataPlane.length) {
    const d = [...dataPlane].sort((a, b) => a - b);
    out(
      `| ConfigMap written → data plane "config loaded" (watch, load, validate, swap) | p50 ${pct(d, 50)} ms, p99 ${pct(d, 99)} ms |`,
    );
  }
  if (loadedAt.length) {
    const l = [...loadedAt].sort((a, b) => a - b);
    out(`| of which until the data plane logged "config loaded" | p50 ${pct(l, 50)} ms, p99 ${pct(l, 99)} ms |`);
  }
  out(`| reloads through the API / edits | ${viaApi} / ${EDITS} (the files never changed) |`);
  out(`| data plane peak RSS | ${rssMiB(dp.pid).toFixed(0)} MiB |`);
} finally {
  admin.abort();
  await rig.stop();
}
