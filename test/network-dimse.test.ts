/**
 * Issue 17, DIMSE across a Harmony network: org A's gateway relays a DICOM C-FIND to
 * harmony://hospitals.example/org-b/pacs, over DICOM TLS to org B's gateway, which checks the
 * caller's SPIFFE identity and the directory's policies per DIMSE command and serves Orthanc
 * (as a DICOMweb origin). The directory lets A query B's PACS but not store in it: one rule.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import { connect as tlsConnect } from "node:tls";
import { eventually, freePort, startDataplane, stopAll, type Dataplane } from "../dataplane/test/helpers.js";
import { Client, requests } from "../dataplane/src/protocols/dimse.js";
import { TlsBridge } from "../dataplane/src/network/tls-bridge.js";
import { createLogger } from "../dataplane/src/observability/logger.js";
import { identityOf } from "../dataplane/src/network/identity.js";
import { echo, type Orthanc } from "./peers/dicom-peers.js";
import { createCa, issueLeaf, spiffe, type Leaf } from "./network-pki.js";
import { DOMAIN, NETWORK, mtls, netTable, networkFiles, type NetworkFiles } from "./network-fixture.js";
import {
  B_PACS,
  MR_FILE,
  assertRefusedByRule,
  findThroughA,
  noStoreRule,
  orthancWithCt,
  storeThroughA,
} from "./network-dimse-fixture.js";

const B_WEB = `harmony://${DOMAIN}/org-b/dicomweb`;
// The same PACS over DIMSE and over DICOMweb: STOW-RS counts as C-STORE.
const NO_STORE = noStoreRule([B_PACS, B_WEB]);

let net: NetworkFiles;
let orthanc: Orthanc;
let a: Dataplane;
let b: Dataplane;
let aDicom = 0;
let bDicom = 0;
/** A DIMSE endpoint of B on its own port (not the tcp_config), of a pipeline on the inter-gateway listener. */
let bOwnPort = 0;
const stops: (() => unknown)[] = [];

