/**
 * Revocation by expiry in HarmonyNetwork federation, against a real operator and kube-apiserver.
 * The peer (a test double: an HTTPS server whose answer each test chooses, exports signed with the
 * operator's own code) stops serving its export, as when an org left its network and no gateway
 * of the exporting side serves the export any more: nothing tells the importer, so the importer
 * itself must stop trusting the peer's orgs once the last export it verified is past its validity.
 * Also: a replayed older export after that is refused, and a far-future `exp` is capped at the
 * peer's maxValiditySeconds.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:https";
import { once } from "node:events";
import { X509Certificate } from "node:crypto";
import { eventually as poll } from "../../dataplane/test/helpers.js";
import { OPERATOR_NS, cr, memberGateway, served, startCluster, type Cluster } from "../network-env.js";
import { createNetworkCa, fingerprint, issueLeaf, spiffeId } from "../../operator/src/network/pki.js";
import { signExport, type ExportPayload } from "../../operator/src/network/federation.js";
import { parseTrustBundle } from "../../dataplane/src/network/trust.js";

let C: Cluster;
let peer: Server;
/** What the peer answers next: an export, or 404 (it serves none any more). */
let body: string | undefined;

const CAP = 60;
const peerCa = createNetworkCa("hospitals", "hospitals.example", 30);
const PEER_FP = new X509Certificate(peerCa.caPem).fingerprint256;
const LOCAL = "harmony://clinics.example/org-c/ris";
const entry = (name: string) => ({
  uri: `harmony://hospitals.example/org-b/${name}`,
  org: "org-b",
  endpoint: name,
  protocol: "fhir" as const,
  address: "127.0.0.1",
  port: 9443,
  path_prefix: `/org-b/${name}`,
  identity: spiffeId("hospitals.example", "org-b", "gw"),
});
const payload = (...names: string[]): ExportPayload => ({
  network: "hospitals",
  domain: "hospitals.example",
  issuer_cluster: "peer",
  entries: names.map(entry),
  trust_bundle_pem: peerCa.caPem,
});

const eventually = <T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 90_000) =>
  poll(what, fn, { timeoutMs, context: () => C.log().slice(-3000) });
type Peer = { state: string; lastError?: string; lastAttemptTime?: string; validUntil?: string; entries?: number };
type Cond = { type: string; status: string; reason: string; message: string };
const status = async () =>
  (
    await C.get<{ status?: { peers?: Peer[]; conditions?: Cond[] } }>(
      "/apis/harmony.runbeam.io/v1alpha1/harmonynetworks/clinics",
    )
  )?.status;
const peerStatus = async () => (await status())?.peers?.[0];
const uris = async () => {
  const t = await C.secretKey("org-c", "gw-c-harmony-net", "clinics.directory.json");
  return t ? (JSON.parse(t) as { entries: { uri: string }[] }).entries.map((e) => e.uri) : [];
};
/** Fingerprints of the CAs in the gateway's trust bundle. */
const bundleCas = async () => {
  const pem = await C.secretKey("org-c", "gw-c-harmony-net", "clinics.ca.crt");
  return pem ? parseTrustBundle(pem, "clinics.example").map((a) => a.cert.fingerprint256) : [];
};
const expiredCount = async () => {
  const res = await fetch(`http://127.0.0.1:${C.healthPort}/metrics`);
  const m = /^harmony_operator_network_peer_imports_expired_total\{network="clinics",peer="hospitals"\} (\d+)$/m.exec(
    await res.text(),
  );
  return m ? Number(m[1]) : 0;
};

/**
 * Serves `next` and returns the peer's status once a fetch that started after it is reported and
 * `until` holds (a status written a moment later may still show the previous answer's result).
 */
async function serve(next: string | undefined, until: (p: Peer) => boolean = () => true): Promise<Peer> {
  body = next;
  const since = Date.now();
  return eventually("a sync of the new answer", async () => {
    const p = await peerStatus();
    const fresh = p?.lastAttemptTime !== undefined && Date.parse(p.lastAttemptTime) > since + 1000;
    return fresh && p.state !== "Pending" && until(p) ? p : undefined;
  });
}

/** Serves a fresh export and waits until its entries are in the gateway's directory. */
async function imported(jws: string, name: string): Promise<Peer> {
  const st = await serve(jws, (p) => p.state === "Synced");
  await eventually(`${name} in the directory`, async () => (await uris()).includes(entry(name).uri));
  return st;
}

before(async () => {
  C = await startCluster("cluster-c");
  const tls = issueLeaf(peerCa, spiffeId("hospitals.example", "org-b", "gw"), 3600);
  peer = createServer({ cert: tls.certPem, key: tls.keyPem }, (_req, res) => {
    if (body === undefined) return void res.writeHead(404).end();
    res.writeHead(200, { "content-type": "application/jose" }).end(body);
  });
  peer.listen(0, "127.0.0.1");
  await once(peer, "listening");
  const url = `https://127.0.0.1:${(peer.address() as { port: number }).port}/.well-known/harmony/hospitals/export.jws`;
  await C.kubectl(["create", "namespace", "org-c"]);
  await C.apply(
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "peer-h", namespace: OPERATOR_NS },
      stringData: { url, fingerprint: fingerprint(peerCa.caPem) },
    },
    cr("HarmonyNetwork", undefined, "clinics", {
      domain: "clinics.example",
      members: { orgs: ["org-c"] },
      syncIntervalSeconds: 1,
      peers: [{ name: "hospitals", tokenSecretRef: { name: "peer-h" }, maxValiditySeconds: CAP }],
    }),
    memberGateway("org-c", "gw-c", 8443),
    ...served("org-c", "gw-c", "ris", { service: "http", pathPrefix: "/org-c/ris" }),
  );
  await eventually("the gateway's directory with its local entry", async () => (await uris()).includes(LOCAL));
});

