/**
 * bench/operator-scale/lease-idle: an idle leader's Lease requests and CPU, two operator builds
 * alternated on one control plane (no CRs: what leader election alone costs a minute).
 *
 *   BEFORE=<old build>/operator/dist/main.js AFTER=operator/dist/main.js node --import tsx bench/operator-scale/lease-idle.ts
 *
 * Lease requests are the API server's count from every client: its own identity Lease adds ~6 PUTs
 * a minute.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { startControlPlane } from "../../test/controlplane/controlplane.js";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cp = await startControlPlane();
await cp.installCrds();
const cpu = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
};
const leaseReqs = async () => {
  const r = await cp.kubectl(["get", "--raw", "/metrics"]);
  const m: Record<string, number> = {};
  for (const l of r.stdout.split("\n")) {
    if (!l.startsWith("apiserver_request_total{") || !l.includes('resource="leases"')) continue;
    const verb = /verb="(\w+)"/.exec(l)![1]!;
    m[verb] = (m[verb] ?? 0) + Number(l.split(" ").pop());
  }
  return m;
};
const here = fileURLToPath(new URL("../../operator/dist/main.js", import.meta.url));
const builds = { before: process.env.BEFORE ?? here, after: process.env.AFTER ?? here };
const W = Number(process.env.WINDOW_S ?? 60);
for (let round = 1; round <= Number(process.env.ROUNDS ?? 2); round++) {
  for (const [name, main] of Object.entries(builds)) {
    const op = spawn(
      process.execPath,
      [
        main,
        "--kubeconfig",
        cp.kubeconfig,
        "--health-port",
        "0",
        "--manage-workloads",
        "false",
        "--lease-namespace",
        "default",
        "--identity",
        `${name}-${round}`,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let log = "";
    op.stdout.setEncoding("utf8").on("data", (c: string) => (log += c));
    while (!log.includes("Became leader")) await sleep(100);
    await sleep(5000);
    const r0 = await leaseReqs();
    const c0 = cpu(op.pid!);
    await sleep(W * 1000);
    const c1 = cpu(op.pid!);
    const r1 = await leaseReqs();
    const d = Object.fromEntries(Object.keys(r1).map((k) => [k, r1[k]! - (r0[k] ?? 0)]));
    process.stdout.write(
      `round ${round} ${name}: operator CPU ${(c1 - c0).toFixed(2)} s in ${W} s; lease requests (all clients) ${JSON.stringify(d)}; load ${readFileSync("/proc/loadavg", "utf8").slice(0, 15)}\n`,
    );
    op.kill("SIGTERM");
    await new Promise((r) => op.once("exit", r));
  }
}
await cp.stop();
