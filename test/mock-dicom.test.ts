/**
 * `mock_dicom`, Harmony's fixed test PACS, in the configs Harmony wrote for it: the DICOMweb
 * bridge (a `dicomweb` endpoint, `dicomweb_bridge` middleware and the `[services.*]` /
 * `[middleware_types.*]` tables of the 0.4 layout) answering QIDO-RS and WADO-RS metadata with the
 * expected UIDs; the JSON API behind an `http` endpoint (echo, find by DICOM JSON identifier, get,
 * the mock's frame error); and, this build's addition, a C-FIND from dcmtk's findscu to a `dicom`
 * endpoint in front of it.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { dcmtk } from "./peers/dicom-peers.js";
import { baseConfig, freePort, http, startDataplane, writeTree, type Dataplane } from "../dataplane/test/helpers.js";

const STUDY = "1.2.826.0.1.3680043.9.7133.3280065491876470";
const SERIES_1 = "1.2.826.0.1.3680043.9.7133.1734441961856038";
const SOP_1_1 = "1.2.826.0.1.3680043.9.7133.2677554575065585";

let dp: Dataplane;
let scpPort: number;

before(async () => {
  scpPort = await freePort();
  const dir = writeTree({
    "config.toml": baseConfig(`
[pipelines.dicomweb_bridge]
description = "DICOMweb to DIMSE bridge with mock backend"
networks = ["default"]
endpoints = ["dicomweb"]
middleware = ["dicomweb_bridge"]
backends = ["mock_dicom_backend"]

[endpoints.dicomweb]
service = "dicomweb"
[endpoints.dicomweb.options]
path_prefix = "/dicomweb"

[backends.mock_dicom_backend]
service = "mock_dicom"

[services.dicomweb]
module = ""
[services.mock_dicom]
module = ""

[middleware_types.dicomweb_bridge]
module = ""

[pipelines.json_api]
networks = ["default"]
endpoints = ["http_to_dicom"]
middleware = []
backends = ["dicom_backend"]

[endpoints.http_to_dicom]
service = "http"
[endpoints.http_to_dicom.options]
path_prefix = "/dicom"

[backends.dicom_backend]
service = "mock_dicom"

[pipelines.scp]
networks = ["default"]
endpoints = ["scp_in"]
backends = ["mock_pacs"]

[endpoints.scp_in]
service = "dicom_scp"
options = { local_aet = "HARMONY", bind_address = "127.0.0.1", port = ${scpPort} }

[backends.mock_pacs]
service = "mock_dicom"
`),
  });
  dp = await startDataplane(join(dir, "config.toml"));
  await dp.waitForLog((l) => l.message === "DICOM listener started" && l.port === scpPort);
});

after(async () => {
  await dp?.stop();
});

type Ds = Record<string, { Value?: unknown[] }>;
const uids = (r: { json: () => unknown }, tag: string) => (r.json() as Ds[]).map((d) => d[tag]?.Value?.[0]);

test("QIDO-RS over the mock: studies, by PatientID, series, by Modality, instances, by InstanceNumber", async () => {
  const get = (p: string) =>
    http(dp.url("default", `/dicomweb${p}`), { headers: { accept: "application/dicom+json" } });
  const studies = await get("/studies");
  assert.equal(studies.status, 200, studies.text);
  assert.equal(studies.headers["content-type"], "application/dicom+json");
  assert.deepEqual(uids(studies, "0020000D"), [STUDY]);
  assert.deepEqual(uids(await get("/studies?PatientID=PID156695"), "0020000D"), [STUDY]);
  assert.equal((await get("/studies?PatientID=nobody")).status, 204);
  const series = await get(`/studies/${STUDY}/series`);
  assert.equal(uids(series, "0020000E").length, 3);
  assert.equal(uids(await get(`/studies/${STUDY}/series?Modality=CT`), "0020000E").length, 3);
  assert.equal((await get(`/studies/${STUDY}/series?Modality=MR`)).status, 204);
  const instances = await get(`/studies/${STUDY}/series/${SERIES_1}/instances`);
  assert.equal(uids(instances, "00080018").length, 5);
  assert.deepEqual(uids(await get(`/studies/${STUDY}/series/${SERIES_1}/instances?InstanceNumber=1`), "00080018"), [
    SOP_1_1,
  ]);
  assert.equal(uids(await get(`/studies/${STUDY}/instances?limit=4&offset=10`), "00080018").length, 4);
});

test("WADO-RS metadata of the mock study; no pixel data (404) and no stores (405)", async () => {
  const meta = await http(dp.url("default", `/dicomweb/studies/${STUDY}/metadata`));
  assert.equal(meta.status, 200, meta.text);
  assert.equal(uids(meta, "00080018").length, 15);
  assert.equal((await http(dp.url("default", `/dicomweb/studies/1.2.3/metadata`))).status, 404);
  const inst = await http(dp.url("default", `/dicomweb/studies/${STUDY}/series/${SERIES_1}/instances/${SOP_1_1}`));
  assert.equal(inst.status, 404);
  assert.match(String(inst.headers["content-type"]), /problem\+json/);
});

test("the JSON API: echo, find by DICOM JSON identifier, get, the frame error, an unknown operation", async () => {
  const echo = await http(dp.url("default", "/dicom/echo"));
  assert.deepEqual(echo.json(), {
    operation: "echo",
    success: true,
    remote_aet: "MOCK_DICOM",
    host: "mock",
    port: 11112,
  });
  const find = await http(dp.url("default", "/dicom/find"), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ "0020000D": { vr: "UI", Value: [STUDY] }, "0020000E": { vr: "UI", Value: [] } }),
  });
  assert.equal(find.status, 200, find.text);
  const f = find.json() as { operation: string; success: boolean; matches: Ds[] };
  assert.equal(f.operation, "find");
  assert.equal(f.matches.length, 3, "series level: a study filter and a series return key");
  const wrapped = await http(dp.url("default", "/dicom/find"), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      identifier: { "00100020": { vr: "LO", Value: ["PID156695"] }, "0020000D": { vr: "UI", Value: [] } },
    }),
  });
  assert.deepEqual(
    (wrapped.json() as { matches: Ds[] }).matches.map((m) => m["0020000D"]?.Value?.[0]),
    [STUDY],
  );
  const get = await http(dp.url("default", "/dicom/get"));
  assert.equal((get.json() as { success: boolean }).success, true);
  const frame = await http(dp.url("default", "/dicom/get/frames/9999"));
  assert.equal(frame.status, 500);
  assert.deepEqual(frame.json(), { operation: "get", success: false, error: "Frame number out of range" });
  const bad = await http(dp.url("default", "/dicom/move"), { method: "POST", body: "{}" });
  assert.equal(bad.status, 400);
  assert.match(bad.text, /Unsupported operation: move/);
});

test("findscu's C-FIND through a dicom endpoint is answered from the mock", async () => {
  const r = await dcmtk("findscu", [
    "-S",
    "-aet",
    "FINDSCU",
    "-aec",
    "HARMONY",
    "-k",
    "QueryRetrieveLevel=SERIES",
    "-k",
    `StudyInstanceUID=${STUDY}`,
    "-k",
    "SeriesInstanceUID",
    "-k",
    "SeriesDescription",
    "127.0.0.1",
    String(scpPort),
  ]);
  assert.equal(r.code, 0, r.out);
  for (const n of [1, 2, 3]) assert.match(r.out, new RegExp(`Series ${n}`));
});