after(async () => {
  peer?.close();
  await C?.stop();
});

const TEN_YEARS = 10 * 365 * 86400;
/** When the export that lapses in the second test was signed. */
let firstSignedAt = 0;

test("an export signed longer ago than maxValiditySeconds is refused, however far its exp", async () => {
  const stale = await serve(
    await signExport(peerCa, payload("fhir", "stale"), TEN_YEARS, Date.now() - 2 * CAP * 1000),
    (p) => !/404/.test(p.lastError ?? ""),
  );
  assert.equal(stale.state, "Error");
  assert.match(stale.lastError ?? "", new RegExp(`maxValiditySeconds \\(${CAP} s\\): refused`));
  assert.deepEqual(await uris(), [LOCAL]);
  assert.ok(!(await bundleCas()).includes(PEER_FP));
});

test("an import whose export is not served any more is kept within its validity, then dropped: entries, CA, status, metric", async () => {
  const signedAt = (firstSignedAt = Date.now());
  const st = await imported(await signExport(peerCa, payload("fhir"), 40, signedAt), "fhir");
  assert.ok((await bundleCas()).includes(PEER_FP), "the peer's CA is trusted");
  const before = await expiredCount();

  // The exporting side stops serving: a transient outage at first, the import stays.
  const away = await serve(undefined, (p) => p.state !== "Synced");
  if (Date.now() < Date.parse(away.validUntil!)) {
    assert.equal(away.state, "Error");
    assert.match(away.lastError ?? "", /404/);
    assert.ok((await uris()).includes(entry("fhir").uri), "kept within its validity");
  }
  // Past its validity, with no fresher export: dropped, and said so.
  const gone = await eventually("the import expired", async () => {
    const p = await peerStatus();
    return p?.state === "Expired" && p;
  });
  assert.equal(gone.entries, 0);
  assert.match(
    gone.lastError ?? "",
    /lapsed at .* no fresher export verified; its entries and CA are dropped \(last fetch: .*404/,
  );
  await eventually("the peer's entries leave the directory", async () => !(await uris()).includes(entry("fhir").uri));
  assert.deepEqual(await uris(), [LOCAL], "the local entry stays");
  await eventually("the peer's CA leaves the trust bundle", async () => !(await bundleCas()).includes(PEER_FP));
  const ready = (await status())?.conditions?.find((c) => c.type === "Ready");
  assert.equal(ready?.reason, "PeerImportsExpired");
  assert.match(ready?.message ?? "", /not refreshed within their validity: hospitals/);
  assert.equal(await expiredCount(), before + 1);
  assert.equal(st.validUntil, new Date(Math.floor(signedAt / 1000) * 1000 + 40_000).toISOString(), "its own exp");
  assert.equal(C.operator.exitCode, null, "the operator still runs");
});

test("after the import lapsed, a replayed older export is refused; a fresh one is imported again", async () => {
  // Signed before the one that lapsed, valid for an hour: what a relay could have kept.
  const older = await signExport(peerCa, payload("fhir", "old"), 3600, firstSignedAt - 1000);
  const st = await serve(older, (p) => !/404/.test(p.lastError ?? ""));
  assert.equal(st.state, "Expired");
  assert.match(st.lastError ?? "", /replayed export is refused/);
  assert.deepEqual(await uris(), [LOCAL], "nothing of the replay is imported");
  assert.ok(!(await bundleCas()).includes(PEER_FP));

  await imported(await signExport(peerCa, payload("fhir"), 3600), "fhir");
  assert.equal((await peerStatus())?.state, "Synced");
});

test("a far-future exp is capped at the peer's maxValiditySeconds: the import is dropped when not refreshed by then", async () => {
  // Signed now, "valid" for ten years: trusted for CAP seconds from its signing.
  const signedAt = Date.now();
  const st = await imported(await signExport(peerCa, payload("fhir", "long"), TEN_YEARS, signedAt), "long");
  await serve(undefined, (p) => p.state !== "Synced");
  const gone = await eventually("the capped import expired", async () => {
    const p = await peerStatus();
    return p?.state === "Expired" && p;
  });
  assert.match(gone.lastError ?? "", /dropped/);
  await eventually("its entries leave the directory", async () => !(await uris()).includes(entry("long").uri));
  assert.equal(st.validUntil, new Date(signedAt + CAP * 1000).toISOString(), "capped, not its exp");
  assert.equal(gone.validUntil, st.validUntil, "dropped at the cap");
});
