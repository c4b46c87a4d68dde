/**
 * DICOMweb through the gateway, against Orthanc with its DICOMweb plugin: STOW, QIDO and WADO by
 * dicomweb-client (a third-party client) and by Orthanc's own DICOMweb client pointed at the
 * gateway; byte-identical retrieves; URLs in DICOM JSON pointing at the gateway; WADO-URI; CORS;
 * and the gateway's own refusals.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import XHR from "xhr2";
import { api } from "dicomweb-client";
import { startOrthanc, SAMPLES, type Orthanc } from "./peers/dicom-peers.js";
import { multipartRelated, splitMultipart, uidsOf } from "./dicom-files.js";
import { baseConfig, startDataplane, writeTree, type Dataplane } from "../dataplane/test/helpers.js";

(globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest = XHR;
/** The calls used here, typed as they behave (the package's own typings mark optional fields required). */
interface DicomwebClient {
  searchForStudies(o: { queryParams?: Record<string, string> }): Promise<DicomJson[]>;
  searchForSeries(o: { studyInstanceUID: string }): Promise<DicomJson[]>;
  retrieveInstance(o: {
    studyInstanceUID: string;
    seriesInstanceUID: string;
    sopInstanceUID: string;
  }): Promise<ArrayBuffer>;
  retrieveStudyMetadata(o: { studyInstanceUID: string }): Promise<DicomJson[]>;
}
const dicomwebClient = (url: string) =>
  new api.DICOMwebClient({ url, verbose: false, singlepart: false }) as unknown as DicomwebClient;

let orthanc: Orthanc;
let dp: Dataplane;
let base: string;
const ct = readFileSync(join(SAMPLES, "CT_small.dcm"));
const mr = readFileSync(join(SAMPLES, "MR_small.dcm"));
const CT = uidsOf(ct);
const MR = uidsOf(mr);
type DicomJson = Record<string, { vr: string; Value?: unknown[]; BulkDataURI?: string }>;

before(async () => {
  orthanc = await startOrthanc();
  const dir = writeTree({
    "config.toml": baseConfig(`
[pipelines.dicomweb]
networks = ["default"]
endpoints = ["dw_in"]
backends = ["orthanc"]

[endpoints.dw_in]
service = "dicomweb"
options = { path_prefix = "/dicomweb", cors_allow_origins = ["https://viewer.example"] }

[backends.orthanc]
service = "dicomweb"
options = { base_url = "${orthanc.dicomweb}", wado_uri_path = "/wado" }

[pipelines.flat]
networks = ["default"]
endpoints = ["flat_in"]
middleware = ["flatten"]
backends = ["orthanc"]

[endpoints.flat_in]
service = "dicomweb"
options = { path_prefix = "/flat" }

[middleware.flatten]
type = "dicom_flatten"
options = { apply = "right", keys = "keyword" }

[pipelines.unflat]
networks = ["default"]
endpoints = ["unflat_in"]
middleware = ["unflatten"]
backends = ["echo"]

[endpoints.unflat_in]
service = "http"
options = { path_prefix = "/unflat" }

[middleware.unflatten]
type = "dicom_unflatten"
options = { apply = "left" }

[backends.echo]
service = "echo"
`),
  });
  dp = await startDataplane(join(dir, "config.toml"));
  base = dp.url("default", "/dicomweb");
});

after(async () => {
  await dp?.stop();
  await orthanc?.stop();
});

test("STOW-RS through the gateway stores; the response's URLs point at the gateway", async () => {
  const { body, contentType } = multipartRelated([ct, mr]);
  const res = await fetch(`${base}/studies`, {
    method: "POST",
    headers: { "content-type": contentType, accept: "application/dicom+json" },
    body,
  });
  assert.equal(res.status, 200);
  const out = (await res.json()) as DicomJson;
  const refs = out["00081199"]!.Value as DicomJson[];
  assert.equal(refs.length, 2);
  for (const r of refs) {
    const url = r["00081190"]!.Value![0] as string;
    assert.ok(url.startsWith(`${base}/studies/`), `RetrieveURL ${url}`);
  }
  // What Orthanc holds now is what we sent.
  const stored = (await (await fetch(`${orthanc.http}/instances`)).json()) as string[];
  assert.equal(stored.length, 2);
});

