/**
 * HarmonyNetwork end to end: both halves together. Two real control planes (each its own etcd and
 * kube-apiserver) with an operator each; Org A (org-a) in cluster A, Org B (org-b) in cluster B,
 * one logical network "hospitals" spread over both clusters, each side peered with the other by a
 * peering token. Each gateway's data plane runs as a host process on exactly the files a pod would
 * see: the Deployment the operator rendered says which ConfigMap and Secrets are mounted where
 * (items included), and test/syncer.ts writes them the kubelet's way into sibling directories.
 *
 * Then an app in org-a calls harmony://hospitals.example/org-b/fhir (a HarmonyPipeline backend
 * `target`) through gw-a and reads B's FHIR server (Medplum); the peers' exports are fetched from
 * the real data planes' /.well-known path; a deny policy on B's network gives the next call a 403
 * naming the rule; removing it restores the call (both timed).
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { posix, join } from "node:path";
import TOML from "@iarna/toml";
import { eventually as poll, freePort, http, startDataplane, stopAll, tempDir } from "../dataplane/test/helpers.js";
import type { Dataplane } from "../dataplane/test/helpers.js";
import { OPERATOR_NS, cr, startCluster, type Cluster } from "./network-env.js";
import { startSyncer } from "./syncer.js";
import { startFhirServer, type FhirPeer } from "./peers/fhir-server.js";

const DOMAIN = "hospitals.example";
const B_FHIR = `harmony://${DOMAIN}/org-b/fhir`;
/** Where the pod's volumes hang (the operator's CONFIG_DIR, SECRET_DIR and NET_DIR are below it). */
const POD_ROOT = "/etc/harmony";

let A: Cluster;
let B: Cluster;
let fhir: FhirPeer;
let gwA: Dataplane;
let gwB: Dataplane;
let patientId = "";
const stops: (() => unknown)[] = [];
const ports = { a: 0, b: 0, app: 0, mgmtA: 0, mgmtB: 0 };

const eventually = <T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 90_000) =>
  poll(what, fn, {
    timeoutMs,
    context: () =>
      `A log:\n${A?.log().slice(-2500)}\nB log:\n${B?.log().slice(-2500)}\n` +
      `gw-a:\n${gwA?.stderr().slice(-1500)}${JSON.stringify(gwA?.logs.slice(-15))}\n` +
      `gw-b:\n${gwB?.stderr().slice(-1500)}${JSON.stringify(gwB?.logs.slice(-15))}`,
  });

const gateway = (ns: string, name: string, networks: object[], mgmt: number) =>
  cr(
    "HarmonyGateway",
    ns,
    name,
    { networks, management: { port: mgmt } },
    // Peers and the other gateways dial it here (the data plane runs on this host).
    { annotations: { "harmony.runbeam.io/network-address": "127.0.0.1" } },
  );

const hospitals = (org: string, extra: object = {}) =>
  cr("HarmonyNetwork", undefined, "hospitals", {
    domain: DOMAIN,
    members: { orgs: [org] },
    export: { endpoints: [{ org }] },
    syncIntervalSeconds: 1,
    ...extra,
  });

const DENY_A = {
  name: "no-org-a-at-b-fhir",
  action: "deny",
  source: { orgs: ["org-a"] },
  destination: { endpoints: [B_FHIR] },
};

const caFingerprint = (c: Cluster) =>
  eventually(`${c.name} network CA`, async () => {
    const n = await c.get<{ status?: { caFingerprint?: string } }>(
      "/apis/harmony.runbeam.io/v1alpha1/harmonynetworks/hospitals",
    );
    return n?.status?.caFingerprint;
  });

const peerToken = (name: string, port: number, fingerprint: string) => ({
  apiVersion: "v1",
  kind: "Secret",
  metadata: { name, namespace: OPERATOR_NS },
  stringData: { url: `https://127.0.0.1:${port}/.well-known/harmony/hospitals/export.jws`, fingerprint },
});

interface Volume {
  name: string;
  configMap?: { name: string };
  secret?: { secretName: string; items?: { key: string; path: string }[] };
}
interface PodSpec {
  volumes: Volume[];
  containers: { args: string[]; volumeMounts: { name: string; mountPath: string }[] }[];
}

