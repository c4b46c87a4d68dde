/**
 * CR edit → new config served, on a real node (test/cluster/) with the kubelet's default
 * syncFrequency (1 m, as users have it): the operator renders the ConfigMap, and the data plane sees
 * it through its API watch (or, without one, when the kubelet swaps the mounted files).
 *
 *   node --import tsx bench/cluster-config/run.ts        (root; BENCH_EDITS=50 by default)
 *
 * Each edit changes a HarmonyEndpoint's pathPrefix to a new value; the time is from the patch until
 * EVERY data-plane replica (polled directly on its pod IP) answers 200 on the new prefix.
 */
import { startCluster } from "../../test/cluster/cluster.js";
import { buildImages, IMAGE_TAG } from "../../test/cluster/images.js";
import { ROOT } from "../../dataplane/test/helpers.js";
import { join } from "node:path";

const EDITS = Number(process.env.BENCH_EDITS ?? 50);
const IMAGE = `ghcr.io/runbeam/harmony-dataplane:${IMAGE_TAG}`;
const ECHO = `require("http").createServer((q, s) => s.end(q.url)).listen(8000)`;

const images = await buildImages();
const c = await startCluster({ images: [images.dataplane, images.operator] });
try {
  const helm = await c.helm([
    "install",
    "harmony",
    join(ROOT, "charts", "harmony"),
    "-n",
    "harmony-system",
    "--create-namespace",
    "--wait",
    "--timeout=180s",
  ]);
  if (helm.code !== 0) throw new Error(helm.stderr);
  await c.kubectlOk(
    ["apply", "-f", "-"],
    `
apiVersion: v1
kind: Namespace
metadata: {name: bench}
---
apiVersion: v1
kind: Pod
metadata: {name: upstream, namespace: bench, labels: {app: upstream}}
spec:
  containers: [{name: echo, image: ${IMAGE}, imagePullPolicy: Never, command: [/nodejs/bin/node, -e, ${JSON.stringify(ECHO)}]}]
---
apiVersion: v1
kind: Service
metadata: {name: upstream, namespace: bench}
spec: {selector: {app: upstream}, ports: [{port: 8000}]}
---
apiVersion: harmony.runbeam.io/v1alpha1
kind: HarmonyGateway
metadata: {name: gw, namespace: bench}
spec: {replicas: 2, networks: [{name: web, port: 8080}], management: {port: 9090}}
---
apiVersion: harmony.runbeam.io/v1alpha1
kind: HarmonyEndpoint
metadata: {name: ep, namespace: bench}
spec: {service: http, pathPrefix: /v0}
---
apiVersion: harmony.runbeam.io/v1alpha1
kind: HarmonyPipeline
metadata: {name: p, namespace: bench}
spec:
  gatewayRef: {name: gw}
  endpoints: [{name: ep}]
  backends: [{service: http, url: "http://upstream.bench.svc.cluster.local:8000"}]
`,
  );
  await c.kubectlOk(["-n", "bench", "wait", "--for=condition=Ready", "harmonygateway/gw", "--timeout=180s"]);
  await c.kubectlOk(["-n", "bench", "rollout", "status", "deployment/gw-harmony", "--timeout=180s"]);
  const ips = (
    await c.kubectlOk([
      "-n",
      "bench",
      "get",
      "pods",
      "-l",
      "harmony.runbeam.io/gateway=gw",
      "-o",
      "jsonpath={.items[*].status.podIP}",
    ])
  )
    .trim()
    .split(/\s+/);
  const serves = async (ip: string, prefix: string) => {
    try {
      return (await fetch(`http://${ip}:8080${prefix}/x`, { signal: AbortSignal.timeout(2000) })).status === 200;
    } catch {
      return false;
    }
  };
  const times: number[] = [];
  for (let i = 1; i <= EDITS; i++) {
    const prefix = `/v${i}`;
    const t0 = performance.now();
    await c.kubectlOk([
      "-n",
      "bench",
      "patch",
      "harmonyendpoint/ep",
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { pathPrefix: prefix } }),
    ]);
    const pending = new Set(ips);
    while (pending.size) {
      for (const ip of [...pending]) if (await serves(ip, prefix)) pending.delete(ip);
      if (pending.size) await new Promise((r) => setTimeout(r, 100));
    }
    const ms = performance.now() - t0;
    times.push(ms);
    process.stdout.write(`edit ${i}: ${(ms / 1000).toFixed(2)} s\n`);
  }
  const sorted = [...times].sort((a, b) => a - b);
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]! / 1000;
  process.stdout.write(
    `CR edit → served on ${ips.length} replicas, ${EDITS} edits, kubelet syncFrequency default (1m): p50 ${q(50).toFixed(1)} s, p99 ${q(99).toFixed(1)} s, min ${(sorted[0]! / 1000).toFixed(1)} s, max ${(sorted.at(-1)! / 1000).toFixed(1)} s\n`,
  );
} finally {
  await c.stop();
}