test("QIDO-RS via dicomweb-client: same answers as Orthanc direct, with the gateway's RetrieveURLs", async () => {
  const client = dicomwebClient(base);
  const studies = await client.searchForStudies({ queryParams: { PatientID: CT.patientId } });
  assert.equal(studies.length, 1);
  assert.equal(studies[0]!["0020000D"]!.Value![0], CT.study);
  assert.equal(studies[0]!["00081190"]!.Value![0], `${base}/studies/${CT.study}`);

  const direct = (await (await fetch(`${orthanc.dicomweb}/studies?PatientID=${CT.patientId}`)).json()) as DicomJson[];
  const normalise = (x: DicomJson[]) => JSON.stringify(x).replaceAll(orthanc.dicomweb, "BASE").replaceAll(base, "BASE");
  assert.equal(normalise(studies), normalise(direct), "differential: the gateway changes nothing but the base");

  const fuzzy = await client.searchForStudies({ queryParams: { PatientName: "comp*" } });
  assert.ok(fuzzy.length >= 1, "wildcard matching passes through");
  const paged = await client.searchForStudies({ queryParams: { limit: "1", offset: "1" } });
  assert.equal(paged.length, 1);
  const series = await client.searchForSeries({ studyInstanceUID: CT.study });
  assert.equal(series[0]!["0020000E"]!.Value![0], CT.series);
  const none = await fetch(`${base}/studies?PatientID=nobody`, { headers: { accept: "application/dicom+json" } });
  assert.equal(none.status, 200);
  assert.deepEqual(await none.json(), []);
});

test("WADO-RS: instances come back byte-identical; metadata BulkDataURIs lead back through the gateway", async () => {
  const client = dicomwebClient(base);
  const inst = await client.retrieveInstance({
    studyInstanceUID: CT.study,
    seriesInstanceUID: CT.series,
    sopInstanceUID: CT.sop,
  });
  assert.ok(Buffer.from(inst).equals(ct), "retrieved instance equals the file stored");

  const study = await fetch(`${base}/studies/${MR.study}`, {
    headers: { accept: 'multipart/related; type="application/dicom"' },
  });
  assert.equal(study.status, 200);
  const parts = splitMultipart(Buffer.from(await study.arrayBuffer()), study.headers.get("content-type")!);
  assert.equal(parts.length, 1);
  assert.ok(parts[0]!.equals(mr));

  const meta = await client.retrieveStudyMetadata({ studyInstanceUID: CT.study });
  const bulk = meta[0]!["7FE00010"]!.BulkDataURI!;
  assert.ok(bulk.startsWith(`${base}/`), `BulkDataURI ${bulk}`);
  const pixels = await fetch(bulk, { headers: { accept: 'multipart/related; type="application/octet-stream"' } });
  assert.equal(pixels.status, 200);
  const px = splitMultipart(Buffer.from(await pixels.arrayBuffer()), pixels.headers.get("content-type")!);
  assert.equal(px[0]!.length, 128 * 128 * 2, "CT_small pixel data: 128×128 16-bit");

  const rendered = await fetch(`${base}/studies/${CT.study}/series/${CT.series}/instances/${CT.sop}/rendered`, {
    headers: { accept: "image/png" },
  });
  assert.equal(rendered.status, 200);
  assert.equal(rendered.headers.get("content-type"), "image/png");
  assert.deepEqual([...Buffer.from(await rendered.arrayBuffer()).subarray(1, 4)], [...Buffer.from("PNG")]);

  const unknown = await fetch(`${base}/studies/1.2.3.4.5`, {
    headers: { accept: 'multipart/related; type="application/dicom"' },
  });
  assert.equal(unknown.status, 404, "Orthanc's 404 passes through");
});

test("WADO-URI goes to the server's WADO service and returns the stored file", async () => {
  const res = await fetch(
    `${base}/wado?requestType=WADO&studyUID=${CT.study}&seriesUID=${CT.series}&objectUID=${CT.sop}&contentType=application/dicom`, // Orthanc does not percent-decode this one
  );
  assert.equal(res.status, 200);
  assert.ok(Buffer.from(await res.arrayBuffer()).equals(ct));
});

