/**
 * What a running gateway promises while pods come and go, on a real node (test/cluster/node.sh):
 *
 * - A rolling update of the data-plane image and the deletion of one of two replicas, each under a
 *   steady keep-alive load from the host through the gateway's Service (NodePort, so kube-proxy's
 *   rules are what picks the pod): zero failed requests. What makes it hold: maxSurge 1 /
 *   maxUnavailable 0, the data plane's drain (README: "Rolling updates and pod deletion lose no
 *   request") and a grace period longer than it.
 * - The operator replica holding the Lease killed without a chance to release it (frozen, its pod
 *   force-deleted, then SIGKILL) while CRs are being created, changed and deleted: another replica
 *   takes the Lease once it expires, and every edit made before, during and after the outage ends up
 *   in the ConfigMap and is served by every data-plane pod.
 *
 * The numbers (requests, failures, p99, Lease takeover time) are printed as diagnostics. Needs root;
 * skipped, saying why, otherwise.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { ROOT, eventually, run } from "../../dataplane/test/helpers.js";
import { join } from "node:path";
import { startCluster, type Cluster } from "./cluster.js";
import { buildImages, IMAGE_TAG } from "./images.js";
import { formatLoad, startLoad } from "./load.js";

const NS = "roll";
const OPERATOR_NS = "harmony-system";
const IMAGE = `ghcr.io/runbeam/harmony-dataplane:${IMAGE_TAG}`;
/** The same image under a second tag: a new image as far as the Deployment is concerned. */
const NEXT_IMAGE = `${IMAGE}-next`;
const UPSTREAM = `http://upstream.${NS}.svc.cluster.local:8000`;
// Keep-alive longer than the data plane's upstream pool keeps idle connections, as an upstream
// behind a proxy should be: otherwise the upstream's own idle close races a reused connection (a
// 502 that has nothing to do with rollouts).
const ECHO = `const s = require("http").createServer((q, r) => r.end(q.url)); s.keepAliveTimeout = 300000; s.listen(8000);`;

let cluster: Cluster | undefined;
let skip: string | false = false;
if (process.getuid?.() !== 0) skip = "needs root: the real node runs containerd, a kubelet and iptables";

const log = (s: string) => process.stderr.write(`[rollout] ${s}\n`);

const endpointAndPipeline = (name: string, prefix: string) => `
apiVersion: harmony.runbeam.io/v1alpha1
kind: HarmonyEndpoint
metadata: {name: ${name}, namespace: ${NS}}
spec: {service: http, pathPrefix: ${prefix}}
---
apiVersion: harmony.runbeam.io/v1alpha1
kind: HarmonyPipeline
metadata: {name: ${name}, namespace: ${NS}}
spec:
  gatewayRef: {name: gw}
  endpoints: [{name: ${name}}]
  backends: [{service: http, url: "${UPSTREAM}"}]
`;

const setup = `
apiVersion: v1
kind: Namespace
metadata: {name: ${NS}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: upstream, namespace: ${NS}}
spec:
  replicas: 1
  selector: {matchLabels: {app: upstream}}
  template:
    metadata: {labels: {app: upstream}}
    spec:
      containers:
        - name: echo
          image: ${IMAGE}
          imagePullPolicy: Never
          command: [/nodejs/bin/node, -e, ${JSON.stringify(ECHO)}]
          readinessProbe: {tcpSocket: {port: 8000}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: upstream, namespace: ${NS}}
spec: {selector: {app: upstream}, ports: [{port: 8000}]}
---
apiVersion: harmony.runbeam.io/v1alpha1
kind: HarmonyGateway
metadata: {name: gw, namespace: ${NS}}
spec: {replicas: 2, networks: [{name: web, port: 8080}], management: {port: 9090}, service: {type: NodePort}}
---
${endpointAndPipeline("api", "/api")}`;

async function json<T>(args: string[]): Promise<T> {
  return JSON.parse(await cluster!.kubectlOk([...args, "-o", "json"])) as T;
}

interface Pod {
  metadata: { name: string; deletionTimestamp?: string };
  spec: { containers: { image: string }[] };
  status: { podIP?: string; containerStatuses?: { ready: boolean; containerID?: string }[] };
}
const dataplanePods = async () =>
  (await json<{ items: Pod[] }>(["-n", NS, "get", "pods", "-l", "harmony.runbeam.io/gateway=gw"])).items;

/** The Deployment has finished rolling and no old pod is still draining. */
async function settled(image: string): Promise<Pod[]> {
  return eventually(
    `2 ready data-plane pods on ${image}, none terminating`,
    async () => {
      const pods = await dataplanePods();
      const done =
        pods.length === 2 &&
        pods.every((p) => !p.metadata.deletionTimestamp && p.spec.containers[0]!.image === image) &&
        pods.every((p) => p.status.containerStatuses?.every((s) => s.ready));
      return done ? pods : undefined;
    },
    { timeoutMs: 240_000, intervalMs: 500 },
  );
}