before(async () => {
  net = await networkFiles();
  orthanc = await orthancWithCt(stops);
  aDicom = await freePort();
  bDicom = await freePort();
  bOwnPort = await freePort();
  const pacs = {
    uri: B_PACS,
    org: "org-b",
    endpoint: "pacs",
    protocol: "dicom",
    address: "127.0.0.1",
    port: bDicom,
    ae_title: "PACS-B",
    identity: spiffe(DOMAIN, "org-b", "gw-b"),
  };
  const web = {
    ...pacs,
    uri: B_WEB,
    endpoint: "dicomweb",
    protocol: "dicomweb",
    port: net.b.port,
    path_prefix: "/org-b/dicomweb",
    ae_title: undefined,
  };
  for (const g of [net.a, net.b]) net.writeDirectory(g, [NO_STORE], [pacs, web]);
  const head = (id: string) => `[proxy]
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
  writeFileSync(
    join(net.b.dir, "harmony.toml"),
    `${head("gw-b")}
[network.dimse]
harmony_network = "${NETWORK}"
[network.dimse.tcp_config]
bind_address = "127.0.0.1"
bind_port = ${bDicom}
${netTable(net.b)}
[pipelines.pacs]
networks = ["dimse"]
endpoints = ["pacs_in"]
backends = ["pacs_out"]
[endpoints.pacs_in]
service = "dicom"
options = { local_aet = "PACS-B" }
[backends.pacs_out]
service = "dicomweb"
options = { base_url = "${orthanc.dicomweb}" }
[network.inter]
harmony_network = "${NETWORK}"
[network.inter.http]
bind_address = "127.0.0.1"
bind_port = ${net.b.port}
[pipelines.web]
networks = ["inter"]
endpoints = ["web_in"]
backends = ["web_out"]
[endpoints.web_in]
service = "dicomweb"
options = { path_prefix = "/org-b/dicomweb" }
[backends.web_out]
service = "dicomweb"
options = { base_url = "${orthanc.dicomweb}" }
[pipelines.own_port]
networks = ["inter"]
endpoints = ["own_port_in"]
backends = ["own_port_out"]
[endpoints.own_port_in]
service = "dicom"
options = { port = ${bOwnPort}, bind_address = "127.0.0.1", local_aet = "PACS-B2" }
[backends.own_port_out]
service = "dicomweb"
options = { base_url = "${orthanc.dicomweb}" }
`,
  );
  writeFileSync(
    join(net.a.dir, "harmony.toml"),
    `${head("gw-a")}
${netTable(net.a)}
[pipelines.to_b_pacs]
endpoints = ["scp_in"]
backends = ["b_pacs"]
[endpoints.scp_in]
service = "dicom"
options = { port = ${aDicom}, bind_address = "127.0.0.1", local_aet = "GW-A" }
[backends.b_pacs]
service = "dicom"
options = { target = "${B_PACS}", local_aet = "GW-A" }
`,
  );
  b = await startDataplane(join(net.b.dir, "harmony.toml"));
  stops.push(() => b.stop());
  a = await startDataplane(join(net.a.dir, "harmony.toml"));
  stops.push(() => a.stop());
});

after(() => stopAll(stops));

test("C-FIND from org A's modality reaches org B's PACS through harmony://.../org-b/pacs over DICOM TLS", async () => {
  const r = await findThroughA(aDicom, ["PatientName"]);
  assert.equal(r.code, 0, r.out);
  assert.equal(r.matches.length, 1, `one study matches:\n${r.out}`);
});

test("C-STORE from org A is refused by the rule at B (0x0124, audit line), and Orthanc never sees it", async () => {
  const r = await storeThroughA(aDicom, MR_FILE);
  assert.doesNotMatch(r.out, /Received Store Response \(Success\)/, r.out);
  // gw-a relays B's refusal to the modality as it came: status 0x0124, the rule in the Error Comment.
  await assertRefusedByRule(r.out, b);
  const stored = (await (await fetch(`${orthanc.http}/instances`)).json()) as string[];
  assert.equal(stored.length, 1, "only the instance stored at set-up");
});

test("DICOMweb on B's inter-gateway listener: QIDO (C-FIND) and WADO (C-GET) allowed, STOW (C-STORE) denied by the same rule", async () => {
  const as = { ca: net.ca.certPem, client: net.a.leaf };
  const qido = await mtls(net.b.port, "/org-b/dicomweb/studies", {
    ...as,
    headers: { accept: "application/dicom+json" },
  });
  assert.equal(qido.status, 200, qido.text);
  const studies = qido.json() as Record<string, { Value?: string[] }>[];
  assert.equal(studies.length, 1);
  const study = studies[0]!["0020000D"]!.Value![0]!;
  const wado = await mtls(net.b.port, `/org-b/dicomweb/studies/${study}/metadata`, {
    ...as,
    headers: { accept: "application/dicom+json" },
  });
  assert.equal(wado.status, 200, wado.text);
  const boundary = "netdp";
  const body = Buffer.concat([
    Buffer.from(`--${boundary}\r\ncontent-type: application/dicom\r\n\r\n`),
    readFileSync(MR_FILE),
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  const stow = await mtls(net.b.port, "/org-b/dicomweb/studies", {
    ...as,
    method: "POST",
    headers: { "content-type": `multipart/related; type="application/dicom"; boundary=${boundary}` },
    body,
  });
  assert.equal(stow.status, 403, stow.text);
  assert.equal(stow.headers["content-type"], "application/problem+json");
  assert.equal(stow.headers["x-harmony-policy-rule"], NO_STORE.name);
  assert.match(stow.text, /C-STORE/);
  const stored = (await (await fetch(`${orthanc.http}/instances`)).json()) as string[];
  assert.equal(stored.length, 1, "only the instance stored at set-up");
});

/** One DIMSE request through a TLS bridge holding `leaf`: the response's status and Error Comment. */
async function direct(
  leaf: Leaf,
  ca: string,
  request: InstanceType<typeof requests.CStoreRequest>,
  to = { port: bDicom, aet: "PACS-B" },
) {
  const bridge = new TlsBridge(
    "127.0.0.1",
    to.port,
    {
      cert: Buffer.from(leaf.certPem),
      key: Buffer.from(leaf.keyPem),
      ca: Buffer.from(ca),
      identity: spiffe(DOMAIN, "org-b", "gw-b"),
      checkServerIdentity: (_h, cert) =>
        identityOf(cert.subjectaltname, DOMAIN)?.uri === spiffe(DOMAIN, "org-b", "gw-b")
          ? undefined
          : new Error("wrong server"),
    },
    5000,
    createLogger("error"),
  );
  try {
    const port = await bridge.localPort();
    const client = new Client();
    let status = -1;
    let comment = "";
    request.on("response", (r: { getStatus(): number; getErrorComment(): string }) => {
      status = r.getStatus();
      comment = r.getErrorComment();
    });
    client.addRequest(request);
    const outcome = await new Promise<string>((resolve) => {
      client.on("networkError", (e: Error) => resolve(`network error: ${e.message}`));
      client.on("associationRejected", () => resolve("rejected"));
      client.on("closed", () => resolve("closed"));
      client.send("127.0.0.1", port, "TESTSCU", to.aet, { connectTimeout: 5000, associationTimeout: 5000 });
    });
    return { status, comment, outcome };
  } finally {
    await bridge.close();
  }
}

test("the refusal's Error Comment names the rule; a peer of an unknown org gets no association", async () => {
  const denied = await direct(net.a.leaf, net.ca.certPem, new requests.CStoreRequest(MR_FILE));
  assert.equal(denied.status, 0x0124, JSON.stringify(denied));
  assert.match(denied.comment, /a-may-query-but-not-store-at-b-pacs/);
  const stranger = await direct(
    issueLeaf(net.ca, [spiffe(DOMAIN, "org-z", "gw-z")]),
    net.ca.certPem,
    new requests.CStoreRequest(MR_FILE),
  );
  assert.equal(stranger.status, -1, JSON.stringify(stranger));
  const rogue = await direct(
    issueLeaf(createCa("rogue"), [spiffe(DOMAIN, "org-a", "gw-a")]),
    net.ca.certPem,
    new requests.CStoreRequest(MR_FILE),
  );
  assert.equal(rogue.status, -1, JSON.stringify(rogue));
  // Plain DIMSE on the TLS port gets nowhere either.
  assert.equal(echo("PACS-B", bDicom), false);
  assert.equal(b.proc.exitCode, null);
});

test("a DIMSE endpoint on its own port, of a pipeline on the inter-gateway listener, is the network's too: TLS and policy", async () => {
  // As the operator renders a HarmonyEndpoint's port: no tcp_config, the pipeline on the harmony listener.
  assert.equal(echo("PACS-B2", bOwnPort), false, "no plain DIMSE on it");
  // The directory publishes no entry with AE PACS-B2: the gate refuses every command to it.
  const r = await direct(net.a.leaf, net.ca.certPem, new requests.CStoreRequest(MR_FILE), {
    port: bOwnPort,
    aet: "PACS-B2",
  });
  assert.equal(r.status, 0x0124, JSON.stringify(r));
  assert.match(r.comment, /no-endpoint/);
});

test("B's identity rotates on its DICOM TLS listener without a restart; C-FIND keeps working", async () => {
  const loads = () => b.logs.filter((l) => l.message === "config loaded").length;
  const before = loads();
  const fresh = issueLeaf(net.ca, [spiffe(DOMAIN, "org-b", "gw-b")]);
  net.writeLeaf(net.b, fresh);
  await eventually("B to reload", () => loads() > before);
  const presented = await new Promise<string>((resolve, reject) => {
    const s = tlsConnect(
      {
        host: "127.0.0.1",
        port: bDicom,
        ca: net.ca.certPem,
        cert: net.a.leaf.certPem,
        key: net.a.leaf.keyPem,
        checkServerIdentity: () => undefined,
      },
      () => {
        resolve(s.getPeerCertificate().fingerprint256);
        s.destroy();
      },
    );
    s.on("error", reject);
  });
  assert.equal(presented, new X509Certificate(fresh.certPem).fingerprint256);
  await b.waitForLog((l) => l.message === "DICOM TLS certificate reloaded");
  const r = await findThroughA(aDicom);
  assert.equal(r.code, 0, r.out);
  assert.equal(r.matches.length, 1);
  assert.equal(b.proc.exitCode, null);
});