/**
 * Runs a gateway's data plane the way its pod would: every ConfigMap/Secret volume of the rendered
 * Deployment mirrored at its mount path (re-rooted under a temp dir), config from the container's
 * `--config`. The API config source is left out: a host process has no ServiceAccount token.
 */
async function runGateway(c: Cluster, ns: string, gw: string, wantNetworks: boolean): Promise<Dataplane> {
  const spec = await eventually(`${gw} Deployment with its network volume`, async () => {
    const d = await c.get<{ spec: { template: { spec: PodSpec } } }>(
      `/apis/apps/v1/namespaces/${ns}/deployments/${gw}-harmony`,
    );
    const s = d?.spec.template.spec;
    return s && (!wantNetworks || s.volumes.some((v) => v.name === "harmony-net")) && s;
  });
  const root = tempDir(`harmony-pod-${gw}-`);
  const kc = (args: string[]) => spawn("kubectl", ["--kubeconfig", c.cp.kubeconfig, ...args], { env: c.cp.env });
  const synced: (() => number)[] = [];
  for (const m of spec.containers[0]!.volumeMounts) {
    const v = spec.volumes.find((x) => x.name === m.name)!;
    const dir = join(root, posix.relative(POD_ROOT, m.mountPath));
    assert.ok(!dir.startsWith(".."), `${m.mountPath} is under ${POD_ROOT}`);
    const items = v.secret?.items && Object.fromEntries(v.secret.items.map((i) => [i.key, i.path]));
    const s = v.configMap
      ? startSyncer(kc, ns, v.configMap.name, dir)
      : v.secret
        ? startSyncer(kc, ns, v.secret.secretName, dir, "secret", items)
        : undefined;
    if (!s) continue;
    stops.push(() => s.stop());
    // The gateway's own Secret exists only when a pipeline has secret options: not awaited.
    if (v.configMap || v.name === "harmony-net") synced.push(() => s.swaps());
  }
  const config = spec.containers[0]!.args[spec.containers[0]!.args.indexOf("--config") + 1]!;
  const configFile = join(root, posix.relative(POD_ROOT, config));
  await eventually(`${gw}'s volumes synced`, () => Promise.resolve(synced.every((n) => n() > 0)));
  const dp = await startDataplane(configFile, { HARMONY_POLL_MS: "200" });
  stops.push(() => dp.stop());
  return dp;
}

before(async () => {
  for (const k of Object.keys(ports) as (keyof typeof ports)[]) ports[k] = await freePort();
  fhir = await startFhirServer();
  stops.push(() => fhir.close());
  const created = await http(`${fhir.base}/Patient`, {
    method: "POST",
    headers: { "content-type": "application/fhir+json" },
    body: JSON.stringify({ resourceType: "Patient", name: [{ family: "Federated" }] }),
  });
  assert.equal(created.status, 201, created.text);
  patientId = (created.json() as { id: string }).id;

  [A, B] = await Promise.all([startCluster("cluster-a"), startCluster("cluster-b")]);
  stops.push(() => Promise.all([A.stop(), B.stop()]));
  await A.kubectl(["create", "namespace", "org-a"]);
  await B.kubectl(["create", "namespace", "org-b"]);
  const harmony = (port: number) => ({ name: "harmony", port, bindAddress: "127.0.0.1" });
  await A.apply(
    hospitals("org-a"),
    gateway(
      "org-a",
      "gw-a",
      [harmony(ports.a), { name: "apps", port: ports.app, bindAddress: "127.0.0.1" }],
      ports.mgmtA,
    ),
    // The app-facing endpoint: only on the apps listener, so not in the network's directory.
    cr("HarmonyEndpoint", "org-a", "b-fhir", { service: "fhir", pathPrefix: "/b/fhir" }),
    cr("HarmonyPipeline", "org-a", "to-b", {
      gatewayRef: { name: "gw-a" },
      networks: ["apps"],
      endpoints: [{ name: "b-fhir" }],
      backends: [{ service: "fhir", target: B_FHIR }],
    }),
  );
  await B.apply(
    hospitals("org-b"),
    gateway("org-b", "gw-b", [harmony(ports.b)], ports.mgmtB),
    cr("HarmonyEndpoint", "org-b", "fhir", { service: "fhir", pathPrefix: "/org-b/fhir" }),
    cr("HarmonyPipeline", "org-b", "fhir-pl", {
      gatewayRef: { name: "gw-b" },
      networks: ["harmony"],
      endpoints: [{ name: "fhir" }],
      backends: [{ service: "fhir", url: fhir.base }],
    }),
  );
  // Peering: each side's token pins the other's CA and points at the other's gateway.
  const [fpA, fpB] = await Promise.all([caFingerprint(A), caFingerprint(B)]);
  await A.apply(
    peerToken("peer-b", ports.b, fpB),
    hospitals("org-a", { peers: [{ name: "cluster-b", tokenSecretRef: { name: "peer-b" } }] }),
  );
  await B.apply(
    peerToken("peer-a", ports.a, fpA),
    hospitals("org-b", { peers: [{ name: "cluster-a", tokenSecretRef: { name: "peer-a" } }] }),
  );
  [gwA, gwB] = await Promise.all([runGateway(A, "org-a", "gw-a", true), runGateway(B, "org-b", "gw-b", true)]);
});