test("Orthanc's own DICOMweb client works against the gateway (QIDO, STOW, retrieve)", async () => {
  const put = await fetch(`${orthanc.http}/dicom-web/servers/gateway`, {
    method: "PUT",
    body: JSON.stringify({ Url: `${base}/` }),
  });
  assert.equal(put.status, 200);
  const qido = (await (
    await fetch(`${orthanc.http}/dicom-web/servers/gateway/qido`, {
      method: "POST",
      body: JSON.stringify({ Uri: "/studies", Arguments: { PatientID: CT.patientId } }),
    })
  ).json()) as Record<string, { Value: string }>[]; // Orthanc's own simplified DICOM JSON
  assert.equal(qido.length, 1);
  assert.equal(qido[0]!["0020000D"]!.Value, CT.study);

  const ids = (await (await fetch(`${orthanc.http}/instances`)).json()) as string[];
  const stow = await fetch(`${orthanc.http}/dicom-web/servers/gateway/stow`, {
    method: "POST",
    body: JSON.stringify({ Resources: ids, Synchronous: true }),
  });
  assert.equal(stow.status, 200, await stow.clone().text());

  const retrieve = (await (
    await fetch(`${orthanc.http}/dicom-web/servers/gateway/retrieve`, {
      method: "POST",
      body: JSON.stringify({ Resources: [{ Study: MR.study }], Synchronous: true }),
    })
  ).json()) as { ReceivedInstancesCount: number | string };
  assert.equal(Number(retrieve.ReceivedInstancesCount), 1);
});

test("CORS: preflight answered by the gateway for allowed origins only; responses carry the header", async () => {
  const pre = await fetch(`${base}/studies`, {
    method: "OPTIONS",
    headers: { origin: "https://viewer.example", "access-control-request-method": "POST" },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get("access-control-allow-origin"), "https://viewer.example");
  assert.match(pre.headers.get("access-control-allow-methods") ?? "", /POST/);
  assert.match(pre.headers.get("allow") ?? "", /GET, HEAD, POST, OPTIONS/);

  const other = await fetch(`${base}/studies`, {
    method: "OPTIONS",
    headers: { origin: "https://evil.example", "access-control-request-method": "GET" },
  });
  assert.equal(other.status, 204);
  assert.equal(other.headers.get("access-control-allow-origin"), null);

  const get = await fetch(`${base}/studies`, { headers: { origin: "https://viewer.example" } });
  assert.equal(get.status, 200);
  assert.equal(get.headers.get("access-control-allow-origin"), "https://viewer.example");
  assert.equal(get.headers.get("vary"), "origin");
});

test("the gateway refuses what is not DICOMweb: 404, 405 with Allow, 415", async () => {
  const nf = await fetch(`${base}/patients`);
  assert.equal(nf.status, 404);
  assert.equal(nf.headers.get("content-type"), "application/problem+json");
  const put = await fetch(`${base}/studies/${CT.study}`, { method: "PUT", body: "x" });
  assert.equal(put.status, 405);
  assert.equal(put.headers.get("allow"), "GET, HEAD, POST, OPTIONS");
  const series = await fetch(`${base}/studies/${CT.study}/series`, { method: "POST", body: "x" });
  assert.equal(series.status, 405);
  assert.equal(series.headers.get("allow"), "GET, HEAD, OPTIONS");
  const bad = await fetch(`${base}/studies`, { method: "POST", headers: { "content-type": "text/plain" }, body: "x" });
  assert.equal(bad.status, 415);
});

test("dicom_flatten turns QIDO results into flat keyword maps; dicom_unflatten turns them back", async () => {
  const flat = (await (await fetch(dp.url("default", `/flat/studies?PatientID=${CT.patientId}`))).json()) as Record<
    string,
    unknown
  >[];
  assert.equal(flat.length, 1);
  assert.equal(flat[0]!.PatientID, CT.patientId);
  assert.equal(flat[0]!.StudyInstanceUID, CT.study);
  assert.equal(flat[0]!.PatientName, "CompressedSamples^CT1", "person names by their Alphabetic form");
  assert.equal(flat[0]!.RetrieveURL, `${dp.url("default", "/flat")}/studies/${CT.study}`);

  const back = await fetch(dp.url("default", "/unflat/x"), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ PatientID: "P1", PatientName: "Doe^Jane", "00080061": ["CT", "MR"], StudyDate: null }),
  });
  assert.equal(back.status, 200);
  const echoed = ((await back.json()) as { json: DicomJson }).json;
  assert.deepEqual(echoed, {
    "00100020": { vr: "LO", Value: ["P1"] },
    "00100010": { vr: "PN", Value: [{ Alphabetic: "Doe^Jane" }] },
    "00080061": { vr: "CS", Value: ["CT", "MR"] },
    "00080020": { vr: "DA" },
  });
  const bad = await fetch(dp.url("default", "/unflat/x"), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ NotAThing: 1 }),
  });
  assert.equal(bad.status, 400);
  assert.match(((await bad.json()) as { detail: string }).detail, /NotAThing/);
});
