/**
 * Attacks on HarmonyNetwork federation, against a real operator and kube-apiserver. A hostile peer
 * (a test double: an HTTPS server whose answer each test chooses) serves exports built with the
 * operator's own signing code: tampered payloads, a foreign CA, a foreign key behind the pinned
 * CA's certificate, expired exports, entries that hijack local URIs or claim another org, garbage
 * and an oversized body. Each must leave the status naming the failure, the last good import and
 * every local entry untouched, and the operator running.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:https";
import { once } from "node:events";
import { X509Certificate } from "node:crypto";
import { eventually as poll } from "../../dataplane/test/helpers.js";
import { OPERATOR_NS, cr, memberGateway, served, startCluster, type Cluster } from "../network-env.js";
import { createNetworkCa, fingerprint, issueLeaf, spiffeId } from "../../operator/src/network/pki.js";
import { MAX_EXPORT_BYTES, signExport, type ExportPayload } from "../../operator/src/network/federation.js";
import { parseTrustBundle } from "../../dataplane/src/network/trust.js";

let C: Cluster;
let peer: Server;
/** What the hostile peer answers next. */
let body: string | Buffer = "";

const legitCa = createNetworkCa("hospitals", "hospitals.example", 30);
const attackerCa = createNetworkCa("hospitals", "hospitals.example", 30);
const entry = (org: string, name: string, domain = "hospitals.example", gwOrg = org) => ({
  uri: `harmony://${domain}/${org}/${name}`,
  org,
  endpoint: name,
  protocol: "fhir" as const,
  address: "127.0.0.1",
  port: 9443,
  path_prefix: `/${org}/${name}`,
  identity: spiffeId(domain, gwOrg, "gw"),
});
const payload = (entries: ExportPayload["entries"], domain = "hospitals.example"): ExportPayload => ({
  network: "hospitals",
  domain,
  issuer_cluster: "hostile",
  entries,
  trust_bundle_pem: legitCa.caPem,
});

const eventually = <T>(what: string, fn: () => Promise<T | undefined | false>) =>
  poll(what, fn, { timeoutMs: 60_000, context: () => C.log().slice(-3000) });
type Peer = { state: string; lastError?: string; lastAttemptTime?: string };
const peerStatus = async () =>
  (await C.get<{ status?: { peers?: Peer[] } }>("/apis/harmony.runbeam.io/v1alpha1/harmonynetworks/clinics"))?.status
    ?.peers?.[0];
const directory = async () => {
  const t = await C.secretKey("org-c", "gw-c-harmony-net", "clinics.directory.json");
  return t ? (JSON.parse(t) as { entries: { uri: string; identity: string }[] }) : undefined;
};
const uris = async () => (await directory())?.entries.map((e) => e.uri) ?? [];

/** Serves `next`, waits for a fetch that started after it, and returns the peer's status from it. */
async function serve(next: string | Buffer): Promise<Peer> {
  body = next;
  const since = Date.now();
  return eventually("a sync of the new answer", async () => {
    const p = await peerStatus();
    const fresh = p?.lastAttemptTime !== undefined && Date.parse(p.lastAttemptTime) > since + 1000;
    return fresh && p.state !== "Pending" ? p : undefined;
  });
}

before(async () => {
  C = await startCluster("cluster-c");
  const tls = issueLeaf(legitCa, spiffeId("hospitals.example", "org-b", "gw"), 3600);
  peer = createServer({ cert: tls.certPem, key: tls.keyPem }, (_req, res) => {
    res.writeHead(200, { "content-type": "application/jose" }).end(body);
  });
  peer.listen(0, "127.0.0.1");
  await once(peer, "listening");
  const url = `https://127.0.0.1:${(peer.address() as { port: number }).port}/.well-known/harmony/hospitals/export.jws`;
  body = await signExport(legitCa, payload([entry("org-b", "fhir")]), 3600);
  await C.kubectl(["create", "namespace", "org-c"]);
  await C.apply(
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "peer-h", namespace: OPERATOR_NS },
      stringData: { url, fingerprint: fingerprint(legitCa.caPem) },
    },
    cr("HarmonyNetwork", undefined, "clinics", {
      domain: "clinics.example",
      members: { orgs: ["org-c"] },
      syncIntervalSeconds: 1,
      peers: [{ name: "hospitals", tokenSecretRef: { name: "peer-h" } }],
    }),
    memberGateway("org-c", "gw-c", 8443),
    ...served("org-c", "gw-c", "ris", { service: "http", pathPrefix: "/org-c/ris" }),
  );
  await eventually("the legitimate import", async () => (await uris()).length === 2);
});

after(async () => {
  peer?.close();
  await C?.stop();
});

const GOOD = ["harmony://clinics.example/org-c/ris", "harmony://hospitals.example/org-b/fhir"];

async function assertUntouched(): Promise<void> {
  assert.deepEqual(await uris(), GOOD, "the last good import and the local entries stay");
  assert.equal(C.operator.exitCode, null, "the operator still runs");
}

test("a payload changed after signing fails the signature", async () => {
  const good = await signExport(legitCa, payload([entry("org-b", "fhir")]), 3600);
  const [h, , s] = good.split(".");
  const forged = Buffer.from(JSON.stringify({ ...payload([entry("org-b", "evil")]), exp: 9e9 })).toString("base64url");
  const st = await serve(`${h}.${forged}.${s}`);
  assert.equal(st.state, "Error");
  assert.match(st.lastError ?? "", /signature/);
  await assertUntouched();
});

