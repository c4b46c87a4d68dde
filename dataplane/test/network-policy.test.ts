/**
 * Network policy semantics (issue 17 contract) on the compiled index: first match wins across the
 * rules naming the destination and those naming none, the same-org-or-group default, and how
 * requests read as FHIR interactions and DIMSE commands. Pure functions, no sockets: the
 * end-to-end behaviour is in test/network*.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseDirectory } from "../src/network/directory.js";
import { parseSpiffe, identityOf } from "../src/network/identity.js";
import { dicomwebCommand, fhirInteraction, httpOperation } from "../src/network/operations.js";
import { compilePolicy, evaluate } from "../src/network/policy.js";

const D = "h.example";
const dest = `harmony://${D}/org-b/fhir`;

function directory(policies: unknown[]) {
  return parseDirectory(
    JSON.stringify({
      version: 1,
      network: "n",
      domain: D,
      groups: [{ orgs: ["org-a", "org-b"] }, { orgs: ["org-c"] }],
      entries: [
        {
          uri: `harmony://${D}/org-a/app`,
          org: "org-a",
          endpoint: "app",
          protocol: "http",
          address: "10.0.0.1",
          port: 1,
          path_prefix: "/app",
          identity: `spiffe://${D}/org/org-a/gateway/gw-a`,
          labels: { tier: "research" },
        },
      ],
      policies,
    }),
    { network: "n", domain: D },
  );
}

const peerA = parseSpiffe(`spiffe://${D}/org/org-a/gateway/gw-a`)!;
const peerC = parseSpiffe(`spiffe://${D}/org/org-c/gateway/gw-c`)!;
const decide = (policies: unknown[], peer = peerA, op = httpOperation("fhir", "GET", "/Patient/1")) => {
  const d = directory(policies);
  return evaluate(compilePolicy(d.doc.policies ?? []), d, peer, dest, "org-b", op);
};

test("first match wins across destination-indexed and destination-less rules, in file order", () => {
  const anyDeny = { name: "any-deny", action: "deny", source: { orgs: ["org-a"] } };
  const destAllow = { name: "dest-allow", action: "allow", destination: { endpoints: [dest] } };
  assert.equal(decide([anyDeny, destAllow]).rule, "any-deny");
  assert.equal(decide([destAllow, anyDeny]).rule, "dest-allow");
  // A rule for another endpoint never applies here.
  assert.deepEqual(decide([{ name: "other", action: "deny", destination: { endpoints: [`${dest}x`] } }]), {
    allow: true,
    rule: "default-allow",
  });
});

test("default: same org or a shared group allows, otherwise default-deny", () => {
  assert.deepEqual(decide([]), { allow: true, rule: "default-allow" });
  assert.deepEqual(decide([], peerC), { allow: false, rule: "default-deny" });
});

test("source endpoints and labels match through the entries the calling gateway serves", () => {
  const byEndpoint = { name: "ep", action: "deny", source: { endpoints: [`harmony://${D}/org-a/app`] } };
  const byLabel = { name: "lab", action: "deny", source: { labels: { tier: "research" } } };
  const otherLabel = { name: "lab2", action: "deny", source: { labels: { tier: "clinical" } } };
  assert.equal(decide([byEndpoint]).rule, "ep");
  assert.equal(decide([byLabel]).rule, "lab");
  assert.equal(decide([otherLabel]).rule, "default-allow");
  assert.equal(decide([byEndpoint], peerC).rule, "default-deny");
});

test("operations: FHIR interaction and type, HTTP method and path glob, DICOM commands", () => {
  const fhir = (interactions: string[], resource_types?: string[]) => ({
    name: "f",
    action: "deny",
    operations: [{ protocol: "fhir", interactions, ...(resource_types ? { resource_types } : {}) }],
  });
  assert.equal(decide([fhir(["read"], ["Patient"])]).rule, "f");
  assert.equal(decide([fhir(["read"], ["Observation"])]).rule, "default-allow");
  assert.equal(decide([fhir(["batch"])], peerA, httpOperation("fhir", "POST", "/")).rule, "f");
  const http = {
    name: "h",
    action: "deny",
    operations: [{ protocol: "http", methods: ["GET"], paths: ["/Patient/*"] }],
  };
  assert.equal(decide([http]).rule, "h");
  assert.equal(decide([http], peerA, httpOperation("fhir", "GET", "/Observation/1")).rule, "default-allow");
  const store = { name: "s", action: "deny", operations: [{ protocol: "dicom", commands: ["C-STORE"] }] };
  assert.equal(decide([store], peerA, httpOperation("dicomweb", "POST", "/studies")).rule, "s");
  assert.equal(decide([store], peerA, httpOperation("dicomweb", "GET", "/studies")).rule, "default-allow");
  assert.equal(decide([store], peerA, { protocol: "dicom", command: "C-STORE" }).rule, "s");
});

test("FHIR interactions and DICOMweb commands read from method and path", () => {
  const cases: [string, string, string, string?][] = [
    ["GET", "/", "search-system"],
    ["GET", "/metadata", "capabilities"],
    ["GET", "/Patient", "search-type", "Patient"],
    ["POST", "/Patient/_search", "search-type", "Patient"],
    ["GET", "/Patient/1", "read", "Patient"],
    ["GET", "/Patient/1/_history/2", "vread", "Patient"],
    ["GET", "/Patient/1/_history", "history-instance", "Patient"],
    ["GET", "/Patient/_history", "history-type", "Patient"],
    ["GET", "/_history", "history-system"],
    ["POST", "/Patient", "create", "Patient"],
    ["PUT", "/Patient/1", "update", "Patient"],
    ["PATCH", "/Patient/1", "patch", "Patient"],
    ["DELETE", "/Patient/1", "delete", "Patient"],
    ["POST", "/", "transaction"],
    ["POST", "/Patient/$match", "operation", "Patient"],
  ];
  for (const [m, p, interaction, resourceType] of cases)
    assert.deepEqual(
      fhirInteraction(m, p),
      resourceType ? { interaction, resourceType } : { interaction },
      `${m} ${p}`,
    );
  assert.equal(dicomwebCommand("GET", "/studies"), "C-FIND");
  assert.equal(dicomwebCommand("GET", "/studies/1.2/series"), "C-FIND");
  assert.equal(dicomwebCommand("GET", "/studies/1.2"), "C-GET");
  assert.equal(dicomwebCommand("GET", "/studies/1.2/metadata"), "C-GET");
  assert.equal(dicomwebCommand("POST", "/studies"), "C-STORE");
  assert.equal(dicomwebCommand("DELETE", "/studies/1.2"), undefined);
});

test("identity: exactly one SPIFFE URI SAN in the network's domain", () => {
  const id = `spiffe://${D}/org/org-a/gateway/gw-a`;
  assert.equal(identityOf(`URI:${id}`, D)?.org, "org-a");
  assert.equal(identityOf(`DNS:x, URI:${id}`, D)?.gateway, "gw-a");
  assert.equal(identityOf(`URI:${id}, URI:spiffe://${D}/org/org-b/gateway/gw-b`, D), undefined);
  assert.equal(identityOf(`URI:spiffe://other.example/org/org-a/gateway/gw-a`, D), undefined);
  assert.equal(identityOf(`URI:spiffe://${D}/org/org-a/gateway/gw-a/extra`, D), undefined);
  assert.equal(identityOf(`URI:"spiffe://${D}/org/org-a/gateway/gw-a, x"`, D), undefined);
  assert.equal(identityOf(undefined, D), undefined);
});

test("a directory that breaks the contract is refused with the reason", () => {
  assert.throws(() => parseDirectory("{", { network: "n", domain: D }), /not JSON/);
  assert.throws(
    () =>
      parseDirectory(JSON.stringify({ version: 1, network: "n", domain: "x.example", entries: [] }), {
        network: "n",
        domain: D,
      }),
    /domain is "x.example"/,
  );
  assert.throws(
    () =>
      parseDirectory(JSON.stringify({ version: 2, network: "n", domain: D, entries: [] }), { network: "n", domain: D }),
    /version/,
  );
});

test("an org of another trust domain is named <domain>/<org>: a bare name never matches it", () => {
  const foreign = parseSpiffe(`spiffe://other.example/org/org-a/gateway/gw-a`)!;
  const bare = { name: "bare", action: "allow", source: { orgs: ["org-a"] } };
  const qualified = { name: "qualified", action: "allow", source: { orgs: ["other.example/org-a"] } };
  // Not in a group with org-b (the bare org-a is): default deny, and the bare rule does not apply.
  assert.deepEqual(decide([], foreign), { allow: false, rule: "default-deny" });
  assert.equal(decide([bare], foreign).rule, "default-deny");
  assert.deepEqual(decide([bare, qualified], foreign), { allow: true, rule: "qualified" });
  // And the qualified rule is not ours: our org-a still matches the bare one.
  assert.equal(decide([qualified, bare]).rule, "bare");
});
