/**
 * Federation across trust domains (issue 17). Hospital A (network "hospital-a", domain
 * hospital-a.example) and hospital B ("hospital-b", hospital-b.example) each have their own CA and
 * an org called "radiology"; they peer, and B also trusts hospital C's CA for C's org "lab". A
 * peer's identities are read in the peer's own domain, only for the orgs its CA is bound to
 * (`Harmony-Orgs: hospital-a.example/radiology`), and policies name them the same way. Traffic
 * from A to B works; a CA issuing a SAN in another domain (ours, or a third one) is refused with
 * 403 `network-identity` on HTTP, gets no DICOM association, and is refused by a calling gateway.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { createServer } from "node:https";
import { once } from "node:events";
import { join } from "node:path";
import {
  freePort,
  http,
  startDataplane,
  startUpstream,
  stopAll,
  tempDir,
  type Dataplane,
} from "../../dataplane/test/helpers.js";
import { createCa, issueLeaf, spiffe, type Ca, type Leaf } from "../network-pki.js";
import { mtls, echoThroughBridge } from "../network-fixture.js";
import { assertStillServes } from "./harness.js";

const DA = "hospital-a.example";
const DB = "hospital-b.example";
const DC = "hospital-c.example";
const caA: Ca = createCa("hospital A network CA");
const caB: Ca = createCa("hospital B network CA");
const caC: Ca = createCa("hospital C network CA");
const leafA = issueLeaf(caA, [spiffe(DA, "radiology", "gw-a")]);
const leafB = issueLeaf(caB, [spiffe(DB, "radiology", "gw-b")]);
const B_FHIR = `harmony://${DB}/radiology/fhir`;
const B_PACS = `harmony://${DB}/radiology/pacs`;

let a: Dataplane;
let b: Dataplane;
const dirA = tempDir("harmony-domain-a-");
const dirB = tempDir("harmony-domain-b-");
const port = { a: 0, b: 0, bDicom: 0 };
let impostorHits = 0;
const stops: (() => unknown)[] = [];

const scoped = (ca: Ca, orgs: string[]) => `Harmony-Orgs: ${orgs.join(", ")}\n${ca.certPem.trim()}\n`;
const toB = (client: Leaf) => mtls(port.b, "/radiology/fhir/metadata", { ca: caB.certPem, client });

function files(dir: string, leaf: Leaf, bundle: string, directory: object): void {
  writeFileSync(join(dir, "tls.crt"), leaf.certPem);
  writeFileSync(join(dir, "tls.key"), leaf.keyPem);
  writeFileSync(join(dir, "ca.crt"), bundle);
  writeFileSync(join(dir, "directory.json"), JSON.stringify(directory));
}

const netTable = (network: string, domain: string, dir: string) => `[harmony_networks.${network}]
domain = "${domain}"
org = "radiology"
cert_path = "${join(dir, "tls.crt")}"
key_path = "${join(dir, "tls.key")}"
trust_bundle_path = "${join(dir, "ca.crt")}"
directory_path = "${join(dir, "directory.json")}"
`;

const common = (id: string) => `[proxy]
id = "${id}"
[logging]
log_level = "info"
[management]
enabled = true
network = "management"
[network.management.http]
bind_address = "127.0.0.1"
bind_port = 0
`;

before(async () => {
  port.a = await freePort();
  port.b = await freePort();
  port.bDicom = await freePort();
  const upstream = await startUpstream((_req, res) => {
    res.writeHead(200, { "content-type": "application/fhir+json" }).end('{"resourceType":"CapabilityStatement"}');
  });
  stops.push(() => upstream.close());
  // An impostor at an address A's directory lists: A's own CA issued it B's gateway identity.
  const forged = issueLeaf(caA, [spiffe(DB, "radiology", "gw-b")]);
  const impostor = createServer({ cert: forged.certPem, key: forged.keyPem }, (_req, res) => {
    impostorHits++;
    res.end("impostor");
  });
  impostor.listen(0, "127.0.0.1");
  await once(impostor, "listening");
  stops.push(() => new Promise((r) => impostor.close(r)));

  const bEntry = {
    uri: B_FHIR,
    org: "radiology",
    endpoint: "fhir",
    protocol: "fhir",
    address: "127.0.0.1",
    port: port.b,
    path_prefix: "/radiology/fhir",
    identity: spiffe(DB, "radiology", "gw-b"),
  };
  const pacs = { ...bEntry, uri: B_PACS, endpoint: "pacs", protocol: "dicom", port: port.bDicom, ae_title: "PACS-B" };
  delete (pacs as Partial<typeof bEntry>).path_prefix;
  // B: its own CA for its orgs, A's for A's radiology, C's for C's lab, each in its own domain.
  files(dirB, leafB, scoped(caB, ["radiology"]) + scoped(caA, [`${DA}/radiology`]) + scoped(caC, [`${DC}/lab`]), {
    version: 1,
    network: "hospital-b",
    domain: DB,
    groups: [
      { network: "hospital-b", orgs: ["radiology"] },
      { network: "hospital-a", orgs: [`${DA}/radiology`] },
      { network: "hospital-c", orgs: [`${DC}/lab`] },
    ],
    entries: [bEntry, pacs],
    // Another network's org: allowed only by a rule, which names it with its domain.
    policies: [
      { name: "a-radiology-reads", action: "allow", source: { orgs: [`${DA}/radiology`] } },
      { name: "bare-name-is-ours", action: "deny", source: { orgs: ["radiology"] } },
    ],
  });
  files(dirA, leafA, scoped(caA, ["radiology"]) + scoped(caB, [`${DB}/radiology`]), {
    version: 1,
    network: "hospital-a",
    domain: DA,
    groups: [
      { network: "hospital-a", orgs: ["radiology"] },
      { network: "hospital-b", orgs: [`${DB}/radiology`] },
    ],
    entries: [
      bEntry,
      {
        ...bEntry,
        uri: `harmony://${DB}/radiology/fake`,
        endpoint: "fake",
        port: (impostor.address() as { port: number }).port,
        path_prefix: "/fake",
      },
    ],
    policies: [],
  });
  writeFileSync(
    join(dirB, "harmony.toml"),
    common("gw-b") +
      `[network.inter]
harmony_network = "hospital-b"
[network.inter.http]
bind_address = "127.0.0.1"
bind_port = ${port.b}
[network.dimse]
harmony_network = "hospital-b"
[network.dimse.tcp_config]
bind_address = "127.0.0.1"
bind_port = ${port.bDicom}
${netTable("hospital-b", DB, dirB)}
[pipelines.fhir]
networks = ["inter"]
endpoints = ["fhir_in"]
backends = ["fhir_out"]
[endpoints.fhir_in]
service = "fhir"
options = { path_prefix = "/radiology/fhir" }
[backends.fhir_out]
service = "fhir"
options = { base_url = "${upstream.url}/fhir" }
[pipelines.pacs]
networks = ["dimse"]
endpoints = ["pacs_in"]
backends = ["pacs_out"]
[endpoints.pacs_in]
service = "dicom"
options = { local_aet = "PACS-B" }
[backends.pacs_out]
service = "dicomweb"
options = { base_url = "${upstream.url}/dicom-web" }
`,
  );
  writeFileSync(
    join(dirA, "harmony.toml"),
    common("gw-a") +
      `[network.default.http]
bind_address = "127.0.0.1"
bind_port = 0
[network.inter]
harmony_network = "hospital-a"
[network.inter.http]
bind_address = "127.0.0.1"
bind_port = ${port.a}
${netTable("hospital-a", DA, dirA)}
[pipelines.to_b]
networks = ["default"]
endpoints = ["b_in"]
backends = ["b_out"]
[endpoints.b_in]
service = "fhir"
options = { path_prefix = "/b/fhir" }
[backends.b_out]
service = "fhir"
options = { target = "${B_FHIR}" }
[pipelines.to_fake]
networks = ["default"]
endpoints = ["fake_in"]
backends = ["fake_out"]
[endpoints.fake_in]
service = "fhir"
options = { path_prefix = "/fake" }
[backends.fake_out]
service = "fhir"
options = { target = "harmony://${DB}/radiology/fake" }
`,
  );
  b = await startDataplane(join(dirB, "harmony.toml"));
  stops.push(() => b.stop());
  a = await startDataplane(join(dirA, "harmony.toml"));
  stops.push(() => a.stop());
});

after(() => stopAll(stops));

async function bStillServesPeers(): Promise<void> {
  await assertStillServes(b, "management", "/healthz");
  const r = await toB(leafA);
  assert.equal(r.status, 200, r.text);
}

test("traffic across two trust domains: A's app reaches B's FHIR endpoint through harmony://hospital-b.example/...", async () => {
  const r = await http(a.url("default", "/b/fhir/metadata"));
  assert.equal(r.status, 200, r.text);
  assert.match(r.text, /CapabilityStatement/);
  // B read A's gateway in A's domain, and the rule naming A's org with its domain allowed it.
  const direct = await toB(leafA);
  assert.equal(direct.status, 200, direct.text);
});

test("the same org name in our domain is another org: B's bare 'radiology' rule is not A's radiology", async () => {
  // B's own radiology gateway matches the bare rule (deny); A's radiology matched the qualified allow.
  const own = await toB(issueLeaf(caB, [spiffe(DB, "radiology", "gw-b2")]));
  assert.equal(own.status, 403, own.text);
  assert.equal(own.headers["x-harmony-policy-rule"], "bare-name-is-ours");
});

test("cross-domain forgeries are refused: 403 network-identity, naming the CA's scope", async () => {
  const cases: [string, Leaf, RegExp][] = [
    [
      "A's CA for B's own domain",
      issueLeaf(caA, [spiffe(DB, "radiology", "gw-x")]),
      /org "radiology": it vouches only for hospital-a\.example\/radiology/,
    ],
    ["A's CA for a third domain", issueLeaf(caA, [spiffe(DC, "lab", "gw-x")]), /org "hospital-c\.example\/lab"/],
    [
      "C's CA for A's domain",
      issueLeaf(caC, [spiffe(DA, "radiology", "gw-a")]),
      /org "hospital-a\.example\/radiology": it vouches only for hospital-c\.example\/lab/,
    ],
    [
      "B's own CA for A's domain",
      issueLeaf(caB, [spiffe(DA, "radiology", "gw-a")]),
      /org "hospital-a\.example\/radiology": it vouches only for radiology/,
    ],
  ];
  for (const [what, leaf, why] of cases) {
    const r = await toB(leaf);
    assert.equal(r.status, 403, `${what}: ${r.text}`);
    assert.equal(r.headers["content-type"], "application/problem+json", what);
    const p = r.json() as { type: string; detail: string };
    assert.match(p.type, /network-identity$/, what);
    assert.match(p.detail, why, what);
  }
  const line = await b.waitForLog((l) => l.message === "network peer refused" && String(l.peer).includes(DC));
  assert.equal(line.network, "hospital-b");
  // C's real gateway is read in C's domain (a known peer), then the policies decide: default deny.
  const c = await toB(issueLeaf(caC, [spiffe(DC, "lab", "gw-c")]));
  assert.equal(c.status, 403, c.text);
  assert.equal(c.headers["x-harmony-policy-rule"], "default-deny");
  // A domain no CA of the bundle is bound to names no identity at all.
  const z = await toB(issueLeaf(caA, [spiffe("hospital-z.example", "radiology", "gw-z")]));
  assert.equal(z.status, 401, z.text);
  await bStillServesPeers();
});

async function echoAs(leaf: Leaf): Promise<number | string> {
  return echoThroughBridge(leaf, {
    port: port.bDicom,
    ca: caB.certPem,
    domain: DB,
    want: spiffe(DB, "radiology", "gw-b"),
  });
}

test("DICOM TLS: A's gateway associates across domains; A's CA naming B's domain gets no association", async () => {
  assert.equal(await echoAs(leafA), 0);
  const r = await echoAs(issueLeaf(caA, [spiffe(DB, "radiology", "gw-x")]));
  assert.ok(r === -1 || typeof r === "string", `got C-ECHO status ${String(r)}`);
  const line = await b.waitForLog(
    (l) => l.message === "network peer refused" && l.protocol === "dicom" && String(l.peer).includes("gw-x"),
  );
  assert.match(String(line.reason), /vouches only for hospital-a\.example\/radiology/);
  await bStillServesPeers();
});

test("client side: a server holding B's identity from A's CA is refused (502), never reached", async () => {
  const r = await http(a.url("default", "/fake/metadata"));
  assert.equal(r.status, 502, r.text);
  assert.equal(impostorHits, 0);
});