test("an export signed by another CA is refused by the pin", async () => {
  const st = await serve(await signExport(attackerCa, payload([entry("org-b", "evil")]), 3600));
  assert.match(st.lastError ?? "", /the peering token pins/);
  await assertUntouched();
});

test("the pinned CA's certificate in x5c with another key's signature is refused", async () => {
  const theirs = await signExport(attackerCa, payload([entry("org-b", "evil")]), 3600);
  const [h, p, s] = theirs.split(".");
  const header = JSON.parse(Buffer.from(h!, "base64url").toString()) as { x5c: string[] };
  const legitDer = legitCa.caPem.replace(/-----[^-]+-----|\s/g, "");
  const swapped = Buffer.from(JSON.stringify({ ...header, x5c: [legitDer] })).toString("base64url");
  const st = await serve(`${swapped}.${p}.${s}`);
  assert.match(st.lastError ?? "", /signature/);
  await assertUntouched();
});

test("an expired export is refused", async () => {
  const st = await serve(await signExport(legitCa, payload([entry("org-b", "old")]), 60, Date.now() - 3_600_000));
  assert.match(st.lastError ?? "", /exp/);
  await assertUntouched();
});

test("garbage and an oversized body are refused without harm", async () => {
  const garbage = await serve("not a jws");
  assert.equal(garbage.state, "Error");
  assert.match(garbage.lastError ?? "", /Invalid|JWS|JWT|compact/i);
  await assertUntouched();
  assert.match((await serve(Buffer.alloc(MAX_EXPORT_BYTES + 1024, 0x41))).lastError ?? "", /larger than/);
  await assertUntouched();
});

test("validly signed entries that hijack a local URI or claim another org are dropped; the rest imports", async () => {
  const st = await serve(
    await signExport(
      legitCa,
      payload([
        entry("org-b", "fhir"),
        entry("org-b", "pacs"),
        // Our domain: a peer speaks only for its own.
        entry("org-c", "ris", "clinics.example"),
        // An identity of another org than the entry's.
        entry("org-b", "stolen", "hospitals.example", "org-z"),
      ]),
      3600,
    ),
  );
  assert.equal(st.state, "Synced");
  const dir = (await directory())!;
  assert.deepEqual(
    dir.entries.map((e) => e.uri),
    [...GOOD, "harmony://hospitals.example/org-b/pacs"],
  );
  assert.equal(
    dir.entries.find((e) => e.uri === "harmony://clinics.example/org-c/ris")!.identity,
    "spiffe://clinics.example/org/org-c/gateway/gw-c",
    "the local entry keeps its own gateway",
  );
});

test("a peer's CA vouches only for the peer's orgs, in its own domain: its own Harmony-Orgs line widens nothing", async () => {
  const st = await serve(
    await signExport(
      legitCa,
      {
        ...payload([entry("org-b", "fhir"), entry("org-b", "scoped")]),
        // org-c of hospitals.example: the peer's own, not our clinics.example/org-c.
        orgs: ["org-b", "org-c"],
        // A scope line of the peer's choosing in its bundle must not reach the gateways.
        trust_bundle_pem: `Harmony-Orgs: org-c, org-z\n${legitCa.caPem}`,
      },
      3600,
    ),
  );
  assert.equal(st.state, "Synced");
  const local = (await C.secretKey(OPERATOR_NS, "harmony-network-clinics-ca", "ca.crt"))!;
  // The new entry marks the Secret written from this export (directory and bundle are written together).
  await eventually("B's directory from this export", async () =>
    (await uris()).includes("harmony://hospitals.example/org-b/scoped"),
  );
  const scopes = await eventually("B's bundle with both CAs", async () => {
    const pem = await C.secretKey("org-c", "gw-c-harmony-net", "clinics.ca.crt");
    if (!pem) return undefined;
    const m = new Map(
      parseTrustBundle(pem, "clinics.example").map((a) => [a.cert.fingerprint256, a.orgs && [...a.orgs]]),
    );
    return m.size === 2 && m;
  });
  assert.deepEqual(
    scopes.get(new X509Certificate(local).fingerprint256),
    ["clinics.example/org-c"],
    "the local CA: local orgs",
  );
  assert.deepEqual(
    scopes.get(new X509Certificate(legitCa.caPem).fingerprint256),
    ["hospitals.example/org-b", "hospitals.example/org-c"],
    "the peer CA: its orgs, in its domain (never ours)",
  );
  assert.doesNotMatch((await C.secretKey("org-c", "gw-c-harmony-net", "clinics.ca.crt"))!, /org-z/);
});

test("a replayed export (validly signed, unexpired, but older than the one imported) is refused; the newer import stays", async () => {
  // Captured two minutes ago, still valid for an hour: what a relay between the clusters could replay.
  const older = await signExport(
    legitCa,
    payload([entry("org-b", "fhir"), entry("org-b", "old")]),
    3600,
    Date.now() - 120_000,
  );
  const newer = await signExport(legitCa, payload([entry("org-b", "fhir"), entry("org-b", "new")]), 3600);
  assert.equal((await serve(newer)).state, "Synced");
  await eventually("B's directory from the newer export", async () =>
    (await uris()).includes("harmony://hospitals.example/org-b/new"),
  );
  const st = await serve(older);
  assert.equal(st.state, "Error");
  assert.match(st.lastError ?? "", /older than the one imported.*replayed export is refused/);
  const now = await uris();
  assert.ok(now.includes("harmony://hospitals.example/org-b/new"), "the newer import stays");
  assert.ok(!now.includes("harmony://hospitals.example/org-b/old"), "the replay is not imported");
  assert.equal(C.operator.exitCode, null, "the operator still runs");
});
