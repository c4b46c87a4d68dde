/**
 * Intermediate CAs in a scoped trust bundle (issue 17). A peer (or cert-manager) may issue through
 * intermediates: the data plane builds the chain leaf → intermediates the peer sent → a root of the
 * bundle and applies that ROOT's `Harmony-Orgs:` scope. An intermediate cannot widen it, a non-CA
 * cannot issue, pathLen and depth are enforced and a loop ends, on the HTTP mTLS listener, the
 * DICOM TLS listener and when the gateway is the client. Legitimate peers keep working.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { connect as tlsConnect } from "node:tls";
import { http, stopAll, type Dataplane } from "../../dataplane/test/helpers.js";
import {
  createCa,
  createIntermediate,
  createLoop,
  intermediates,
  issueLeaf,
  spiffe,
  type Ca,
  type Leaf,
} from "../network-pki.js";
import { DOMAIN, mtls, networkFiles, type NetworkFiles, echoThroughBridge } from "../network-fixture.js";
import { assertStillServes } from "./harness.js";
import { startTrustRig, type TrustRig } from "./trust-rig.js";

let net: NetworkFiles;
let a: Dataplane;
let b: Dataplane;
let bDicom = 0;
let rig: TrustRig;
const stops: (() => unknown)[] = [];
/** Peer cluster P's root: it vouches for org-p only. */
const caP: Ca = createCa("cluster P root CA");
/** Two intermediates below P's root; leaves below the lower one. */
const chainP = intermediates(caP, 2, "cluster P intermediate");

const scoped = (ca: Ca, orgs: string[]) => `Harmony-Orgs: ${orgs.join(", ")}\n${ca.certPem.trim()}\n`;
/** A leaf sent with its intermediates, as a TLS peer presents it. */
const withChain = (leaf: Leaf, chainPem: string): Leaf => ({ certPem: leaf.certPem + chainPem, keyPem: leaf.keyPem });
const viaP = (org: string) => withChain(issueLeaf(chainP.issuer, [spiffe(DOMAIN, org, `gw-${org}`)]), chainP.chainPem);

const toB = (client: Leaf) => mtls(net.b.port, "/org-b/fhir/metadata", { ca: net.ca.certPem, client });

async function bStillServesPeers(): Promise<void> {
  await assertStillServes(b, "management", "/healthz");
  const r = await toB(net.a.leaf);
  assert.equal(r.status, 200, r.text);
}

before(async () => {
  net = await networkFiles();
  // gw-b's own identity comes through an intermediate of the network CA (as cert-manager issues).
  const netInt = createIntermediate(net.ca, "network intermediate");
  net.writeLeaf(net.b, withChain(issueLeaf(netInt, [spiffe(DOMAIN, "org-b", "gw-b")]), netInt.certPem));
  // An impostor at a directory address: P's intermediate issued it gw-b's identity.
  const impostorLeaf = withChain(issueLeaf(chainP.issuer, [spiffe(DOMAIN, "org-b", "gw-b")]), chainP.chainPem);
  rig = await startTrustRig(
    net,
    {
      impostor: impostorLeaf,
      orgs: ["org-a", "org-b", "org-p"],
      bundle: scoped(net.ca, ["org-a", "org-b"]) + scoped(caP, ["org-p"]),
    },
    stops,
  );
  ({ a, b, bDicom } = rig);
});

after(() => stopAll(stops));

test("HTTP mTLS: a leaf issued through intermediates is accepted for its root's orgs (200)", async () => {
  const r = await toB(viaP("org-p"));
  assert.equal(r.status, 200, r.text);
  const local = intermediates(net.ca, 1, "local intermediate");
  const ok = await toB(withChain(issueLeaf(local.issuer, [spiffe(DOMAIN, "org-a", "gw-a2")]), local.chainPem));
  assert.equal(ok.status, 200, ok.text);
});

test("HTTP mTLS: an intermediate issuing for an org its root may not vouch for is refused (403)", async () => {
  for (const org of ["org-a", "org-b"]) {
    const r = await toB(viaP(org));
    assert.equal(r.status, 403, `${org}: ${r.text}`);
    const p = r.json() as { type: string; detail: string };
    assert.match(p.type, /network-identity$/);
    assert.match(p.detail, new RegExp(`may not vouch for org "${org}": it vouches only for org-p`));
  }
  await bStillServesPeers();
});

