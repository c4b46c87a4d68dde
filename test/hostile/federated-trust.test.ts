/**
 * Federated trust is scoped per CA (issue 17): a trust bundle holds the local network CA and every
 * peer cluster's CA, and each may vouch only for the orgs it is bound to (`Harmony-Orgs:` before
 * its PEM block, as the operator renders it: the local CA for the local orgs, a peer's CA for the
 * orgs its signed export names). A peer CA that issues a certificate naming a local org, or another
 * peer's org, has a valid chain and a well-formed SPIFFE SAN of the network; it must still be
 * refused, on the HTTP mTLS listener, on the DICOM TLS listener, and by a calling gateway that
 * checks its server. Legitimate peers keep working after every attack.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { http, stopAll, type Dataplane } from "../../dataplane/test/helpers.js";
import { createCa, issueLeaf, spiffe, type Ca, type Leaf } from "../network-pki.js";
import { DOMAIN, NETWORK, mtls, networkFiles, type NetworkFiles, echoThroughBridge } from "../network-fixture.js";
import { assertStillServes } from "./harness.js";
import { startTrustRig, type TrustRig } from "./trust-rig.js";

let net: NetworkFiles;
let a: Dataplane;
let b: Dataplane;
let bDicom = 0;
let rig: TrustRig;
const stops: (() => unknown)[] = [];
/** Peer clusters P (org-p) and Q (org-q) of the same logical network, each with its own CA. */
const caP: Ca = createCa("cluster P network CA");
const caQ: Ca = createCa("cluster Q network CA");

/** The bundle as the operator renders it: each CA with the orgs it may vouch for. */
const scoped = (ca: Ca, orgs: string[]) => `Harmony-Orgs: ${orgs.join(", ")}\n${ca.certPem.trim()}\n`;
const bundle = () => scoped(net.ca, ["org-a", "org-b"]) + scoped(caP, ["org-p"]) + scoped(caQ, ["org-q"]);

const toB = (client: Leaf) => mtls(net.b.port, "/org-b/fhir/metadata", { ca: net.ca.certPem, client });

async function bStillServesPeers(): Promise<void> {
  await assertStillServes(b, "management", "/healthz");
  const r = await toB(net.a.leaf);
  assert.equal(r.status, 200, r.text);
}

before(async () => {
  net = await networkFiles();
  // A server at a directory address holding a certificate peer P issued for gw-b's identity.
  const forged = issueLeaf(caP, [spiffe(DOMAIN, "org-b", "gw-b")]);
  // One logical network over three clusters: every org shares the group (default: allowed).
  rig = await startTrustRig(
    net,
    { impostor: forged, orgs: ["org-a", "org-b", "org-p", "org-q"], bundle: bundle() },
    stops,
  );
  ({ a, b, bDicom } = rig);
});

after(() => stopAll(stops));

test("HTTP mTLS: each CA is accepted for its own orgs", async () => {
  for (const leaf of [
    net.a.leaf,
    issueLeaf(caP, [spiffe(DOMAIN, "org-p", "gw-p")]),
    issueLeaf(caQ, [spiffe(DOMAIN, "org-q", "gw-q")]),
  ]) {
    const r = await toB(leaf);
    assert.equal(r.status, 200, r.text);
  }
});

test("HTTP mTLS: a peer CA's certificate for a local org or another peer's org is refused (403, identity)", async () => {
  for (const org of ["org-a", "org-b", "org-q"]) {
    const forged = issueLeaf(caP, [spiffe(DOMAIN, org, `gw-${org}`)]);
    const r = await toB(forged);
    assert.equal(r.status, 403, `${org}: ${r.text}`);
    assert.equal(r.headers["content-type"], "application/problem+json");
    const p = r.json() as { type: string; detail: string };
    assert.match(p.type, /network-identity$/);
    assert.match(p.detail, new RegExp(`org/${org}/gateway/gw-${org}.*may not vouch for org "${org}"`));
    const line = await b.waitForLog(
      (l) => l.message === "network peer refused" && String(l.peer).includes(`/org/${org}/`),
    );
    assert.equal(line.network, NETWORK);
    assert.match(String(line.reason), /vouches only for org-p/);
    await bStillServesPeers();
  }
});

/** C-ECHO to B's DICOM TLS port through a bridge holding `leaf`: the status, or the failure. */
async function echoAs(leaf: Leaf): Promise<number | string> {
  return echoThroughBridge(leaf, {
    port: bDicom,
    ca: net.ca.certPem,
    domain: DOMAIN,
    want: spiffe(DOMAIN, "org-b", "gw-b"),
  });
}

test("DICOM TLS: a peer CA's certificate for a local org or another peer's org gets no association", async () => {
  for (const org of ["org-a", "org-q"]) {
    const r = await echoAs(issueLeaf(caP, [spiffe(DOMAIN, org, `gw-${org}`)]));
    // -1: the connection closed without a C-ECHO response; a string: it failed outright.
    assert.ok(r === -1 || typeof r === "string", `${org}: got C-ECHO status ${String(r)}`);
    const line = await b.waitForLog(
      (l) => l.message === "network peer refused" && l.protocol === "dicom" && String(l.peer).includes(`/org/${org}/`),
    );
    assert.match(String(line.reason), /vouches only for org-p/);
  }
  // The same peer CA for its own org, and the local CA, still associate.
  assert.equal(await echoAs(issueLeaf(caP, [spiffe(DOMAIN, "org-p", "gw-p")])), 0);
  assert.equal(await echoAs(net.a.leaf), 0);
  await bStillServesPeers();
});

test("client side: a server whose certificate a peer CA issued for a local gateway's identity is refused (502)", async () => {
  const r = await http(a.url("default", "/fake/metadata"));
  assert.equal(r.status, 502, r.text);
  assert.equal(rig.impostorHits(), 0, "the request never reached the impostor");
  // The real gw-b, same identity, local CA: served.
  const ok = await http(a.url("default", "/b/fhir/metadata"));
  assert.equal(ok.status, 200, ok.text);
});
