/**
 * HarmonyNetwork across TWO real control planes (each its own etcd and kube-apiserver), with an
 * operator per cluster as a host process. Cluster A: network "hospitals" (orgs org-a, org-b; org-x
 * has a gateway but is no member). Cluster B: network "clinics" (org-c), peered with A.
 *
 * Checked on what the operators render and what the apiservers hold: members and printer columns,
 * endpoint URIs, workload certificates (URI SAN, chain, key custody), directory.json, policies,
 * config.toml keys, the pod mount, CA rotation order, membership and policy removal (timed), and
 * federation: A's signed export fetched from a stand-in for A's gateway, verified against the
 * peering token, merged into B's directory and trust bundle, a forged pin refused, and a peer
 * going away leaving B's entries alone.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { createServer, type Server } from "node:https";
import { createServer as createNetServer, type Socket } from "node:net";
import { once } from "node:events";
import TOML from "@iarna/toml";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { eventually as poll } from "../dataplane/test/helpers.js";
import { OPERATOR_NS, cr, memberGateway, pems, served, startCluster, type Cluster } from "./network-env.js";
import { parseTrustBundle } from "../dataplane/src/network/trust.js";

let A: Cluster;
let B: Cluster;
let peerDouble: Server | undefined;

const eventually = <T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000) =>
  poll(what, fn, {
    timeoutMs,
    context: () => `A log:\n${A.log().slice(-3000)}\nB log:\n${B?.log().slice(-3000)}`,
  });

type NetStatus = {
  members?: string[];
  memberCount?: number;
  endpoints?: number;
  gateways?: number;
  caFingerprint?: string;
  peerSummary?: string;
  peers?: { name: string; state: string; lastError?: string; entries?: number }[];
  conditions?: { type: string; status: string; reason: string }[];
};
const network = (c: Cluster, name: string) =>
  c.get<{ status?: NetStatus }>(`/apis/harmony.runbeam.io/v1alpha1/harmonynetworks/${name}`);
const directory = async (c: Cluster, ns: string, gw: string, net: string) => {
  const text = await c.secretKey(ns, `${gw}-harmony-net`, `${net}.directory.json`);
  return text === undefined ? undefined : (JSON.parse(text) as Directory);
};
interface Directory {
  version: number;
  network: string;
  domain: string;
  groups: { network: string; orgs: string[] }[];
  entries: Record<string, unknown>[];
  policies: Record<string, unknown>[];
}
const configToml = async (c: Cluster, ns: string, gw: string) => {
  const cm = await c.get<{ data?: Record<string, string> }>(`/api/v1/namespaces/${ns}/configmaps/${gw}-harmony-config`);
  return cm?.data?.["config.toml"] ? (TOML.parse(cm.data["config.toml"]) as unknown as ConfigDoc) : undefined;
};
interface ConfigDoc {
  harmony_networks?: Record<string, unknown>;
  network: Record<string, { harmony_network?: string }>;
}
interface PodSpec {
  volumes: { name: string; secret?: { secretName: string; items: { key: string; path: string }[] } }[];
  containers: { volumeMounts: { name: string; mountPath: string }[] }[];
}

const policies = [
  {
    name: "a-may-query-b-pacs",
    action: "allow",
    source: { orgs: ["org-a"] },
    destination: { endpoints: ["harmony://hospitals.example/org-b/pacs"] },
    operations: [{ protocol: "dicom", commands: ["C-FIND", "C-ECHO"] }],
  },
  {
    name: "no-store-at-b-pacs",
    action: "deny",
    destination: { endpoints: ["harmony://hospitals.example/org-b/pacs"] },
    operations: [
      { protocol: "dicom", commands: ["C-STORE"] },
      { protocol: "fhir", interactions: ["create"], resourceTypes: ["Patient"] },
    ],
  },
];
const hospitals = (orgs: string[], extra: object = {}) =>
  cr("HarmonyNetwork", undefined, "hospitals", {
    domain: "hospitals.example",
    members: { orgs },
    export: { endpoints: [{ org: "org-b", name: "fhir" }] },
    syncIntervalSeconds: 1,
    policies,
    ...extra,
  });

const clinics = (extraPeers: object[] = []) =>
  cr("HarmonyNetwork", undefined, "clinics", {
    domain: "clinics.example",
    members: { orgs: ["org-c"] },
    syncIntervalSeconds: 1,
    ca: { leafValiditySeconds: 60 }, // short, for the renewal test below
    peers: [
      { name: "cluster-a", tokenSecretRef: { name: "peer-a" } },
      { name: "forged", tokenSecretRef: { name: "peer-forged" } },
      ...extraPeers,
    ],
  });

before(async () => {
  [A, B] = await Promise.all([startCluster("cluster-a"), startCluster("cluster-b")]);
  for (const ns of ["org-a", "org-b", "org-x"]) await A.kubectl(["create", "namespace", ns]);
  await B.kubectl(["create", "namespace", "org-c"]);
  await A.apply(
    hospitals(["org-a", "org-b"]),
    memberGateway("org-a", "gw-a", 8443),
    memberGateway("org-b", "gw-b", 9443),
    memberGateway("org-x", "gw-x", 7443),
    ...served("org-a", "gw-a", "app", { service: "http", pathPrefix: "/org-a/app" }),
    ...served("org-b", "gw-b", "fhir", { service: "fhir", pathPrefix: "/org-b/fhir" }),
    ...served("org-b", "gw-b", "pacs", { service: "dicom", aeTitle: "PACS", port: 11112 }),
    ...served("org-x", "gw-x", "other", { service: "http", pathPrefix: "/org-x/other" }),
  );
});

after(async () => {
  peerDouble?.close();
  await Promise.all([A?.stop(), B?.stop()]);
});

test("members, endpoint count and Ready show in status and in kubectl get harmonynetwork", async () => {
  const st = await eventually("network status", async () => {
    const s = (await network(A, "hospitals"))?.status;
    return s?.endpoints === 3 && s.conditions?.some((c) => c.type === "Ready" && c.status === "True") && s;
  });
  assert.deepEqual(st.members, ["org-a", "org-b"]);
  assert.equal(st.memberCount, 2);
  assert.equal(st.gateways, 2);
  assert.match(st.caFingerprint ?? "", /^[0-9a-f]{64}$/);
  const table = await A.kubectl(["get", "harmonynetwork"]);
  const [head, row] = table.trim().split("\n");
  assert.match(head!, /^NAME\s+READY\s+REASON\s+DOMAIN\s+MEMBERS\s+ENDPOINTS\s+PEERS\s+AGE/);
  assert.match(row!, /^hospitals\s+True\s+Ready\s+hospitals\.example\s+2\s+3\s+0\/0\s+/);
});

test("endpoints of member orgs get their global URI; others get none", async () => {
  const ep = (ns: string, n: string) =>
    A.get<{ status?: { uri?: string; uris?: string[]; conditions?: unknown[] } }>(
      `/apis/harmony.runbeam.io/v1alpha1/namespaces/${ns}/harmonyendpoints/${n}`,
    );
  const fhir = await eventually("uri on org-b/fhir", async () => (await ep("org-b", "fhir"))?.status?.uri);
  assert.equal(fhir, "harmony://hospitals.example/org-b/fhir");
  assert.deepEqual((await ep("org-b", "fhir"))?.status?.uris, ["harmony://hospitals.example/org-b/fhir"]);
  await eventually("org-x/other reconciled", async () => (await ep("org-x", "other"))?.status?.conditions);
  assert.equal((await ep("org-x", "other"))?.status?.uri, undefined);
});

test("each member gateway holds a leaf with exactly its SPIFFE URI SAN, chained to the network CA; the CA key stays in the operator's namespace", async () => {
  const fp = (await network(A, "hospitals"))!.status!.caFingerprint!;
  for (const [ns, gw] of [
    ["org-a", "gw-a"],
    ["org-b", "gw-b"],
  ] as const) {
    const crt = await eventually(`${gw} leaf`, () => A.secretKey(ns, `${gw}-harmony-net`, "hospitals.tls.crt"));
    const key = (await A.secretKey(ns, `${gw}-harmony-net`, "hospitals.tls.key"))!;
    const bundle = (await A.secretKey(ns, `${gw}-harmony-net`, "hospitals.ca.crt"))!;
    const [leafPem, chainPem] = pems(crt);
    const leaf = new X509Certificate(leafPem!);
    const ca = new X509Certificate(pems(bundle)[0]!);
    assert.equal(leaf.subjectAltName, `URI:spiffe://hospitals.example/org/${ns}/gateway/${gw}`);
    assert.equal(leaf.subject, "", "identity lives in the SAN only");
    assert.ok(leaf.checkIssued(ca) && leaf.verify(ca.publicKey), "leaf signed by the bundle's CA");
    assert.equal(ca.fingerprint256.replace(/:/g, "").toLowerCase(), fp);
    assert.ok(ca.ca && !leaf.ca);
    assert.equal(new X509Certificate(chainPem!).fingerprint256, ca.fingerprint256, "tls.crt carries the chain");
    assert.ok(leaf.checkPrivateKey(createPrivateKey(key)));
    assert.doesNotMatch(bundle, /PRIVATE KEY/);
  }
  const caKey = await A.secretKey(OPERATOR_NS, "harmony-network-hospitals-ca", "ca.key");
  assert.match(caKey ?? "", /BEGIN PRIVATE KEY/);
  const cms = await A.get<{ items: { data?: Record<string, string> }[] }>("/api/v1/configmaps");
  assert.ok(
    cms!.items.every((c) => !JSON.stringify(c.data ?? {}).includes("PRIVATE KEY")),
    "no key in any ConfigMap",
  );
  assert.equal(await A.secretKey("org-x", "gw-x-harmony-net", "hospitals.tls.crt"), undefined, "non-member: no cert");
});

test("directory.json, config.toml and the pod mount follow the contract", async () => {
  const dir = await eventually("gw-a directory", () => directory(A, "org-a", "gw-a", "hospitals"));
  assert.deepEqual(
    { ...dir, entries: undefined, policies: undefined },
    {
      version: 1,
      network: "hospitals",
      domain: "hospitals.example",
      groups: [{ network: "hospitals", orgs: ["org-a", "org-b"] }],
      entries: undefined,
      policies: undefined,
    },
  );
  assert.deepEqual(dir.entries, [
    {
      uri: "harmony://hospitals.example/org-a/app",
      org: "org-a",
      endpoint: "app",
      protocol: "http",
      address: "127.0.0.1",
      port: 8443,
      path_prefix: "/org-a/app",
      identity: "spiffe://hospitals.example/org/org-a/gateway/gw-a",
    },
    {
      uri: "harmony://hospitals.example/org-b/fhir",
      org: "org-b",
      endpoint: "fhir",
      protocol: "fhir",
      address: "127.0.0.1",
      port: 9443,
      path_prefix: "/org-b/fhir",
      identity: "spiffe://hospitals.example/org/org-b/gateway/gw-b",
    },
    {
      uri: "harmony://hospitals.example/org-b/pacs",
      org: "org-b",
      endpoint: "pacs",
      protocol: "dicom",
      address: "127.0.0.1",
      port: 11112,
      ae_title: "PACS",
      identity: "spiffe://hospitals.example/org/org-b/gateway/gw-b",
    },
  ]);
  assert.deepEqual(dir.policies[1], {
    name: "no-store-at-b-pacs",
    action: "deny",
    destination: { endpoints: ["harmony://hospitals.example/org-b/pacs"] },
    operations: [
      { protocol: "dicom", commands: ["C-STORE"] },
      { protocol: "fhir", interactions: ["create"], resource_types: ["Patient"] },
    ],
  });
  assert.equal(dir.policies[0]!.name, "a-may-query-b-pacs");
  // Every member gateway reads the same directory.
  assert.deepEqual(await directory(A, "org-b", "gw-b", "hospitals"), dir);

  const toml = await eventually("gw-b config with harmony_networks", async () => {
    const t = await configToml(A, "org-b", "gw-b");
    return t?.harmony_networks ? t : undefined;
  });
  assert.deepEqual(toml.harmony_networks, {
    hospitals: {
      domain: "hospitals.example",
      org: "org-b",
      // Relative to the config directory (/etc/harmony/config): the mount at /etc/harmony/net.
      cert_path: "../net/hospitals/tls.crt",
      key_path: "../net/hospitals/tls.key",
      trust_bundle_path: "../net/hospitals/ca.crt",
      directory_path: "../net/hospitals/directory.json",
      export_path: "../net/hospitals/export.jws",
    },
  });
  assert.equal(toml.network.harmony?.harmony_network, "hospitals");
  const gx = await eventually("gw-x config", () => configToml(A, "org-x", "gw-x"));
  assert.equal(gx.harmony_networks, undefined, "a non-member gateway renders no network");
  assert.equal(gx.network.harmony?.harmony_network, undefined);

  // The Deployment may exist from before the gateway joined the network: wait for its network volume.
  const dep = await eventually("gw-b Deployment with its network volume", async () => {
    const d = await A.get<{ spec: { template: { spec: PodSpec } } }>(
      "/apis/apps/v1/namespaces/org-b/deployments/gw-b-harmony",
    );
    return d?.spec.template.spec.volumes?.some((v) => v.name === "harmony-net") ? d : undefined;
  });
  const vol = dep.spec.template.spec.volumes.find((v) => v.name === "harmony-net");
  assert.equal(vol?.secret?.secretName, "gw-b-harmony-net");
  assert.deepEqual(
    vol?.secret?.items.map((i) => i.path),
    ["tls.crt", "tls.key", "ca.crt", "directory.json", "export.jws"].map((f) => `hospitals/${f}`),
  );
  assert.ok(
    dep.spec.template.spec.containers[0]!.volumeMounts.some(
      (m) => m.name === "harmony-net" && m.mountPath === "/etc/harmony/net",
    ),
  );
});

test("federation: B imports A's signed export through a peering token; a wrong pin is refused; a peer going away leaves B's entries", async () => {
  const fp = (await network(A, "hospitals"))!.status!.caFingerprint!;
  const jws = await eventually("A's export", () => A.secretKey("org-b", "gw-b-harmony-net", "hospitals.export.jws"));
  assert.equal(decodeProtectedHeader(jws).alg, "RS256");
  const claims = decodeJwt(jws) as { entries: { uri: string }[]; issuer_cluster: string; exp: number; iat: number };
  assert.deepEqual(
    claims.entries.map((e) => e.uri),
    ["harmony://hospitals.example/org-b/fhir"],
    "only the exported endpoint",
  );
  assert.equal(claims.issuer_cluster, "cluster-a");
  assert.ok(claims.exp > claims.iat);

  // Test double for A's gateway: serves A's current export with gw-b's own network certificate,
  // at the path the data plane serves it on its harmony_network listener.
  const cert = (await A.secretKey("org-b", "gw-b-harmony-net", "hospitals.tls.crt"))!;
  const key = (await A.secretKey("org-b", "gw-b-harmony-net", "hospitals.tls.key"))!;
  peerDouble = createServer({ cert, key }, (req, res) => {
    if (req.url !== "/.well-known/harmony/hospitals/export.jws") return void res.writeHead(404).end();
    void A.secretKey("org-b", "gw-b-harmony-net", "hospitals.export.jws").then((body) =>
      res.writeHead(200, { "content-type": "application/jose" }).end(body),
    );
  });
  peerDouble.listen(0, "127.0.0.1");
  await once(peerDouble, "listening");
  const url = `https://127.0.0.1:${(peerDouble.address() as { port: number }).port}/.well-known/harmony/hospitals/export.jws`;
  const token = (name: string, fingerprint: string) => ({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace: OPERATOR_NS },
    stringData: { url, fingerprint },
  });
  await B.apply(
    token("peer-a", fp),
    token("peer-forged", "00".repeat(32)),
    clinics(),
    memberGateway("org-c", "gw-c", 8443),
    ...served("org-c", "gw-c", "ris", { service: "http", pathPrefix: "/org-c/ris" }),
  );
  const st = await eventually("B's peers status", async () => {
    const s = (await network(B, "clinics"))?.status;
    return s?.peers?.length === 2 && s.peers.every((p) => p.state !== "Pending") && s;
  });
  const byName = Object.fromEntries(st.peers!.map((p) => [p.name, p]));
  assert.equal(byName["cluster-a"]!.state, "Synced");
  assert.equal(byName["cluster-a"]!.entries, 1);
  assert.equal(byName.forged!.state, "Error");
  assert.match(byName.forged!.lastError ?? "", /peering token pins 0000/);
  assert.equal(st.peerSummary, "1/2");
  const row = (await B.kubectl(["get", "harmonynetwork", "clinics", "--no-headers"])).trim();
  assert.match(row, /^clinics\s+True\s+PeersDegraded\s+clinics\.example\s+1\s+1\s+1\/2\s+/);

  const dir = await eventually("B's directory with A's entry", async () => {
    const d = await directory(B, "org-c", "gw-c", "clinics");
    return d?.entries.length === 2 && d;
  });
  assert.deepEqual(
    dir.entries.map((e) => [e.uri, e.identity]),
    [
      ["harmony://clinics.example/org-c/ris", "spiffe://clinics.example/org/org-c/gateway/gw-c"],
      ["harmony://hospitals.example/org-b/fhir", "spiffe://hospitals.example/org/org-b/gateway/gw-b"],
    ],
  );
  // Another network's orgs do not join B's group: only explicit policy lets them in. They form a
  // group of their own (known peers), named with their domain.
  assert.deepEqual(dir.groups, [
    { network: "clinics", orgs: ["org-c"] },
    { network: "hospitals", orgs: ["hospitals.example/org-b"] },
  ]);
  const bBundle = (await B.secretKey("org-c", "gw-c-harmony-net", "clinics.ca.crt"))!;
  const fps = pems(bBundle).map((p) => new X509Certificate(p).fingerprint256.replace(/:/g, "").toLowerCase());
  assert.ok(fps.includes(fp), "A's CA is in B's trust bundle");
  assert.equal(fps.length, 2);
  // Each CA bound to the orgs it may vouch for: B's own for org-c, A's for the org A exports, in
  // A's domain (the bundle says `hospitals.example/org-b`).
  assert.match(bBundle, /^Harmony-Orgs: hospitals\.example\/org-b$/m);
  assert.deepEqual(
    parseTrustBundle(bBundle, "clinics.example").map((t) => [
      t.cert.fingerprint256.replace(/:/g, "").toLowerCase() === fp,
      [...t.orgs!],
    ]),
    [
      [false, ["clinics.example/org-c"]],
      [true, ["hospitals.example/org-b"]],
    ],
  );

  // The peer goes away: status says so, the imported entry stays.
  peerDouble.close();
  peerDouble.closeAllConnections();
  const failed = await eventually("cluster-a peer in Error", async () => {
    const p = (await network(B, "clinics"))?.status?.peers?.find((x) => x.name === "cluster-a");
    return p?.state === "Error" && p;
  });
  assert.match(failed.lastError ?? "", /ECONNREFUSED|socket|connect/i);
  assert.equal(failed.entries, 1);
  const after = await directory(B, "org-c", "gw-c", "clinics");
  assert.deepEqual(after, dir, "B's directory unchanged while the peer is away");
});

test("a peer that accepts and never answers does not hold up local directory changes", async () => {
  // Test double for a hung peer gateway: accepts TCP and sends nothing, so the fetch waits for its timeout.
  const open = new Set<Socket>();
  const silent = createNetServer((sock) => {
    open.add(sock);
    sock.resume(); // read (and drop) the ClientHello, so the client's close is seen
    sock.on("close", () => open.delete(sock));
  });
  silent.listen(0, "127.0.0.1");
  await once(silent, "listening");
  try {
    const url = `https://127.0.0.1:${(silent.address() as { port: number }).port}/.well-known/harmony/x/export.jws`;
    const fp = (await network(A, "hospitals"))!.status!.caFingerprint!;
    await B.apply(
      {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "peer-silent", namespace: OPERATOR_NS },
        stringData: { url, fingerprint: fp },
      },
      clinics([{ name: "silent", tokenSecretRef: { name: "peer-silent" } }]),
    );
    await eventually("the operator connected to the silent peer", () => Promise.resolve(open.size > 0));
    // That fetch started before the change below; a reconcile that waited on it would finish only
    // after its timeout closed this very connection (later fetches open new ones).
    const first = [...open][0]!;
    await B.apply(...served("org-c", "gw-c", "lab", { service: "http", pathPrefix: "/org-c/lab" }));
    await eventually("org-c/lab in B's directory", async () =>
      (await directory(B, "org-c", "gw-c", "clinics"))?.entries.some(
        (e) => e.uri === "harmony://clinics.example/org-c/lab",
      ),
    );
    assert.ok(open.has(first), "the local change landed while the first fetch from the silent peer was still waiting");
    // Back to the two peers the later tests expect.
    await B.apply(clinics());
  } finally {
    for (const s of open) s.destroy();
    silent.close();
  }
});

test("removing a policy, then a member org, reaches the rendered directory within seconds", async (t) => {
  const t0 = Date.now();
  await A.apply(hospitals(["org-a", "org-b"], { policies: [policies[0]] }));
  await eventually("policy gone from gw-a's directory", async () => {
    const d = await directory(A, "org-a", "gw-a", "hospitals");
    return d?.policies.length === 1 && d;
  });
  const policyMs = Date.now() - t0;

  const t1 = Date.now();
  await A.apply(hospitals(["org-a"], { policies: [policies[0]] }));
  const d = await eventually("org-b gone from gw-a's directory", async () => {
    const x = await directory(A, "org-a", "gw-a", "hospitals");
    return x && !x.entries.some((e) => e.org === "org-b") && x;
  });
  const memberMs = Date.now() - t1;
  assert.deepEqual(d.groups, [{ network: "hospitals", orgs: ["org-a"] }]);
  // The former member leaves the network entirely: no URI, no network in its config.
  await eventually("org-b/fhir loses its URI", async () => {
    const e = await A.get<{ status?: { uri?: string } }>(
      "/apis/harmony.runbeam.io/v1alpha1/namespaces/org-b/harmonyendpoints/fhir",
    );
    return e?.status && e.status.uri === undefined;
  });
  await eventually("gw-b renders no network", async () => {
    const c = await configToml(A, "org-b", "gw-b");
    return c && c.harmony_networks === undefined;
  });
  t.diagnostic(`policy removal → directory: ${policyMs} ms; membership removal → directory: ${memberMs} ms`);
});

test("CA rotation: the new CA enters every bundle before any leaf uses it, and the old one leaves after", async () => {
  const leafIssuer = async () => {
    const crt = await A.secretKey("org-a", "gw-a-harmony-net", "hospitals.tls.crt");
    return crt ? new X509Certificate(pems(crt)[0]!).issuer : undefined;
  };
  const bundleSubjects = async () =>
    pems((await A.secretKey("org-a", "gw-a-harmony-net", "hospitals.ca.crt")) ?? "").map(
      (p) => new X509Certificate(p).subject,
    );
  const oldIssuer = (await leafIssuer())!;
  assert.deepEqual(await bundleSubjects(), [oldIssuer]);
  await A.apply(
    hospitals(["org-a"], { policies: [policies[0]], ca: { rotation: "2026-12", rotationPhaseSeconds: 8 } }),
  );
  // Polled states, deduplicated: the order they appear in is the rotation's order.
  const seen: string[] = [];
  let newIssuer = "";
  await eventually(
    "rotation to finish",
    async () => {
      const [issuer, bundle] = [(await leafIssuer())!, await bundleSubjects()];
      if (issuer !== oldIssuer) newIssuer = issuer;
      const state = `${issuer === oldIssuer ? "old" : "new"}-leaf/${bundle.length}-ca`;
      if (seen.at(-1) !== state) seen.push(state);
      return issuer !== oldIssuer && bundle.length === 1 && bundle[0] === issuer;
    },
    90_000,
  );
  // Before the operator reacts the poll may still see the start state.
  assert.deepEqual(
    seen.filter((s, i) => !(i === 0 && s === "old-leaf/1-ca")),
    ["old-leaf/2-ca", "new-leaf/2-ca", "new-leaf/1-ca"],
  );
  assert.notEqual(newIssuer, oldIssuer);
  // The network reports the new CA, which B's peering token would now have to pin.
  const st = (await network(A, "hospitals"))!.status!;
  const ca = pems((await A.secretKey(OPERATOR_NS, "harmony-network-hospitals-ca", "ca.crt"))!)[0]!;
  assert.equal(new X509Certificate(ca).fingerprint256.replace(/:/g, "").toLowerCase(), st.caFingerprint);
});

test("workload certificates are renewed before they expire (two thirds into their life), with the same identity", async () => {
  const leaf = async () => {
    const crt = await B.secretKey("org-c", "gw-c-harmony-net", "clinics.tls.crt");
    return crt ? new X509Certificate(pems(crt)[0]!) : undefined;
  };
  const first = (await leaf())!;
  assert.ok(Date.parse(first.validTo) - Date.parse(first.validFrom) <= 6 * 60_000, "leafValiditySeconds applies");
  // Nothing else changes in cluster B meanwhile: only the gateway's own renewal requeue re-issues it.
  const renewed = await eventually(
    "a new leaf for gw-c",
    async () => {
      const l = await leaf();
      return l && l.serialNumber !== first.serialNumber && { l, at: Date.now() };
    },
    120_000,
  );
  assert.ok(renewed.at < Date.parse(first.validTo), "renewed while the old one was still valid");
  // ... and not before two thirds of 60 s: no re-issue churn (validFrom has one-second precision).
  assert.ok(Date.parse(renewed.l.validFrom) - Date.parse(first.validFrom) >= 39_000, "renewed too early");
  assert.equal(renewed.l.subjectAltName, first.subjectAltName);
  assert.equal(renewed.l.issuer, first.issuer);
});

test("namespaceSelector: labelling a namespace makes it a member org, removing the label takes it out", async () => {
  await A.apply(
    cr("HarmonyNetwork", undefined, "labs", {
      domain: "labs.example",
      members: { namespaceSelector: { matchLabels: { "labs.example/member": "yes" } } },
    }),
  );
  const members = async () => (await network(A, "labs"))?.status?.members;
  await eventually("labs reconciled with no member", async () => (await members())?.length === 0);
  await A.kubectl(["label", "namespace", "org-x", "labs.example/member=yes"]);
  await eventually("org-x a member", async () => (await members())?.join() === "org-x");
  const dir = await eventually("gw-x directory for labs", () => directory(A, "org-x", "gw-x", "labs"));
  assert.deepEqual(
    dir.entries.map((e) => e.uri),
    ["harmony://labs.example/org-x/other"],
  );
  await A.kubectl(["label", "namespace", "org-x", "labs.example/member-"]);
  await eventually("org-x no longer a member", async () => (await members())?.length === 0);
  await eventually("gw-x renders no network", async () => {
    const c = await configToml(A, "org-x", "gw-x");
    return c && c.harmony_networks === undefined;
  });
});
