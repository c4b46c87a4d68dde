/**
 * Attacks on a gateway's harmony_network listener and on its harmony:// client side. Identity is
 * the SPIFFE URI SAN of a certificate that verified against the network's trust bundle, of an org
 * the directory knows; nothing else (no other CA, no other trust domain, no header) may set it.
 * After each attack the gateway must still serve legitimate peers.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:https";
import { once } from "node:events";
import { freePort, http, startUpstream, stopAll, type Dataplane } from "../../dataplane/test/helpers.js";
import { createCa, issueLeaf, spiffe, type Leaf } from "../network-pki.js";
import { DOMAIN, mtls, networkFiles, startAttackPair, type NetworkFiles } from "../network-fixture.js";
import { assertStillServes, rawExchange } from "./harness.js";
import { pacsEntry } from "./trust-rig.js";
import { connect as tlsConnect } from "node:tls";
import { TlsBridge } from "../../dataplane/src/network/tls-bridge.js";
import { identityOf } from "../../dataplane/src/network/identity.js";
import { createLogger } from "../../dataplane/src/observability/logger.js";
import { cEcho } from "../../dataplane/src/protocols/dimse-client.js";
import { echo } from "../peers/dicom-peers.js";

let net: NetworkFiles;
let a: Dataplane;
let b: Dataplane;
let impostorHits = 0;
let bDicom = 0;
const stops: (() => unknown)[] = [];

/** A legitimate call from org A's identity still gets through B (to its upstream, which answers 200). */
async function bStillServesPeers(): Promise<void> {
  await assertStillServes(b, "management", "/healthz");
  const r = await mtls(net.b.port, "/org-b/fhir/metadata", { ca: net.ca.certPem, client: net.a.leaf });
  assert.equal(r.status, 200, r.text);
}

const toB = (client: Leaf | undefined, headers?: Record<string, string>) =>
  mtls(net.b.port, "/org-b/fhir/metadata", { ca: net.ca.certPem, ...(client ? { client } : {}), headers });

before(async () => {
  net = await networkFiles();
  const upstream = await startUpstream((_req, res) => {
    res.writeHead(200, { "content-type": "application/fhir+json" }).end('{"resourceType":"CapabilityStatement"}');
  });
  stops.push(() => upstream.close());
  // An impostor at a directory address: a valid certificate of the network, but another identity.
  const fake = issueLeaf(net.ca, [spiffe(DOMAIN, "org-c", "gw-c")]);
  const impostor = createServer({ cert: fake.certPem, key: fake.keyPem }, (_req, res) => {
    impostorHits++;
    res.end("impostor");
  });
  impostor.listen(0, "127.0.0.1");
  await once(impostor, "listening");
  stops.push(() => new Promise((r) => impostor.close(r)));
  const impostorEntry = {
    ...net.entries[0]!,
    uri: `harmony://${DOMAIN}/org-b/fake`,
    endpoint: "fake",
    protocol: "http",
    port: (impostor.address() as { port: number }).port,
    path_prefix: "/fake",
  };
  net.writeDirectory(net.a, [], [...net.entries, impostorEntry]);
  bDicom = await freePort();
  net.writeDirectory(net.b, [], [...net.entries, pacsEntry(net, bDicom)]);
  ({ a, b } = await startAttackPair(net, { origin: upstream.url, bDicom, fakeService: "http" }, stops));
});

after(() => stopAll(stops));

test("no client certificate: 401 problem, nothing reaches the pipeline", async () => {
  const r = await toB(undefined);
  assert.equal(r.status, 401, r.text);
  assert.equal(r.headers["content-type"], "application/problem+json");
  assert.match(r.text, /client certificate is required/);
  await bStillServesPeers();
});

test("a certificate from another CA with a perfect SPIFFE SAN: 401", async () => {
  const rogue = issueLeaf(createCa("rogue CA"), [spiffe(DOMAIN, "org-a", "gw-a")]);
  const r = await toB(rogue);
  assert.equal(r.status, 401, r.text);
  assert.match(r.text, /not trusted/);
  await bStillServesPeers();
});

test("a forged SAN on a valid chain (an org the directory does not know): 403", async () => {
  const forged = issueLeaf(net.ca, [spiffe(DOMAIN, "org-z", "gw-a")]);
  const r = await toB(forged);
  assert.equal(r.status, 403, r.text);
  assert.match(r.text, /spiffe:\/\/hospitals\.example\/org\/org-z\/gateway\/gw-a is not a member/);
  const line = await b.waitForLog((l) => l.message === "network peer refused" && /org-z/.test(String(l.reason)));
  assert.equal(line.network, "hospitals");
  await bStillServesPeers();
});

