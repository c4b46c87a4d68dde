/**
 * FHIR through the gateway: fhir-kit-client (a third-party client) → Harmony `fhir` endpoint and
 * backend → Medplum's FHIR router (test/peers/fhir-server.ts). CRUD, conditional create, patch,
 * history, search with paging links followed through the gateway, POST _search, a transaction,
 * OperationOutcome errors from both the server and the gateway, and a sample of HL7's official
 * R4 examples round-tripped unchanged.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { Client } from "fhir-kit-client";
import { startFhirServer, type FhirPeer } from "./peers/fhir-server.js";
import { ROOT, baseConfig, freePort, startDataplane, writeTree, type Dataplane } from "../dataplane/test/helpers.js";

let peer: FhirPeer;
let dp: Dataplane;
let base: string; // the gateway's FHIR base
let client: Client;

type R = Record<string, unknown> & { resourceType: string; id?: string; meta?: { versionId?: string } };
type Bundle = R & {
  type: string;
  total?: number;
  entry?: { resource: R; fullUrl?: string; response?: { status: string; location?: string } }[];
  link?: { relation: string; url: string }[];
};

before(async () => {
  peer = await startFhirServer();
  const dead = await freePort();
  const dir = writeTree({
    "config.toml": baseConfig(`
[pipelines.fhir]
networks = ["default"]
endpoints = ["fhir_in"]
backends = ["fhir_out"]

[endpoints.fhir_in]
service = "fhir"
options = { path_prefix = "/fhir" }

[backends.fhir_out]
service = "fhir"
options = { base_url = "${peer.base}" }

[pipelines.down]
networks = ["default"]
endpoints = ["down_in"]
backends = ["down_out"]

[endpoints.down_in]
service = "fhir"
options = { path_prefix = "/down" }

[backends.down_out]
service = "fhir"
options = { base_url = "http://127.0.0.1:${dead}/fhir", connect_timeout_ms = 2000 }
`),
  });
  dp = await startDataplane(join(dir, "config.toml"));
  base = dp.url("default", "/fhir");
  client = new Client({ baseUrl: base });
});

after(async () => {
  await dp?.stop();
  await peer?.close();
});

test("capabilities, create, read, vread, update, conditional create, patch, history, delete", async () => {
  const cs = (await client.capabilityStatement()) as R & { fhirVersion: string; implementation: { url: string } };
  assert.equal(cs.fhirVersion, "4.0.1");
  assert.equal(cs.implementation.url, base, "the server's own base URL is rewritten to the gateway's");

  // Raw fetch for what the client hides: status, Location, ETag.
  const res = await fetch(`${base}/Patient`, {
    method: "POST",
    headers: { "content-type": "application/fhir+json" },
    body: JSON.stringify({ resourceType: "Patient", name: [{ family: "Gateway", given: ["Ada"] }], gender: "female" }),
  });
  assert.equal(res.status, 201);
  const created = (await res.json()) as R;
  assert.equal(res.headers.get("location"), `${base}/Patient/${created.id}/_history/${created.meta!.versionId}`);
  assert.equal(res.headers.get("etag"), `W/"${created.meta!.versionId}"`);
  assert.match(res.headers.get("content-type") ?? "", /^application\/fhir\+json/);

  const read = (await client.read({ resourceType: "Patient", id: created.id! })) as R;
  assert.deepEqual(read.name, [{ family: "Gateway", given: ["Ada"] }]);
  const updated = (await client.update({
    resourceType: "Patient",
    id: created.id!,
    body: { ...read, gender: "other" },
  })) as R;
  assert.equal(updated.gender, "other");
  assert.notEqual(updated.meta!.versionId, created.meta!.versionId);
  const v1 = (await client.vread({ resourceType: "Patient", id: created.id!, version: created.meta!.versionId! })) as R;
  assert.equal(v1.gender, "female");

  const patched = (await client.patch({
    resourceType: "Patient",
    id: created.id!,
    jsonPatch: [{ op: "add", path: "/birthDate", value: "1815-12-10" }],
  })) as R;
  assert.equal(patched.birthDate, "1815-12-10");

  const history = (await client.history({ resourceType: "Patient", id: created.id! })) as Bundle;
  assert.equal(history.type, "history");
  assert.equal(history.entry?.length, 3);

  // Conditional create: the second one finds the first and creates nothing.
  const cond = { resourceType: "Patient", identifier: [{ system: "urn:mrn", value: "MRN-77" }] };
  const c1 = await fetch(`${base}/Patient`, {
    method: "POST",
    headers: { "content-type": "application/fhir+json", "if-none-exist": "identifier=urn:mrn|MRN-77" },
    body: JSON.stringify(cond),
  });
  const c2 = await fetch(`${base}/Patient`, {
    method: "POST",
    headers: { "content-type": "application/fhir+json", "if-none-exist": "identifier=urn:mrn|MRN-77" },
    body: JSON.stringify(cond),
  });
  assert.equal(c1.status, 201);
  assert.equal(c2.status, 200);
  assert.equal(((await c1.json()) as R).id, ((await c2.json()) as R).id);

  await client.delete({ resourceType: "Patient", id: created.id! });
  const gone = await fetch(`${base}/Patient/${created.id}`);
  assert.ok(gone.status === 404 || gone.status === 410, `read after delete: ${gone.status}`);
  const oo = (await gone.json()) as R & { issue: { code: string }[] };
  assert.equal(oo.resourceType, "OperationOutcome", "the server's OperationOutcome passes through");
});

test("search pages are followed through the gateway: every link points at it", async () => {
  const ids = new Set<string>();
  for (let i = 0; i < 5; i++) {
    const p = (await client.create({
      resourceType: "Patient",
      body: { resourceType: "Patient", name: [{ family: "Pager" }] },
    })) as R;
    ids.add(p.id!);
  }
  let page = (await client.search({ resourceType: "Patient", searchParams: { family: "Pager", _count: 2 } })) as Bundle;
  const seen: string[] = [];
  let pages = 0;
  for (;;) {
    pages++;
    for (const l of page.link ?? []) assert.ok(l.url.startsWith(`${base}/`), `link ${l.relation} ${l.url}`);
    for (const e of page.entry ?? []) {
      seen.push(e.resource.id!);
      if (e.fullUrl) assert.ok(e.fullUrl.startsWith(`${base}/`), e.fullUrl);
    }
    const next = client.nextPage({ bundle: page as never });
    if (!next) break;
    page = (await next) as Bundle;
  }
  assert.equal(pages, 3);
  assert.deepEqual(new Set(seen), ids);

  // POST _search with a form body gives the same first page.
  const form = await fetch(`${base}/Patient/_search`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: "family=Pager&_count=2",
  });
  assert.equal(form.status, 200);
  const first = (await form.json()) as Bundle;
  assert.equal(first.total, 5);
  assert.equal(first.entry?.length, 2);
});

test("a transaction resolves urn:uuid references; absolute gateway references are mapped back to the server", async () => {
  const res = (await client.transaction({
    body: {
      resourceType: "Bundle",
      type: "transaction",
      entry: [
        {
          fullUrl: "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
          resource: { resourceType: "Patient", name: [{ family: "Txn" }] },
          request: { method: "POST", url: "Patient" },
        },
        {
          resource: {
            resourceType: "Observation",
            status: "final",
            code: { text: "heart rate" },
            subject: { reference: "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a" },
          },
          request: { method: "POST", url: "Observation" },
        },
      ],
    },
  })) as Bundle;
  assert.equal(res.type, "transaction-response");
  assert.deepEqual(
    res.entry?.map((e) => e.response?.status.slice(0, 3)),
    ["201", "201"],
  );
  const obs = res.entry[1]!.resource as R & { subject: { reference: string } };
  const patient = res.entry[0]!.resource;
  assert.equal(obs.subject.reference, `Patient/${patient.id}`);

  // A client that writes references as absolute gateway URLs: the server stores its own base.
  const abs = (await client.create({
    resourceType: "Observation",
    body: {
      resourceType: "Observation",
      status: "final",
      code: { text: "abs" },
      subject: { reference: `${base}/Patient/${patient.id}` },
    },
  })) as R & { subject: { reference: string } };
  assert.equal(abs.subject.reference, `${base}/Patient/${patient.id}`, "the client sees its own URL back");
  const direct = (await (await fetch(`${peer.base}/Observation/${abs.id}`)).json()) as R & {
    subject: { reference: string };
  };
  assert.equal(direct.subject.reference, `${peer.base}/Patient/${patient.id}`, "the server stored its own base");
});

test("errors are OperationOutcomes: from the server, and from the gateway itself", async () => {
  const missing = await fetch(`${base}/Patient/does-not-exist`);
  assert.equal(missing.status, 404);
  const oo = (await missing.json()) as R & { issue: { code: string }[] };
  assert.equal(oo.resourceType, "OperationOutcome");
  assert.equal(oo.issue[0]!.code, "not-found");

  const down = await fetch(dp.url("default", "/down/Patient/1"));
  assert.equal(down.status, 502);
  assert.match(down.headers.get("content-type") ?? "", /^application\/fhir\+json/);
  const doo = (await down.json()) as R & { issue: { severity: string; code: string; diagnostics: string }[] };
  assert.equal(doo.resourceType, "OperationOutcome");
  assert.equal(doo.issue[0]!.code, "transient");
  assert.match(doo.issue[0]!.diagnostics, /refused/);
  assert.doesNotMatch(JSON.stringify(doo), /127\.0\.0\.1/, "the upstream address is not disclosed");

  const wrongType = await fetch(`${base}/Patient`, {
    method: "POST",
    headers: { "content-type": "text/plain" },
    body: "hi",
  });
  assert.equal(wrongType.status, 415);
  const woo = (await wrongType.json()) as R & { issue: { code: string }[] };
  assert.equal(woo.issue[0]!.code, "not-supported");
});

test("HL7's official R4 examples round-trip through the gateway unchanged", async () => {
  const dir = join(ROOT, "node_modules/hl7.fhir.r4.examples");
  const kinds = [
    "Patient-",
    "Observation-",
    "ImagingStudy-",
    "DiagnosticReport-",
    "Practitioner-",
    "Organization-",
    "Condition-",
    "Encounter-",
    "Endpoint-",
    "Medication-",
  ];
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(".json") && kinds.some((k) => f.startsWith(k)))
    .sort()
    .filter((_, i) => i % 4 === 0);
  assert.ok(files.length >= 20, `sample of ${files.length}`);
  let compared = 0;
  for (const f of files) {
    const original = JSON.parse(readFileSync(join(dir, f), "utf8")) as R;
    const { id: _id, meta: _meta, ...body } = original;
    const res = await fetch(`${base}/${original.resourceType}`, {
      method: "POST",
      headers: { "content-type": "application/fhir+json" },
      body: JSON.stringify(body),
    });
    if (res.status !== 201) continue; // the server's own validation may refuse some examples; not ours to judge
    const created = (await res.json()) as R;
    const viaGateway = await fetch(`${base}/${original.resourceType}/${created.id}`);
    const direct = await fetch(`${peer.base}/${original.resourceType}/${created.id}`);
    const a = Buffer.from(await viaGateway.arrayBuffer());
    const b = Buffer.from(await direct.arrayBuffer());
    assert.deepEqual(a, b, `${f}: the gateway returned different bytes than the server`);
    const { id: _i, meta: _m, ...back } = JSON.parse(a.toString("utf8")) as R;
    assert.deepEqual(back, body, `${f}: content changed on the way`);
    compared++;
  }
  assert.ok(compared >= 20, `compared ${compared} of ${files.length}`);
});

test("If-Match preconditions, batch Bundles, a $operation ($graphql) and _format pass through", async () => {
  const p = (await client.create({
    resourceType: "Patient",
    body: { resourceType: "Patient", name: [{ family: "Precondition" }] },
  })) as R;
  const stale = await fetch(`${base}/Patient/${p.id}`, {
    method: "PUT",
    headers: { "content-type": "application/fhir+json", "if-match": 'W/"not-the-version"' },
    body: JSON.stringify({ resourceType: "Patient", id: p.id, gender: "male" }),
  });
  assert.equal(stale.status, 412);
  assert.equal(((await stale.json()) as R).resourceType, "OperationOutcome");
  const fresh = await fetch(`${base}/Patient/${p.id}`, {
    method: "PUT",
    headers: { "content-type": "application/fhir+json", "if-match": `W/"${p.meta!.versionId}"` },
    body: JSON.stringify({ resourceType: "Patient", id: p.id, gender: "male" }),
  });
  assert.equal(fresh.status, 200);

  const batch = (await client.batch({
    body: {
      resourceType: "Bundle",
      type: "batch",
      entry: [
        { request: { method: "GET", url: `Patient/${p.id}` } },
        { request: { method: "GET", url: "Patient/missing" } },
      ],
    },
  })) as Bundle;
  assert.equal(batch.type, "batch-response");
  assert.equal(batch.entry?.length, 2);

  const gql = await fetch(`${base}/$graphql`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query: `{ Patient(id: "${p.id}") { id gender } }` }),
  });
  assert.equal(gql.status, 200);
  assert.deepEqual(((await gql.json()) as { data: unknown }).data, { Patient: { id: p.id, gender: "male" } });

  const formatted = await fetch(`${base}/Patient/${p.id}?_format=json`);
  assert.equal(formatted.status, 200);
  assert.equal(((await formatted.json()) as R).id, p.id);
});
