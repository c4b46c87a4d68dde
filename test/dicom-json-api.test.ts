/**
 * Harmony's HTTP → DICOM JSON API (an `http` endpoint in front of a `dicom` backend), against
 * Orthanc over DIMSE: GET /echo, POST /find (study and patient level), POST /get, POST /move to an
 * allowed destination (dcmtk's storescp, pynetdicom's store SCP receive the study), the refusals (bad JSON, unknown
 * tags, oversize bodies, wrong methods, destinations not allowed) as problem+json; and a DICOMweb
 * study or series asked for as application/dicom+json answered as a QIDO search.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { startOrthanc, startStorescp, SAMPLES, type Orthanc, type StoreScp } from "./peers/dicom-peers.js";
import { uidsOf } from "./dicom-files.js";
import { EXPLICIT_LE, IMPLICIT_LE, sameDataset, startPyStoreScp, type PyStoreScp } from "./peers/pynetdicom.js";
import { baseConfig, startDataplane, writeTree, type Dataplane } from "../dataplane/test/helpers.js";

const ct = readFileSync(join(SAMPLES, "CT_small.dcm"));
const mr = readFileSync(join(SAMPLES, "MR_small.dcm"));
const CT = uidsOf(ct);
const MR = uidsOf(mr);
type DicomJson = Record<string, { vr: string; Value?: unknown[]; BulkDataURI?: string }>;
interface ApiAnswer {
  operation: string;
  success: boolean;
  level?: string;
  matches?: DicomJson[];
  instances?: DicomJson[];
  file_count?: number;
  completed?: number;
  error?: string;
  remote_aet?: string;
  truncated?: boolean;
}

let orthanc: Orthanc;
let scp: StoreScp;
let py: PyStoreScp;
let dp: Dataplane;

before(async () => {
  scp = await startStorescp("STORESCP");
  py = await startPyStoreScp("PYSCP", [EXPLICIT_LE, IMPLICIT_LE]);
  orthanc = await startOrthanc({
    modalities: { STORESCP: ["STORESCP", "127.0.0.1", scp.port], PYSCP: ["PYSCP", "127.0.0.1", py.port] },
  });
  for (const f of [ct, mr])
    assert.equal((await fetch(`${orthanc.http}/instances`, { method: "POST", body: f })).status, 200);
  const peer = `host = "127.0.0.1", port = ${orthanc.dicomPort}, aet = "${orthanc.aet}", local_aet = "HARMONY"`;
  const dir = writeTree({
    "config.toml": baseConfig(`
[pipelines.api]
networks = ["default"]
endpoints = ["api_in"]
backends = ["pacs"]

[endpoints.api_in]
service = "http"
options = { path_prefix = "/dimse" }

[backends.pacs]
service = "dicom"
options = { ${peer}, json_api_max_body_bytes = 4096, json_api_max_results = 1, json_api_move_destinations = ["STORESCP", "PYSCP"] }

[pipelines.web]
networks = ["default"]
endpoints = ["web_in"]
backends = ["pacs_web"]

[endpoints.web_in]
service = "dicomweb"
options = { path_prefix = "/dicomweb" }

[backends.pacs_web]
service = "dicom"
options = { ${peer} }
`),
  });
  dp = await startDataplane(join(dir, "config.toml"));
});

after(async () => {
  await dp?.stop();
  await orthanc?.stop();
  await scp?.stop();
  await py?.stop();
});

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(dp.url("default", `/dimse${path}`), {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });

async function problem(res: Response, status: number): Promise<{ detail: string }> {
  assert.equal(res.status, status, await res.clone().text());
  assert.match(res.headers.get("content-type") ?? "", /^application\/problem\+json/);
  return (await res.json()) as { detail: string };
}

test("GET /echo: a C-ECHO answered {operation, success, remote_aet, host, port}", async () => {
  const res = await fetch(dp.url("default", "/dimse/echo"));
  assert.equal(res.status, 200, await res.clone().text());
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  const body = (await res.json()) as ApiAnswer & { host: string; port: number };
  assert.deepEqual(body, {
    operation: "echo",
    success: true,
    remote_aet: orthanc.aet,
    host: "127.0.0.1",
    port: orthanc.dicomPort,
  });
});

test("POST /find: a DICOM JSON identifier becomes a STUDY-level C-FIND; matches are DICOM JSON", async () => {
  const res = await post("/find", {
    "00100020": { vr: "LO", Value: [CT.patientId] },
    "0020000D": { vr: "UI" },
    "00081030": { vr: "LO" },
  });
  assert.equal(res.status, 200, await res.clone().text());
  const body = (await res.json()) as ApiAnswer;
  assert.equal(body.operation, "find");
  assert.equal(body.success, true);
  assert.equal(body.level, "STUDY");
  assert.equal(body.matches!.length, 1);
  assert.deepEqual(body.matches![0]!["0020000D"], { vr: "UI", Value: [CT.study] });
});

test("POST /find in Harmony's wrapper with only patient keys: a PATIENT-level (Patient Root) C-FIND", async () => {
  const res = await post("/find", {
    identifier: { PatientID: { vr: "LO", Value: [MR.patientId] }, PatientName: { vr: "PN" } },
  });
  assert.equal(res.status, 200, await res.clone().text());
  const body = (await res.json()) as ApiAnswer;
  assert.equal(body.level, "PATIENT");
  assert.equal(body.matches!.length, 1);
  assert.equal(body.matches![0]!["00100020"]!.Value![0], MR.patientId);
  assert.ok(body.matches![0]!["00100010"], "the PatientName return key is answered");
});

test("POST /find: more matches than json_api_max_results are cut to the cap and say truncated", async () => {
  const res = await post("/find", { "0020000D": { vr: "UI" } });
  assert.equal(res.status, 200, await res.clone().text());
  const body = (await res.json()) as ApiAnswer;
  assert.equal(body.matches!.length, 1);
  assert.equal(body.truncated, true);
});

test("POST /get: the study's instances as DICOM JSON, pixel data as a BulkDataURI on the gateway", async () => {
  const res = await post("/get", { identifier: { "0020000D": { vr: "UI", Value: [CT.study] } } });
  assert.equal(res.status, 200, await res.clone().text());
  const body = (await res.json()) as ApiAnswer;
  assert.equal(body.operation, "get");
  assert.equal(body.success, true);
  assert.equal(body.file_count, 1);
  const inst = body.instances![0]!;
  assert.deepEqual(inst["00080018"], { vr: "UI", Value: [CT.sop] });
  const bulk = inst["7FE00010"]!.BulkDataURI!;
  assert.ok(bulk.startsWith(dp.url("default", "/dimse/studies/")), bulk);
  const pixels = await fetch(bulk);
  assert.equal(pixels.status, 200);
});

test("POST /get of a study the PACS does not hold: 404 {success: false}", async () => {
  const res = await post("/get", { "0020000D": { vr: "UI", Value: ["1.2.3.4.5.6.7.8.9"] } });
  assert.equal(res.status, 404, await res.clone().text());
  const body = (await res.json()) as ApiAnswer;
  assert.deepEqual([body.operation, body.success], ["get", false]);
});

test("POST /move to an allowed destination: the PACS sends the study there", async () => {
  const res = await post("/move", {
    identifier: { "0020000D": { vr: "UI", Value: [MR.study] } },
    destination: "STORESCP",
  });
  assert.equal(res.status, 200, await res.clone().text());
  const body = (await res.json()) as ApiAnswer;
  assert.deepEqual([body.operation, body.success, body.completed], ["move", true, 1]);
  const files = readdirSync(scp.dir);
  assert.ok(
    files.some((f) => f.endsWith(MR.sop)),
    `storescp got ${files.join(", ")}`,
  );
});

test("POST /move to a pynetdicom SCP: the instance arrives with the data set pydicom finds unchanged", async () => {
  const res = await post("/move", {
    identifier: { StudyInstanceUID: { vr: "UI", Value: [CT.study] } },
    destination: "PYSCP",
  });
  assert.equal(res.status, 200, await res.clone().text());
  assert.equal(((await res.json()) as ApiAnswer).completed, 1);
  const got = py.received(CT.sop);
  assert.ok(got, "pynetdicom stored the instance");
  const same = await sameDataset(join(SAMPLES, "CT_small.dcm"), got);
  assert.ok(same.same, same.report);
});

test("POST /move without a destination retrieves to the gateway and answers the instances", async () => {
  const res = await post("/move", { "0020000D": { vr: "UI", Value: [MR.study] } });
  assert.equal(res.status, 200, await res.clone().text());
  const body = (await res.json()) as ApiAnswer;
  assert.equal(body.operation, "move");
  assert.deepEqual(body.instances![0]!["00080018"], { vr: "UI", Value: [MR.sop] });
});

test("refusals are problem+json: bad JSON, unknown tag, no study, oversize, wrong method, other destination", async () => {
  assert.match((await problem(await post("/find", "{nope"), 400)).detail, /not valid JSON/);
  assert.match((await problem(await post("/find", { "99999999": { vr: "LO" } }), 400)).detail, /99999999/);
  assert.match((await problem(await post("/find", [1, 2]), 400)).detail, /JSON object/);
  assert.match((await problem(await post("/get", { PatientID: { Value: ["x"] } }), 400)).detail, /StudyInstanceUID/);
  await problem(await post("/find", { PatientID: { vr: "LO", Value: ["x".repeat(5000)] } }), 413);
  const get = await fetch(dp.url("default", "/dimse/find"));
  await problem(get, 405);
  assert.equal(get.headers.get("allow"), "POST");
  const other = await post("/move", { identifier: { StudyInstanceUID: { Value: [MR.study] } }, destination: "EVIL" });
  assert.match((await problem(other, 403)).detail, /EVIL/);
  // The gateway still serves after all of that.
  assert.equal((await fetch(dp.url("default", "/dimse/echo"))).status, 200);
});

test("DICOMweb GET /studies/{uid} and .../series/{uid} with Accept: application/dicom+json: a QIDO search", async () => {
  const accept = { accept: "application/dicom+json" };
  const study = await fetch(dp.url("default", `/dicomweb/studies/${CT.study}`), { headers: accept });
  assert.equal(study.status, 200, await study.clone().text());
  const studies = (await study.json()) as DicomJson[];
  assert.equal(studies.length, 1);
  assert.deepEqual(studies[0]!["0020000D"], { vr: "UI", Value: [CT.study] });
  assert.equal(studies[0]!["00100020"]!.Value![0], CT.patientId);

  const series = await fetch(dp.url("default", `/dicomweb/studies/${CT.study}/series/${CT.series}`), {
    headers: accept,
  });
  assert.equal(series.status, 200, await series.clone().text());
  const rows = (await series.json()) as DicomJson[];
  assert.equal(rows.length, 1);
  assert.deepEqual(rows[0]!["0020000E"], { vr: "UI", Value: [CT.series] });

  // The instances themselves are still a WADO-RS retrieve.
  const wado = await fetch(dp.url("default", `/dicomweb/studies/${CT.study}`), {
    headers: { accept: 'multipart/related; type="application/dicom"' },
  });
  assert.equal(wado.status, 200);
  assert.match(wado.headers.get("content-type") ?? "", /^multipart\/related/);
});
