/**
 * Issue 17, data plane: two organisations' gateways on loopback in one Harmony network. An app in
 * org A calls harmony://hospitals.example/org-b/fhir through gateway A, which reaches gateway B
 * over mutual TLS (SPIFFE identities from the network CA); B evaluates the directory's policies on
 * the verified caller and serves a real FHIR server (Medplum). Directory changes and a CA rotation
 * take effect without a restart and without a failed request.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { eventually, http, startDataplane, stopAll, type Dataplane } from "../dataplane/test/helpers.js";
import { startFhirServer, type FhirPeer } from "./peers/fhir-server.js";
import { createCa, issueLeaf, spiffe } from "./network-pki.js";
import { B_FHIR, DOMAIN, mtls, networkFiles, type NetworkFiles } from "./network-fixture.js";

const DENY_CREATE_PATIENT = {
  name: "a-may-not-create-patients-at-b",
  action: "deny",
  source: { orgs: ["org-a"] },
  destination: { endpoints: [B_FHIR] },
  operations: [{ protocol: "fhir", interactions: ["create"], resource_types: ["Patient"] }],
};

let net: NetworkFiles;
let fhir: FhirPeer;
let a: Dataplane;
let b: Dataplane;
let patientId = "";
const stops: (() => unknown)[] = [];

before(async () => {
  net = await networkFiles();
  for (const g of [net.a, net.b]) net.writeDirectory(g, [DENY_CREATE_PATIENT]);
  fhir = await startFhirServer();
  stops.push(() => fhir.close());
  writeFileSync(join(net.b.dir, "harmony.toml"), net.configB(fhir.base));
  writeFileSync(join(net.a.dir, "harmony.toml"), net.configA());
  b = await startDataplane(join(net.b.dir, "harmony.toml"));
  stops.push(() => b.stop());
  a = await startDataplane(join(net.a.dir, "harmony.toml"));
  stops.push(() => a.stop());
  const created = await http(`${fhir.base}/Patient`, {
    method: "POST",
    headers: { "content-type": "application/fhir+json" },
    body: JSON.stringify({ resourceType: "Patient", name: [{ family: "Network" }] }),
  });
  assert.equal(created.status, 201, created.text);
  patientId = (created.json() as { id: string }).id;
});

after(() => stopAll(stops));

const viaA = (path: string, opts: Parameters<typeof http>[1] = {}) => http(a.url("default", `/b/fhir${path}`), opts);

test("an app in org A reads org B's FHIR server through harmony://.../org-b/fhir", async () => {
  const r = await viaA(`/Patient/${patientId}`);
  assert.equal(r.status, 200, r.text);
  const p = r.json() as { resourceType: string; id: string };
  assert.equal(p.resourceType, "Patient");
  assert.equal(p.id, patientId);
  // Absolute URLs come back in A's own terms (B rewrote them to its base, A to the app's).
  const s = await viaA("/Patient?family=Network");
  assert.equal(s.status, 200, s.text);
  const self = (s.json() as { link: { relation: string; url: string }[] }).link.find((l) => l.relation === "self");
  assert.ok(self?.url.startsWith(a.url("default", "/b/fhir/Patient")), self?.url);
});

test("a rule denies create Patient: 403 OperationOutcome naming the rule, and B's audit line", async () => {
  const r = await viaA("/Patient", {
    method: "POST",
    headers: { "content-type": "application/fhir+json" },
    body: JSON.stringify({ resourceType: "Patient" }),
  });
  assert.equal(r.status, 403, r.text);
  const oo = r.json() as { resourceType: string; issue: { code: string; diagnostics: string }[] };
  assert.equal(oo.resourceType, "OperationOutcome");
  assert.equal(oo.issue[0]!.code, "forbidden");
  assert.match(oo.issue[0]!.diagnostics, /a-may-not-create-patients-at-b/);
  const line = await b.waitForLog((l) => l.message === "network policy denied");
  assert.equal(line.rule, "a-may-not-create-patients-at-b");
  assert.equal(line.peer, spiffe(DOMAIN, "org-a", "gw-a"));
  assert.equal(line.destination, B_FHIR);
  // The rule names one interaction on one type: creating another type is allowed (same group).
  const obs = await viaA("/Observation", {
    method: "POST",
    headers: { "content-type": "application/fhir+json" },
    body: JSON.stringify({ resourceType: "Observation", status: "final", code: { text: "x" } }),
  });
  assert.equal(obs.status, 201, obs.text);
});

test("an org outside every group of the callee is denied by default-deny", async () => {
  const c = issueLeaf(net.ca, [spiffe(DOMAIN, "org-c", "gw-c")]);
  const r = await mtls(net.b.port, "/org-b/fhir/metadata", { ca: net.ca.certPem, client: c });
  assert.equal(r.status, 403, r.text);
  assert.match(r.text, /default-deny/);
  // The same call with org A's identity (same group) is allowed.
  const ok = await mtls(net.b.port, "/org-b/fhir/metadata", { ca: net.ca.certPem, client: net.a.leaf });
  assert.equal(ok.status, 200, ok.text);
});

test("a harmony:// URI the directory does not hold is a 502 naming the URI", async () => {
  const r = await http(a.url("default", "/nowhere/x"));
  assert.equal(r.status, 502, r.text);
  assert.match(r.text, /harmony:\/\/hospitals\.example\/org-b\/nope/);
});

test("the signed export is served without a client certificate, as written", async () => {
  const r = await mtls(net.b.port, "/.well-known/harmony/hospitals/export.jws", { ca: net.ca.certPem });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers["content-type"], "application/jose");
  assert.equal(r.text, "eyJhbGciOiJFUzI1NiJ9.org-b.c2ln");
  // Anything else on that listener without a certificate is refused.
  const other = await mtls(net.b.port, "/org-b/fhir/metadata", { ca: net.ca.certPem });
  assert.equal(other.status, 401, other.text);
});

test("directory changes take effect without a restart (policy at B, resolution at A)", async () => {
  const pids = [a.pid, b.pid];
  const noReads = {
    name: "no-reads-from-a",
    action: "deny",
    source: { orgs: ["org-a"] },
    operations: [{ protocol: "fhir", interactions: ["read"] }],
  };
  net.writeDirectory(net.b, [noReads, DENY_CREATE_PATIENT]);
  const denied = await eventually("B to deny reads from A", async () => {
    const r = await viaA(`/Patient/${patientId}`);
    return r.status === 403 ? r : undefined;
  });
  assert.match(denied.text, /no-reads-from-a/);
  net.writeDirectory(net.b, [DENY_CREATE_PATIENT]);
  await eventually("B to allow reads again", async () => (await viaA(`/Patient/${patientId}`)).status === 200);

  // A's directory loses the entry: the backend re-resolves and answers 502 naming the URI; back again, 200.
  net.writeDirectory(net.a, [DENY_CREATE_PATIENT], []);
  const gone = await eventually("A to stop resolving B's FHIR URI", async () => {
    const r = await viaA(`/Patient/${patientId}`);
    return r.status === 502 ? r : undefined;
  });
  assert.match(gone.text, /org-b\/fhir is not in the directory/);
  net.writeDirectory(net.a, [DENY_CREATE_PATIENT]);
  await eventually("A to resolve it again", async () => (await viaA(`/Patient/${patientId}`)).status === 200);
  assert.deepEqual([a.pid, b.pid], pids);
  assert.equal(a.proc.exitCode, null);
  assert.equal(b.proc.exitCode, null);
});

/** The URI SANs of the certificate a fresh TLS handshake with `port` presents. */
function presentedSan(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => {
      resolve(s.getPeerCertificate().subjectaltname ?? "");
      s.destroy();
    });
    s.on("error", reject);
  });
}