after(() => stopAll(stops));

const viaA = (path: string) => http(`http://127.0.0.1:${ports.app}/b/fhir${path}`);

test("the rendered config points at the mounted network files (relative to the config directory)", async () => {
  const cm = await A.get<{ data: Record<string, string> }>("/api/v1/namespaces/org-a/configmaps/gw-a-harmony-config");
  const doc = TOML.parse(cm!.data["config.toml"]!) as { harmony_networks: Record<string, Record<string, string>> };
  assert.equal(doc.harmony_networks.hospitals!.cert_path, "../net/hospitals/tls.crt");
  assert.equal(doc.harmony_networks.hospitals!.directory_path, "../net/hospitals/directory.json");
});

test("each side imports the other's export from the other's real data plane", async () => {
  for (const [c, other] of [
    [A, "cluster-b"],
    [B, "cluster-a"],
  ] as const) {
    await eventually(`${c.name} synced from ${other}`, async () => {
      const n = await c.get<{ status?: { peers?: { name: string; state: string; lastError?: string }[] } }>(
        "/apis/harmony.runbeam.io/v1alpha1/harmonynetworks/hospitals",
      );
      return n?.status?.peers?.find((p) => p.name === other)?.state === "Synced";
    });
  }
});

test("an app in org A reads org B's FHIR server through harmony://hospitals.example/org-b/fhir", async () => {
  const r = await eventually("A reaches B's FHIR server", async () => {
    const x = await viaA(`/Patient/${patientId}`);
    return x.status === 200 && x;
  });
  const p = r.json() as { resourceType: string; id: string; name: { family: string }[] };
  assert.equal(p.resourceType, "Patient");
  assert.equal(p.id, patientId);
  assert.equal(p.name[0]!.family, "Federated");
});

test("a deny policy on B's network makes the next call 403 naming the rule; removing it restores the call", async (t) => {
  const t0 = Date.now();
  await B.apply(
    hospitals("org-b", { peers: [{ name: "cluster-a", tokenSecretRef: { name: "peer-a" } }], policies: [DENY_A] }),
  );
  const denied = await eventually("A's call denied at B", async () => {
    const x = await viaA(`/Patient/${patientId}`);
    return x.status === 403 && x;
  });
  const denyMs = Date.now() - t0;
  const oo = denied.json() as { resourceType: string; issue: { code: string; diagnostics: string }[] };
  assert.equal(oo.resourceType, "OperationOutcome");
  assert.match(oo.issue[0]!.diagnostics, /no-org-a-at-b-fhir/);
  const line = await gwB.waitForLog((l) => l.message === "network policy denied");
  assert.equal(line.rule, "no-org-a-at-b-fhir");
  assert.equal(line.peer, `spiffe://${DOMAIN}/org/org-a/gateway/gw-a`);

  const t1 = Date.now();
  await B.apply(hospitals("org-b", { peers: [{ name: "cluster-a", tokenSecretRef: { name: "peer-a" } }] }));
  const back = await eventually("A's call allowed again", async () => {
    const x = await viaA(`/Patient/${patientId}`);
    return x.status === 200 && x;
  });
  const allowMs = Date.now() - t1;
  assert.equal((back.json() as { id: string }).id, patientId);
  t.diagnostic(
    `policy added → 403 at A: ${(denyMs / 1000).toFixed(1)} s; removed → 200: ${(allowMs / 1000).toFixed(1)} s`,
  );
});