test("HTTP mTLS: a leaf signed by a non-CA, a pathLen violation, a too-long chain and a loop are refused", async (t) => {
  const notCa = createIntermediate(chainP.issuer, "not a CA", { ca: false });
  const tight = createIntermediate(caP, "pathLen 0", { pathLen: 0 });
  const below = createIntermediate(tight, "below pathLen 0");
  const long = intermediates(caP, 6, "long");
  const [lx, ly] = createLoop();
  const cases: [string, Leaf][] = [
    ["non-CA issuer", withChain(issueLeaf(notCa, [spiffe(DOMAIN, "org-p", "g")]), notCa.certPem + chainP.chainPem)],
    ["pathLen", withChain(issueLeaf(below, [spiffe(DOMAIN, "org-p", "g")]), below.certPem + tight.certPem)],
    ["too long", withChain(issueLeaf(long.issuer, [spiffe(DOMAIN, "org-p", "g")]), long.chainPem)],
    ["loop", withChain(issueLeaf(lx, [spiffe(DOMAIN, "org-p", "g")]), lx.certPem + ly.certPem)],
  ];
  for (const [what, leaf] of cases) {
    const r = await toB(leaf);
    // TLS itself refuses most (401: not trusted); what it lets through, the chain check does (403).
    t.diagnostic(`${what}: ${r.status} ${(r.json() as { detail?: string }).detail ?? ""}`);
    assert.ok(r.status === 401 || r.status === 403, `${what}: ${r.status} ${r.text}`);
    assert.match((r.json() as { type: string }).type, /network-identity$/, what);
    if (what === "too long") assert.match(r.text, /more than 4 intermediate CAs/);
  }
  await bStillServesPeers();
});

/** C-ECHO to B's DICOM TLS port through a bridge holding `leaf` (with its chain). */
/** One keep-alive request to B over raw TLS as `leaf`: the bytes B sent until it closed. */
function keepAliveToB(leaf: Leaf): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({
      host: "127.0.0.1",
      port: net.b.port,
      ca: net.ca.certPem,
      cert: leaf.certPem,
      key: leaf.keyPem,
      checkServerIdentity: () => undefined,
    });
    let got = "";
    s.on("secureConnect", () => s.write("GET /org-b/fhir/metadata HTTP/1.1\r\nhost: b\r\n\r\n"));
    s.on("data", (c: Buffer) => (got += c.toString("latin1")));
    s.on("close", () => resolve(got));
    s.on("error", reject);
  });
}

test("HTTP mTLS: a refused certificate closes its connection, so a kept-alive peer gets a new handshake", async () => {
  // Judged at the handshake against the bundle of then: kept alive, the connection would be
  // refused forever, even once the bundle trusts the peer (a peer gateway's pool reuses it).
  const stranger = issueLeaf(createCa("stranger CA"), [spiffe(DOMAIN, "org-a", "gw-x")]);
  for (const [what, leaf, status] of [
    ["out of its CA's scope", viaP("org-a"), 403],
    ["from an unknown CA", stranger, 401],
  ] as const) {
    const raw = await keepAliveToB(leaf);
    assert.match(raw, new RegExp(`^HTTP/1.1 ${status} `), what);
    assert.match(raw, /\r\nconnection: close\r\n/i, what);
  }
  await bStillServesPeers();
});

async function echoAs(leaf: Leaf): Promise<number | string> {
  return echoThroughBridge(leaf, {
    port: bDicom,
    ca: net.ca.certPem,
    domain: DOMAIN,
    want: spiffe(DOMAIN, "org-b", "gw-b"),
  });
}

test("DICOM TLS: a chain through P's intermediates associates for org-p, not for a local org", async () => {
  assert.equal(await echoAs(viaP("org-p")), 0);
  const r = await echoAs(viaP("org-a"));
  assert.ok(r === -1 || typeof r === "string", `got C-ECHO status ${String(r)}`);
  const line = await b.waitForLog(
    (l) => l.message === "network peer refused" && l.protocol === "dicom" && String(l.peer).includes("/org/org-a/"),
  );
  assert.match(String(line.reason), /vouches only for org-p/);
  await bStillServesPeers();
});

test("client side: a server's chain through intermediates is built (200); an impostor's is refused (502)", async () => {
  const ok = await http(a.url("default", "/b/fhir/metadata"));
  assert.equal(ok.status, 200, ok.text);
  const r = await http(a.url("default", "/fake/metadata"));
  assert.equal(r.status, 502, r.text);
  assert.equal(rig.impostorHits(), 0, "the request never reached the impostor");
});