describe("a real node: rollouts, pod deletion and operator failover lose nothing", { skip }, () => {
  let url = "";
  before(async () => {
    const images = await buildImages();
    cluster = await startCluster({ images: [images.dataplane, images.operator] });
    const c = cluster;
    const helm = await c.helm([
      "install",
      "harmony",
      join(ROOT, "charts", "harmony"),
      "-n",
      OPERATOR_NS,
      "--create-namespace",
      "--set",
      "replicaCount=2",
      "--wait",
      "--timeout=180s",
    ]);
    assert.equal(helm.code, 0, `helm install failed:\n${helm.stderr}\n${helm.stdout}`);
    await c.kubectlOk(["apply", "-f", "-"], setup);
    await c.kubectlOk(["-n", NS, "wait", "--for=condition=Ready", "harmonygateway/gw", "--timeout=180s"]);
    await settled(IMAGE);
    const port = (
      await c.kubectlOk(["-n", NS, "get", "svc", "gw-harmony", "-o", "jsonpath={.spec.ports[0].nodePort}"])
    ).trim();
    url = `http://${c.nodeIP}:${port}/api/x`;
    // kube-proxy programs the NodePort a moment after the endpoints are ready.
    await eventually("the NodePort serves", async () => (await fetch(url)).status === 200, {
      timeoutMs: 60_000,
      intervalMs: 250,
    });
  });
  after(async () => {
    await cluster?.stop();
  });

  /** Runs `action` under load, keeps the load on until `done` resolves, and asserts nothing failed. */
  async function underLoad(what: string, action: () => Promise<void>, done: () => Promise<unknown>) {
    const load = startLoad(url);
    await eventually("the load runs", () => load.answered() > 50, { timeoutMs: 60_000, intervalMs: 100 });
    await action();
    await done();
    const r = await load.stop();
    log(`${what}: ${formatLoad(r)}`);
    assert.ok(r.ok > 100, `the load ran through it: ${formatLoad(r)}`);
    assert.deepEqual(r.failures, [], `${what}: ${formatLoad(r)}`);
  }

  test("a rolling update of the data-plane image under load: zero failed requests", async () => {
    const c = cluster!;
    const ctr = ["--address", join(c.dir, "containerd.sock"), "-n", "k8s.io"];
    const tagged = await run("ctr", [...ctr, "images", "tag", "--force", IMAGE, NEXT_IMAGE]);
    assert.equal(tagged.code, 0, tagged.stderr);
    const before = (await dataplanePods()).map((p) => p.metadata.name);
    await underLoad(
      "rolling update",
      async () => {
        await c.kubectlOk([
          "-n",
          NS,
          "patch",
          "harmonygateway/gw",
          "--type=merge",
          "-p",
          `{"spec":{"image":"${NEXT_IMAGE}"}}`,
        ]);
      },
      async () => {
        const pods = await settled(NEXT_IMAGE);
        assert.ok(
          pods.every((p) => !before.includes(p.metadata.name)),
          "every pod was replaced",
        );
      },
    );
  });

  test("one of two replicas deleted under load: zero failed requests", async () => {
    const c = cluster!;
    const [victim] = (await dataplanePods()).map((p) => p.metadata.name);
    await underLoad(
      "replica deleted",
      async () => {
        // The default grace period (the Deployment's), as `kubectl delete pod` and a node drain use.
        await c.kubectlOk(["-n", NS, "delete", "pod", victim!, "--wait=false"]);
      },
      async () => {
        const pods = await settled(NEXT_IMAGE);
        assert.ok(!pods.some((p) => p.metadata.name === victim), "the deleted pod is gone");
      },
    );
  });

  test("the operator leader killed under CR churn: another replica takes the Lease and no edit is lost", async () => {
    const c = cluster!;
    const lease = async () =>
      (
        await c.kubectlOk([
          "-n",
          OPERATOR_NS,
          "get",
          "lease",
          "harmony-operator",
          "-o",
          "jsonpath={.spec.holderIdentity}",
        ])
      ).trim();
    const operatorPods = async () =>
      (
        await json<{ items: Pod[] }>(["-n", OPERATOR_NS, "get", "pods", "-l", "app.kubernetes.io/name=harmony"])
      ).items.filter((p) => !p.metadata.deletionTimestamp);
    const holder = await lease();
    const pods = await operatorPods();
    const leader = pods.find((p) => holder.startsWith(`${p.metadata.name}-`));
    assert.ok(leader && pods.length === 2, `leader ${holder} among ${pods.map((p) => p.metadata.name).join(", ")}`);
    const pid = await containerPid(c, leader.status.containerStatuses![0]!.containerID!);

    // Churn: a new endpoint and pipeline every step, plus a change and a deletion during the outage.
    const edits: string[] = [];
    let churning = true;
    let step = 0;
    const churn = (async () => {
      while (churning) {
        step++;
        await c.kubectlOk(["apply", "-f", "-"], endpointAndPipeline(`c${step}`, `/c${step}`));
        edits.push(`create c${step}`);
      }
    })();
    await eventually("churn has begun", () => step >= 3, { timeoutMs: 60_000, intervalMs: 100 });

    // A crash that cannot hand over: frozen (so SIGTERM from the kubelet does nothing), its pod
    // force-deleted (so the kubelet does not restart it in place), then killed.
    const t0 = performance.now();
    process.kill(pid, "SIGSTOP");
    await c.kubectlOk(["-n", OPERATOR_NS, "delete", "pod", leader.metadata.name, "--grace-period=0", "--force"]);
    process.kill(pid, "SIGKILL");
    await c.kubectlOk([
      "-n",
      NS,
      "patch",
      "harmonyendpoint/api",
      "--type=merge",
      "-p",
      '{"spec":{"pathPrefix":"/moved"}}',
    ]);
    edits.push("change api → /moved");
    await c.kubectlOk(["-n", NS, "delete", "harmonypipeline/c1", "harmonyendpoint/c1"]);
    edits.push("delete c1");
    const duringOutage = edits.length;

    const next = await eventually(
      "a live replica holds the Lease",
      async () => {
        const h = await lease();
        return h && !h.startsWith(`${leader.metadata.name}-`) ? h : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 200 },
    );
    const takeoverS = (performance.now() - t0) / 1000;
    const live = (await operatorPods()).map((p) => p.metadata.name);
    assert.ok(
      live.some((p) => next.startsWith(`${p}-`)),
      `${next} is a running operator pod (${live.join(", ")})`,
    );
    const madeBeforeTakeover = edits.length;
    await eventually("more edits after the takeover", () => edits.length >= madeBeforeTakeover + 3, {
      timeoutMs: 60_000,
      intervalMs: 100,
    });
    churning = false;
    await churn;
    const created = Array.from({ length: step }, (_, i) => `c${i + 1}`).filter((n) => n !== "c1");
    log(
      `operator failover: Lease taken by ${next} ${takeoverS.toFixed(1)} s after the kill; ${edits.length} edits (${duringOutage} up to the kill's aftermath, ${madeBeforeTakeover} before the takeover)`,
    );

    // Every edit rendered...
    const t1 = performance.now();
    await eventually(
      "the ConfigMap has every pipeline created, not the deleted one",
      async () => {
        const cm = await json<{ data: Record<string, string> }>(["-n", NS, "get", "configmap", "gw-harmony-config"]);
        const keys = Object.keys(cm.data);
        const main = keys.filter((k) => k.startsWith(`pipeline.${NS}.`)).map((k) => k.split(".")[2]);
        const moved = cm.data[`pipeline.${NS}.api.toml`]?.includes("/moved");
        return created.every((n) => main.includes(n)) && !main.includes("c1") && moved;
      },
      { timeoutMs: 180_000, intervalMs: 500 },
    );
    // ...and served by every data-plane pod.
    const ips = (await dataplanePods()).map((p) => p.status.podIP!);
    const status = async (ip: string, path: string) => {
      try {
        return (await fetch(`http://${ip}:8080${path}`, { signal: AbortSignal.timeout(5000) })).status;
      } catch {
        return 0;
      }
    };
    await eventually(
      "every pod serves every created prefix and /moved, and neither /c1 nor /api",
      async () => {
        for (const ip of ips) {
          for (const n of created) if ((await status(ip, `/${n}/x`)) !== 200) return false;
          if ((await status(ip, "/moved/x")) !== 200) return false;
          if ((await status(ip, "/c1/x")) !== 404 || (await status(ip, "/api/x")) !== 404) return false;
        }
        return true;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    log(
      `every edit served on ${ips.length} pods ${((performance.now() - t1) / 1000).toFixed(1)} s after the churn ended`,
    );
  });
});

/** The host PID of a container's main process, from containerd (`containerd://<id>`). */
async function containerPid(c: Cluster, containerID: string): Promise<number> {
  const id = containerID.replace(/^containerd:\/\//, "");
  const r = await run("ctr", ["--address", join(c.dir, "containerd.sock"), "-n", "k8s.io", "tasks", "ls"]);
  assert.equal(r.code, 0, r.stderr);
  const line = r.stdout.split("\n").find((l) => l.startsWith(id));
  const pid = Number(line?.trim().split(/\s+/)[1]);
  assert.ok(pid > 1, `container ${id} has a task: ${r.stdout}`);
  return pid;
}
