/**
 * Two peers claiming the same org (issue 17). Peer "first" is imported, then peer "second" (its own
 * CA, validly signed, pinned) claims the same org-b of hospitals.example, and our own org-c too.
 * The first import keeps org-b: "second"'s CA may vouch for neither org, its entries of them are
 * not imported, and the network's status names the orgs and both peers. Then over the wire, a real
 * data plane on exactly the files the operator rendered for the member gateway: first's gateway
 * certificate for org-b is served (200), second's for org-b or org-c is refused (403,
 * network-identity).
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:https";
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  eventually as poll,
  freePort,
  startDataplane,
  startUpstream,
  stopAll,
  tempDir,
  type Dataplane,
} from "../../dataplane/test/helpers.js";
import { OPERATOR_NS, cr, memberGateway, served, startCluster, type Cluster } from "../network-env.js";
import { createNetworkCa, fingerprint, issueLeaf, spiffeId } from "../../operator/src/network/pki.js";
import { signExport, type ExportPayload } from "../../operator/src/network/federation.js";
import { parseTrustBundle } from "../../dataplane/src/network/trust.js";
import { mtls } from "../network-fixture.js";

const DOMAIN = "hospitals.example";
let C: Cluster;
let peers: Server;
let gw: Dataplane;
const stops: (() => unknown)[] = [];
const caFirst = createNetworkCa("hospitals", DOMAIN, 30);
const caSecond = createNetworkCa("hospitals", DOMAIN, 30);

const entry = (org: string, name: string) => ({
  uri: `harmony://${DOMAIN}/${org}/${name}`,
  org,
  endpoint: name,
  protocol: "fhir" as const,
  address: "127.0.0.1",
  port: 9443,
  path_prefix: `/${org}/${name}`,
  identity: spiffeId(DOMAIN, org, "gw"),
});
const payload = (ca: { caPem: string }, entries: ExportPayload["entries"], orgs: string[]): ExportPayload => ({
  network: "hospitals",
  domain: DOMAIN,
  issuer_cluster: "peer",
  entries,
  orgs,
  trust_bundle_pem: ca.caPem,
});

const eventually = <T>(what: string, fn: () => Promise<T | undefined | false>) =>
  poll(what, fn, { timeoutMs: 90_000, context: () => C.log().slice(-3000) });
type Peer = { name: string; state: string; refusedOrgs?: string[]; message?: string };
type Net = { status?: { peers?: Peer[]; conditions?: { type: string; reason: string; message: string }[] } };
const network = () => C.get<Net>("/apis/harmony.runbeam.io/v1alpha1/harmonynetworks/hospitals");
const netFile = (file: string) => C.secretKey("org-c", "gw-c-harmony-net", `hospitals.${file}`);

const hospitals = (peerNames: string[]) =>
  cr("HarmonyNetwork", undefined, "hospitals", {
    domain: DOMAIN,
    members: { orgs: ["org-c"] },
    syncIntervalSeconds: 1,
    peers: peerNames.map((name) => ({ name, tokenSecretRef: { name: `peer-${name}` } })),
  });

before(async () => {
  C = await startCluster("cluster-c");
  const bodies: Record<string, string> = {
    first: await signExport(caFirst, payload(caFirst, [entry("org-b", "fhir")], ["org-b"]), 3600),
    // A later peer claiming the first one's org, and ours.
    second: await signExport(caSecond, payload(caSecond, [entry("org-b", "fhir2")], ["org-b", "org-c"]), 3600),
  };
  const tls = issueLeaf(caFirst, spiffeId(DOMAIN, "org-b", "gw"), 3600);
  peers = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    const name = req.url?.split("/")[1] ?? "";
    res.writeHead(200, { "content-type": "application/jose" }).end(bodies[name] ?? "");
  });
  peers.listen(0, "127.0.0.1");
  await once(peers, "listening");
  const base = `https://127.0.0.1:${(peers.address() as { port: number }).port}`;
  await C.kubectl(["create", "namespace", "org-c"]);
  await C.apply(
    ...(["first", "second"] as const).map((name) => ({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: `peer-${name}`, namespace: OPERATOR_NS },
      stringData: { url: `${base}/${name}`, fingerprint: fingerprint((name === "first" ? caFirst : caSecond).caPem) },
    })),
    hospitals(["first"]),
    memberGateway("org-c", "gw-c", 8443),
    ...served("org-c", "gw-c", "ris", { service: "http", pathPrefix: "/org-c/ris" }),
  );
  await eventually("first imported", async () =>
    ((await netFile("directory.json")) ?? "").includes("harmony://hospitals.example/org-b/fhir"),
  );
  // Only now the second peer: "first" was imported first.
  await C.apply(hospitals(["first", "second"]));
  await eventually("second synced, its CA in the gateway's bundle", async () => {
    const p = (await network())?.status?.peers?.find((x) => x.name === "second");
    const bundle = (await netFile("ca.crt")) ?? "";
    return p?.state === "Synced" && bundle.match(/BEGIN CERTIFICATE/g)?.length === 3;
  });
});

after(async () => {
  await stopAll(stops);
  peers?.close();
  await C?.stop();
});

test("status names the contested orgs and both claimants; the first import keeps org-b", async () => {
  // The status is written in the same reconcile as the files, and may land a moment after them.
  const st = await eventually("the conflict in status", async () => {
    const s = (await network())?.status;
    return s?.peers?.find((p) => p.name === "second")?.refusedOrgs && s;
  }).catch(async () => (await network())!.status!);
  const second = st.peers!.find((p) => p.name === "second")!;
  assert.deepEqual(second.refusedOrgs, ["org-b", "org-c"]);
  assert.match(second.message ?? "", /org org-b is claimed by peer second but held by peer first \(imported first\)/);
  assert.match(second.message ?? "", /org org-c is claimed by peer second but held by this cluster/);
  const first = st.peers!.find((p) => p.name === "first")!;
  assert.equal(first.refusedOrgs, undefined);
  const ready = st.conditions!.find((c) => c.type === "Ready")!;
  assert.equal(ready.reason, "PeerOrgConflict");
  assert.match(ready.message, /org org-b is claimed by peer second but held by peer first/);
});

test("the bundle binds org-b to the first peer's CA only; the second's entries of it are not imported", async () => {
  const pem = (await netFile("ca.crt"))!;
  const scopes = new Map(parseTrustBundle(pem, DOMAIN).map((a) => [a.cert.fingerprint256, a.orgs && [...a.orgs]]));
  const fp = (caPem: string) => parseTrustBundle(caPem, DOMAIN)[0]!.cert.fingerprint256;
  assert.deepEqual(scopes.get(fp(caFirst.caPem)), [`${DOMAIN}/org-b`]);
  assert.deepEqual(scopes.get(fp(caSecond.caPem)), [], "the second peer's CA vouches for no org");
  const dir = JSON.parse((await netFile("directory.json"))!) as { entries: { uri: string }[] };
  const uris = dir.entries.map((e) => e.uri);
  assert.ok(uris.includes(`harmony://${DOMAIN}/org-b/fhir`));
  assert.ok(!uris.includes(`harmony://${DOMAIN}/org-b/fhir2`), "the second peer's org-b entry is not imported");
});

test("over the wire: the second peer's certificate for the contested org is refused, the first keeps working", async () => {
  // A data plane on the files the operator rendered for gw-c (as the pod mounts them).
  const dir = tempDir("harmony-org-claims-");
  for (const f of ["tls.crt", "tls.key", "ca.crt", "directory.json"]) writeFileSync(join(dir, f), (await netFile(f))!);
  const upstream = await startUpstream((_req, res) => res.end("ris"));
  stops.push(() => upstream.close());
  const port = await freePort();
  writeFileSync(
    join(dir, "harmony.toml"),
    `[proxy]
id = "gw-c"
[management]
enabled = true
network = "management"
[network.management.http]
bind_address = "127.0.0.1"
bind_port = 0
[network.harmony]
harmony_network = "hospitals"
[network.harmony.http]
bind_address = "127.0.0.1"
bind_port = ${port}
[harmony_networks.hospitals]
domain = "${DOMAIN}"
org = "org-c"
cert_path = "${join(dir, "tls.crt")}"
key_path = "${join(dir, "tls.key")}"
trust_bundle_path = "${join(dir, "ca.crt")}"
directory_path = "${join(dir, "directory.json")}"
[pipelines.ris]
networks = ["harmony"]
endpoints = ["ris_in"]
backends = ["ris_out"]
[endpoints.ris_in]
service = "http"
options = { path_prefix = "/org-c/ris" }
[backends.ris_out]
service = "http"
options = { base_url = "${upstream.url}" }
`,
  );
  gw = await startDataplane(join(dir, "harmony.toml"));
  stops.push(() => gw.stop());
  const ca = (await netFile("ca.crt"))!;
  const as = (pair: typeof caFirst, org: string) =>
    mtls(port, "/org-c/ris/x", { ca, client: issueLeaf(pair, spiffeId(DOMAIN, org, "gw"), 3600) });
  const ok = await as(caFirst, "org-b");
  assert.equal(ok.status, 200, ok.text);
  for (const org of ["org-b", "org-c"]) {
    const r = await as(caSecond, org);
    assert.equal(r.status, 403, `${org}: ${r.text}`);
    const p = r.json() as { type: string; detail: string };
    assert.match(p.type, /network-identity$/);
    assert.match(p.detail, new RegExp(`may not vouch for org "${org}": it vouches for no org`));
  }
  // And the first peer still is served after the refusals.
  assert.equal((await as(caFirst, "org-b")).status, 200);
});