test("files that do not load are reported with their path while the last good state keeps serving", async () => {
  // The rejection that names `what` (a certificate and key written one after the other may first
  // be seen half-written, which is rejected too, for another reason).
  const rejected = (d: Dataplane, n: number, what: RegExp) =>
    eventually(`a rejected reload naming ${String(what)}`, () =>
      d.logs
        .filter((l) => l.message === "config rejected; the previous config keeps serving")
        .slice(n)
        .find((l) => what.test(JSON.stringify(l.problems))),
    );
  const rejections = (d: Dataplane) =>
    d.logs.filter((l) => l.message === "config rejected; the previous config keeps serving").length;
  const directory = join(net.b.dir, "directory.json");
  const good = readFileSync(directory);
  let n = rejections(b);
  writeFileSync(directory, "{ not json");
  let line = await rejected(b, n, /not JSON/);
  assert.match(JSON.stringify(line.problems), new RegExp(`${directory.replace(/[.]/g, "\\.")}: not JSON`));
  assert.equal((await viaA(`/Patient/${patientId}`)).status, 200, "B still serves with its last good directory");
  const loads = (d: Dataplane) => d.logs.filter((l) => l.message === "config loaded").length;
  let before = loads(b);
  writeFileSync(directory, good);
  await eventually("B to load again", () => loads(b) > before);

  // A valid certificate of the network, but for another org: refused, and never served.
  const cert = join(net.b.dir, "tls.crt");
  const goodLeaf = net.b.leaf;
  n = rejections(b);
  net.writeLeaf(net.b, issueLeaf(net.ca, [spiffe(DOMAIN, "org-c", "gw-b")]));
  line = await rejected(b, n, /is for org/);
  assert.match(JSON.stringify(line.problems), /is for org \\"org-c\\", not \\"org-b\\"/);
  assert.match(JSON.stringify(line.problems), new RegExp(cert.replace(/[.]/g, "\\.")));
  assert.equal((await viaA(`/Patient/${patientId}`)).status, 200, "A still reaches B as gw-b");
  // A new handshake still gets the last good certificate (a pooled connection would prove nothing).
  assert.match(await presentedSan(net.b.port), /org\/org-b\/gateway\/gw-b/);
  before = loads(b);
  net.writeLeaf(net.b, goodLeaf);
  await eventually("B to load again", () => loads(b) > before);
});