test("SANs that name no identity: other trust domain, two SPIFFE IDs, a traversal, no URI", async () => {
  const cases = [
    [`spiffe://evil.example/org/org-a/gateway/gw-a`],
    [spiffe(DOMAIN, "org-a", "gw-a"), spiffe(DOMAIN, "org-b", "gw-b")],
    [`spiffe://${DOMAIN}/org/org-c/../org-a/gateway/gw-a`],
    [`spiffe://${DOMAIN}/org/ORG-A/gateway/gw-a`],
    [],
  ];
  for (const uris of cases) {
    const r = await toB(issueLeaf(net.ca, uris));
    assert.equal(r.status, 401, `${JSON.stringify(uris)}: ${r.text}`);
    assert.match(r.text, /names no identity/);
  }
  await bStillServesPeers();
});

test("headers never set identity: org C claiming org A in headers is still org C (default-deny)", async () => {
  const c = issueLeaf(net.ca, [spiffe(DOMAIN, "org-c", "gw-c")]);
  const r = await toB(c, {
    "x-forwarded-client-cert": `URI=${spiffe(DOMAIN, "org-a", "gw-a")}`,
    "x-spiffe-id": spiffe(DOMAIN, "org-a", "gw-a"),
  });
  assert.equal(r.status, 403, r.text);
  assert.match(r.text, /default-deny/);
  await bStillServesPeers();
});

test("plaintext HTTP and garbage on the TLS listener: refused, no crash", async () => {
  const plain = await rawExchange(net.b.port, ["GET /org-b/fhir/metadata HTTP/1.1\r\nhost: x\r\n\r\n"]);
  assert.doesNotMatch(plain.text, /CapabilityStatement/);
  await rawExchange(net.b.port, [Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff]), Buffer.alloc(2048, 0x41)]);
  await bStillServesPeers();
});

test("client side: a server at the directory address with another identity is refused (502), never sent the request", async () => {
  const r = await http(a.url("default", "/fake/anything"));
  assert.equal(r.status, 502, r.text);
  assert.equal(impostorHits, 0);
  await assertStillServes(a, "management", "/healthz");
});

/** C-ECHO to B's DICOM TLS port through a bridge holding `leaf`: the status, or the failure. */
async function echoAs(leaf: Leaf, ca: string): Promise<number | string> {
  const want = spiffe(DOMAIN, "org-b", "gw-b");
  const bridge = new TlsBridge(
    "127.0.0.1",
    bDicom,
    {
      cert: Buffer.from(leaf.certPem),
      key: Buffer.from(leaf.keyPem),
      ca: Buffer.from(ca),
      identity: want,
      checkServerIdentity: (_h, c) =>
        identityOf(c.subjectaltname, DOMAIN)?.uri === want ? undefined : new Error("wrong server"),
    },
    5000,
    createLogger("error"),
  );
  try {
    const port = await bridge.localPort();
    return await cEcho({
      host: "127.0.0.1",
      port,
      calledAet: "PACS-B",
      callingAet: "ATTACKER",
      connectTimeoutMs: 5000,
      associationTimeoutMs: 5000,
    });
  } catch (e) {
    return (e as Error).message;
  } finally {
    await bridge.close();
  }
}

test("DICOM TLS: no certificate, another CA, an unknown org or plain DIMSE get no association", async () => {
  // No client certificate: the handshake is refused, not a byte of DIMSE is answered.
  const got = await new Promise<number>((resolve) => {
    let n = 0;
    const s = tlsConnect({ host: "127.0.0.1", port: bDicom, ca: net.ca.certPem, checkServerIdentity: () => undefined });
    s.on("secureConnect", () => s.write(Buffer.from([0x01, 0x00, 0x00, 0x00, 0x00, 0x04, 0, 1, 0, 0])));
    s.on("data", (c: Buffer) => (n += c.length));
    s.on("error", () => undefined);
    s.on("close", () => resolve(n));
  });
  assert.equal(got, 0);
  // No C-ECHO response comes back: the connection is refused (-1: closed without one) or fails.
  for (const leaf of [
    issueLeaf(createCa("rogue CA"), [spiffe(DOMAIN, "org-a", "gw-a")]),
    issueLeaf(net.ca, [spiffe(DOMAIN, "org-z", "gw-z")]),
  ]) {
    const r = await echoAs(leaf, net.ca.certPem);
    assert.ok(r === -1 || typeof r === "string", `got C-ECHO status ${String(r)}`);
  }
  assert.equal(echo("PACS-B", bDicom), false);
  await b.waitForLog((l) => l.message === "network peer refused" && l.protocol === "dicom");
  // A member of the network still associates (C-ECHO, allowed by default within the group).
  assert.equal(await echoAs(net.a.leaf, net.ca.certPem), 0);
  await bStillServesPeers();
});
