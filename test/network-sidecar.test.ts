/**
 * A Sidecar-mode HarmonyGateway as a network member (issue 17), over the wire: a real control
 * plane, the operator with its mutating webhook called by the API server, a pod created with
 * kubectl, and the data plane run on exactly the files the stored pod's sidecar mounts (test/syncer.ts
 * writes each mounted ConfigMap and Secret the kubelet's way, items included).
 *
 * The sidecar must get the network files (its own SPIFFE identity, org = its namespace) at the
 * paths its config names; its endpoints enter the directory only with an address peers can dial
 * (a sidecar has no Service of its own), and until then both the gateway and the network say why.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { posix, join } from "node:path";
import { connect } from "node:tls";
import type { V1Pod } from "@kubernetes/client-node";
import { eventually as poll, freePort, startDataplane, stopAll, tempDir } from "../dataplane/test/helpers.js";
import { OPERATOR_NS, cr, served, startCluster, type Cluster } from "./network-env.js";
import { startSyncer } from "./syncer.js";

const SIDECAR = "harmony-dataplane";
const POD_ROOT = "/etc/harmony";
const ADDRESS = "harmony.runbeam.io/network-address";
let A: Cluster;
const stops: (() => unknown)[] = [];
const ports = { net: 0, mgmt: 0, webhook: 0 };

const eventually = <T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000) =>
  poll(what, fn, { timeoutMs, context: () => `operator log:\n${A?.log().slice(-4000)}` });

type Cond = { type: string; status: string; reason: string; message: string };
const gatewayCondition = async (type: string) =>
  (
    await A.get<{ status?: { conditions?: Cond[] } }>(
      "/apis/harmony.runbeam.io/v1alpha1/namespaces/org-a/harmonygateways/side",
    )
  )?.status?.conditions?.find((c) => c.type === type);
const network = async () =>
  (
    await A.get<{
      status?: {
        endpoints?: number;
        skipped?: { kind: string; name: string; reason: string; message: string }[];
        conditions?: Cond[];
      };
    }>("/apis/harmony.runbeam.io/v1alpha1/harmonynetworks/hospitals")
  )?.status;
const directory = async () => {
  const text = await A.secretKey("org-a", "side-harmony-net", "hospitals.directory.json");
  return text === undefined
    ? undefined
    : (JSON.parse(text) as { entries: { uri: string; address: string; port: number }[] });
};

const sidecarGateway = (annotations: Record<string, string> = {}) =>
  cr(
    "HarmonyGateway",
    "org-a",
    "side",
    {
      mode: "Sidecar",
      networks: [{ name: "harmony", port: ports.net, bindAddress: "127.0.0.1" }],
      management: { port: ports.mgmt },
    },
    { annotations },
  );

const appPod = (name: string): V1Pod => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name, namespace: "org-a", labels: { "harmony.runbeam.io/gateway": "side" } },
  spec: { containers: [{ name: "app", image: "registry.example/app:1" }] },
});

before(async () => {
  for (const k of Object.keys(ports) as (keyof typeof ports)[]) ports[k] = await freePort();
  A = await startCluster(
    "cluster-a",
    [
      "--image",
      "registry.example/harmony-dataplane:test",
      "--webhook-port",
      String(ports.webhook),
      "--webhook-url",
      `https://127.0.0.1:${ports.webhook}/mutate-v1-pod`,
      "--webhook-cert-secret",
      `${OPERATOR_NS}/harmony-webhook-cert`,
      "--validating-config-name=",
    ],
    async (_cp, kubectl) => void (await kubectl(["create", "namespace", "org-a"])),
  );
  stops.push(() => A.stop());
  await A.apply(
    cr("HarmonyNetwork", undefined, "hospitals", { domain: "hospitals.example", members: { orgs: ["org-a"] } }),
    sidecarGateway(),
    ...served("org-a", "side", "fhir", { service: "fhir", pathPrefix: "/org-a/fhir" }),
  );
});

after(() => stopAll(stops));

test("without an address a Sidecar gateway's endpoints stay out of the directory; gateway and network say why", async () => {
  const st = await eventually("network reports the sidecar gateway", async () => {
    const s = await network();
    return Boolean(s?.skipped?.length) && s;
  });
  assert.equal(st.endpoints, 0);
  assert.deepEqual(
    st.skipped!.map(({ kind, name, reason }) => ({ kind, name, reason })),
    [{ kind: "HarmonyGateway", name: "org-a/side", reason: "NoNetworkAddress" }],
  );
  assert.match(st.skipped![0]!.message, /harmony\.runbeam\.io\/network-address annotation/);
  assert.equal(st.conditions?.find((c) => c.type === "Ready")?.reason, "MembersSkipped");
  const c = await eventually("gateway NetworkReachable", () => gatewayCondition("NetworkReachable"));
  assert.equal(c.status, "False");
  assert.equal(c.reason, "NoNetworkAddress");
  assert.match(c.message, new RegExp(`network "hospitals".*port ${ports.net}`));
  // It still gets the directory (it may call out), just without its own entries.
  const dir = await eventually("sidecar gateway's directory", directory);
  assert.deepEqual(dir.entries, []);
});

test("the injected sidecar mounts the network files and serves the network listener with its own identity", async () => {
  await eventually("network Secret written", () => A.secretKey("org-a", "side-harmony-net", "hospitals.tls.crt"));
  await eventually("config names the network", async () => {
    const cm = await A.get<{ data: Record<string, string> }>("/api/v1/namespaces/org-a/configmaps/side-harmony-config");
    return cm?.data["config.toml"]?.includes("[harmony_networks.hospitals]");
  });
  // The API server calls the webhook once it has picked up its configuration: retry the create.
  const created = await eventually("pod created through the webhook", async () => {
    const r = await A.cp.kubectl(["create", "-o", "json", "-f", "-"], JSON.stringify(appPod("app-1")));
    return r.code === 0 && (JSON.parse(r.stdout) as V1Pod);
  });
  const sidecar = [...(created.spec?.initContainers ?? []), ...(created.spec?.containers ?? [])].find(
    (c) => c.name === SIDECAR,
  );
  assert.ok(sidecar, "sidecar injected");
  const netMount = sidecar.volumeMounts?.find((m) => m.mountPath === `${POD_ROOT}/net`);
  assert.ok(netMount, `network files mounted: ${JSON.stringify(sidecar.volumeMounts)}`);
  const netVolume = created.spec!.volumes!.find((v) => v.name === netMount.name)!;
  assert.equal(netVolume.secret?.secretName, "side-harmony-net");
  assert.deepEqual(netVolume.secret?.items?.map((i) => i.path).sort(), [
    "hospitals/ca.crt",
    "hospitals/directory.json",
    "hospitals/export.jws",
    "hospitals/tls.crt",
    "hospitals/tls.key",
  ]);

  // The pod's files, as the kubelet would write them, and the data plane on them.
  const root = tempDir("harmony-sidecar-pod-");
  const kc = (args: string[]) => spawn("kubectl", ["--kubeconfig", A.cp.kubeconfig, ...args], { env: A.cp.env });
  const synced: (() => number)[] = [];
  for (const m of sidecar.volumeMounts ?? []) {
    const v = created.spec!.volumes!.find((x) => x.name === m.name)!;
    const dir = join(root, posix.relative(POD_ROOT, m.mountPath));
    const items = v.secret?.items && Object.fromEntries(v.secret.items.map((i) => [i.key, i.path]));
    const s = v.configMap
      ? startSyncer(kc, "org-a", v.configMap.name!, dir)
      : v.secret
        ? startSyncer(kc, "org-a", v.secret.secretName!, dir, "secret", items)
        : undefined;
    if (!s) continue;
    stops.push(() => s.stop());
    if (v.configMap || m === netMount) synced.push(() => s.swaps());
  }
  await eventually("pod volumes synced", () => Promise.resolve(synced.every((n) => n() > 0)));
  const args = sidecar.args!;
  const config = args[args.indexOf("--config") + 1]!;
  const dp = await startDataplane(join(root, posix.relative(POD_ROOT, config)));
  stops.push(() => dp.stop());

  const bundle = (await A.secretKey("org-a", "side-harmony-net", "hospitals.ca.crt"))!;
  const served = await new Promise<X509Certificate>((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port: ports.net, ca: bundle, checkServerIdentity: () => undefined }, () => {
      const raw = s.getPeerCertificate().raw;
      s.end();
      resolve(new X509Certificate(raw));
    });
    s.on("error", reject);
  });
  // Verified against the network's bundle (connect rejects otherwise), and the org is the pod's namespace.
  assert.equal(served.subjectAltName, "URI:spiffe://hospitals.example/org/org-a/gateway/side");
});

test("with the address annotation (the app's Service) its endpoints enter the directory and the reports clear", async () => {
  await A.apply(sidecarGateway({ [ADDRESS]: "app.org-a.svc" }));
  const dir = await eventually("entry with the app's address", async () => {
    const d = await directory();
    return Boolean(d?.entries.length) && d;
  });
  assert.deepEqual(
    dir.entries.map(({ uri, address, port }) => ({ uri, address, port })),
    [{ uri: "harmony://hospitals.example/org-a/fhir", address: "app.org-a.svc", port: ports.net }],
  );
  const c = await eventually("NetworkReachable True", async () => {
    const x = await gatewayCondition("NetworkReachable");
    return x?.status === "True" && x;
  });
  assert.equal(c.reason, "AddressAnnotated");
  const st = await eventually("network no longer skips it", async () => {
    const s = await network();
    return s?.endpoints === 1 && s;
  });
  assert.equal(st.skipped, undefined);
  assert.equal(st.conditions?.find((x) => x.type === "Ready")?.reason, "Ready");
});
