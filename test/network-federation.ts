/**
 * Issue 17's end-to-end set-up, shared by the FHIR and the DIMSE end-to-end tests: two real
 * control planes (each its own etcd and kube-apiserver) with an operator each; Org A (org-a) in
 * cluster A, Org B (org-b) in cluster B, one logical network "hospitals" spread over both clusters,
 * each side peered with the other by a peering token. Each gateway's data plane runs as a host
 * process on exactly the files a pod would see: the Deployment the operator rendered says which
 * ConfigMap and Secrets are mounted where (items included), and test/syncer.ts writes them the
 * kubelet's way into sibling directories. Nothing on the data-plane side is written by hand.
 *
 * gw-a has the network listener `harmony` and an app listener `apps` (pipelines on it are not in
 * the directory); gw-b has `harmony` only. The caller brings each side's endpoints and pipelines.
 */
import { eventually as poll, freePort } from "../dataplane/test/helpers.js";
import type { Dataplane } from "../dataplane/test/helpers.js";
import { OPERATOR_NS, cr, startCluster, type Cluster } from "./network-env.js";
import { runGatewayPod } from "./network-pod.js";

export const DOMAIN = "hospitals.example";

export interface FederationPorts {
  /** gw-a's and gw-b's `harmony` listeners. */
  a: number;
  b: number;
  /** gw-a's `apps` listener. */
  app: number;
  mgmtA: number;
  mgmtB: number;
}

export interface Federation {
  A: Cluster;
  B: Cluster;
  gwA: Dataplane;
  gwB: Dataplane;
  ports: FederationPorts;
  /** Polls `fn` until it yields; on a timeout the error carries both operators' and gateways' logs. */
  eventually<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs?: number): Promise<T>;
  /** One side's HarmonyNetwork as set up (its peer included), with `extra` spec fields over it. */
  network(side: "A" | "B", extra?: object): object;
}

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

const peerToken = (name: string, port: number, fingerprint: string) => ({
  apiVersion: "v1",
  kind: "Secret",
  metadata: { name, namespace: OPERATOR_NS },
  stringData: { url: `https://127.0.0.1:${port}/.well-known/harmony/hospitals/export.jws`, fingerprint },
});

/**
 * Starts both clusters, applies each side's network, gateway and `resources`, peers them and runs
 * both gateways. Everything started is pushed onto `stops` (for stopAll), also when this throws.
 */
export async function startFederation(
  stops: (() => unknown)[],
  resources: (ports: FederationPorts) => { a: object[]; b: object[] },
): Promise<Federation> {
  const ports: FederationPorts = { a: 0, b: 0, app: 0, mgmtA: 0, mgmtB: 0 };
  for (const k of Object.keys(ports) as (keyof FederationPorts)[]) ports[k] = await freePort();
  const fed = { ports } as Federation;
  // Access lines say little about why something did not happen: left out of the context.
  const events = (dp: Dataplane | undefined) =>
    JSON.stringify(dp?.logs.filter((l) => l.message !== "access").slice(-15));
  fed.eventually = (what, fn, timeoutMs = 90_000) =>
    poll(what, fn, {
      timeoutMs,
      context: () =>
        `A log:\n${fed.A?.log().slice(-2500)}\nB log:\n${fed.B?.log().slice(-2500)}\n` +
        `gw-a:\n${fed.gwA?.stderr().slice(-1500)}${events(fed.gwA)}\n` +
        `gw-b:\n${fed.gwB?.stderr().slice(-1500)}${events(fed.gwB)}`,
    });
  const peered = { A: false, B: false };
  fed.network = (side, extra = {}) =>
    side === "A"
      ? hospitals("org-a", {
          ...(peered.A ? { peers: [{ name: "cluster-b", tokenSecretRef: { name: "peer-b" } }] } : {}),
          ...extra,
        })
      : hospitals("org-b", {
          ...(peered.B ? { peers: [{ name: "cluster-a", tokenSecretRef: { name: "peer-a" } }] } : {}),
          ...extra,
        });

  [fed.A, fed.B] = await Promise.all([startCluster("cluster-a"), startCluster("cluster-b")]);
  stops.push(() => Promise.all([fed.A.stop(), fed.B.stop()]));
  const { A, B } = fed;
  await A.kubectl(["create", "namespace", "org-a"]);
  await B.kubectl(["create", "namespace", "org-b"]);
  const harmony = (port: number) => ({ name: "harmony", port, bindAddress: "127.0.0.1" });
  const own = resources(ports);
  await A.apply(
    fed.network("A"),
    gateway(
      "org-a",
      "gw-a",
      [harmony(ports.a), { name: "apps", port: ports.app, bindAddress: "127.0.0.1" }],
      ports.mgmtA,
    ),
    ...own.a,
  );
  await B.apply(fed.network("B"), gateway("org-b", "gw-b", [harmony(ports.b)], ports.mgmtB), ...own.b);
  // Peering: each side's token pins the other's CA and points at the other's gateway.
  const [fpA, fpB] = await Promise.all([caFingerprint(fed, A), caFingerprint(fed, B)]);
  peered.A = peered.B = true;
  await A.apply(peerToken("peer-b", ports.b, fpB), fed.network("A"));
  await B.apply(peerToken("peer-a", ports.a, fpA), fed.network("B"));
  // Settled, not all: a gateway still starting when the other fails must register its stop first.
  const started = await Promise.allSettled([
    runGatewayPod(A, "org-a", "gw-a", { stops, eventually: (what, fn) => fed.eventually(what, fn) }),
    runGatewayPod(B, "org-b", "gw-b", { stops, eventually: (what, fn) => fed.eventually(what, fn) }),
  ]);
  for (const r of started) if (r.status === "rejected") throw r.reason;
  [fed.gwA, fed.gwB] = started.map((r) => (r as PromiseFulfilledResult<Dataplane>).value) as [Dataplane, Dataplane];
  return fed;
}

const caFingerprint = (fed: Federation, c: Cluster) =>
  fed.eventually(`${c.name} network CA`, async () => {
    const n = await c.get<{ status?: { caFingerprint?: string } }>(
      "/apis/harmony.runbeam.io/v1alpha1/harmonynetworks/hospitals",
    );
    return n?.status?.caFingerprint;
  });