test("CA rotation (bundle old+new, new leaves, bundle new only) without a failed request", async () => {
  const ca2 = createCa("hospitals network CA 2");
  let running = true;
  let ok = 0;
  const failures: string[] = [];
  const load = (async () => {
    while (running) {
      try {
        const r = await viaA(`/Patient/${patientId}`);
        if (r.status === 200) ok++;
        else failures.push(`${r.status} ${r.text}`);
      } catch (e) {
        failures.push(String(e));
      }
    }
  })();
  const reloadsOf = (d: Dataplane) => d.logs.filter((l) => l.message === "config loaded").length;
  /** Waits until `d` has loaded the config (files included) `n` more times than `before`. */
  const reloaded = (d: Dataplane, before: number) =>
    eventually("a config reload", () => reloadsOf(d) > before, { timeoutMs: 30_000 });
  /** Runs `write` and waits until every gateway whose files it changed has reloaded. */
  const step = async (changed: Dataplane[], write: () => void) => {
    const counts = changed.map(reloadsOf);
    write();
    await Promise.all(changed.map((d, i) => reloaded(d, counts[i]!)));
  };

  try {
    const both = [net.ca.certPem, ca2.certPem];
    await step([a, b], () => {
      net.writeBundle(net.a, both);
      net.writeBundle(net.b, both);
    });
    // B's listener trusts the new CA now: a client with a leaf of CA 2 gets past the handshake check.
    const probe = issueLeaf(ca2, [spiffe(DOMAIN, "org-a", "gw-a")]);
    await eventually("B to trust CA 2", async () => {
      const r = await mtls(net.b.port, "/org-b/fhir/metadata", { ca: net.ca.certPem, client: probe });
      return r.status === 200;
    });
    await step([b], () => net.writeLeaf(net.b, issueLeaf(ca2, [spiffe(DOMAIN, "org-b", "gw-b")])));
    await eventually("B to present its CA 2 leaf", async () => {
      const r = await mtls(net.b.port, "/org-b/fhir/metadata", { ca: ca2.certPem, client: probe });
      return r.status === 200;
    });
    await step([a], () => net.writeLeaf(net.a, issueLeaf(ca2, [spiffe(DOMAIN, "org-a", "gw-a")])));
    const before = ok;
    await eventually("requests to flow after the leaf rotation", () => ok > before + 5);
    await step([a, b], () => {
      net.writeBundle(net.a, [ca2.certPem]);
      net.writeBundle(net.b, [ca2.certPem]);
    });
    const after = ok;
    await eventually("requests to flow with only CA 2 trusted", () => ok > after + 5);
    // The old CA is no longer trusted for new connections.
    const old = await mtls(net.b.port, "/org-b/fhir/metadata", {
      ca: ca2.certPem,
      client: issueLeaf(net.ca, [spiffe(DOMAIN, "org-a", "gw-a")]),
    });
    assert.equal(old.status, 401, old.text);
  } finally {
    running = false;
    await load;
  }
  assert.deepEqual(failures, []);
  assert.ok(ok > 10, `only ${ok} requests went through`);
});
