/**
 * DICOM JSON (PS3.18 Annex F) and character sets against independent peers (issue 13): empty
 * values, empty values among several, ISO 2022 code extensions (Japanese, Korean) decoded to
 * Unicode, and C-FIND responses whose SpecificCharacterSet says how their bytes are encoded.
 * Instances are made by pydicom, held by Orthanc; queries come from pynetdicom. Also the C-FIND
 * items of the issue's DIMSE part: the query models' levels and return keys reaching the origin.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { startOrthanc, SAMPLES, type Orthanc } from "./peers/dicom-peers.js";
import { python } from "./peers/pynetdicom.js";
import dcmjs from "dcmjs";
import { splitMultipart } from "./dicom-files.js";
import { baseConfig, freePort, startDataplane, tempDir, writeTree, type Dataplane } from "../dataplane/test/helpers.js";

type DicomJson = Record<string, { vr: string; Value?: unknown[] }>;
interface Made {
  study: string;
  series: string;
  sop: string;
}
interface FindResult {
  responses: { status: number; charset?: string | string[]; identifier?: DicomJson }[];
}

let orthanc: Orthanc;
let dp: Dataplane;
let pacs: string;
let proxyPort: number; // SCP → `dicom` backend → Orthanc DIMSE
let webPort: number; // SCP → `dicomweb` backend → Orthanc DICOMweb
let jp: Made;
let kr: Made;
let de: Made;
let ct: Made & { file: string };
const JAPANESE = { Alphabetic: "Yamada^Tarou", Ideographic: "山田^太郎", Phonetic: "やまだ^たろう" }; // PS3.5 H.3.1
const KOREAN = { Alphabetic: "Hong^Gildong", Ideographic: "洪^吉洞", Phonetic: "홍^길동" }; // PS3.5 I.2

async function make(name: string, attrs: string[], sample = "MR_small.dcm"): Promise<Made & { file: string }> {
  const out = join(tempDir("harmony-json-"), `${name}.dcm`);
  const r = await python("make_instance.py", [name, join(SAMPLES, sample), out, ...attrs]);
  assert.equal(r.code, 0, r.err);
  const res = await fetch(`${orthanc.http}/instances`, { method: "POST", body: readFileSync(out) });
  assert.equal(res.status, 200, await res.text());
  return { ...(JSON.parse(r.out) as Made), file: out };
}

async function find(port: number, aet: string, keys: string[]): Promise<FindResult> {
  const r = await python("find_scu.py", ["127.0.0.1", String(port), aet, ...keys]);
  assert.equal(r.code, 0, r.err + r.out);
  return JSON.parse(r.out) as FindResult;
}

before(async () => {
  orthanc = await startOrthanc();
  jp = await make("json-jp", [
    "SpecificCharacterSet=\\ISO 2022 IR 87",
    `PatientName=${Object.values(JAPANESE).join("=")}`,
    "PatientID=JSON-JP",
    "ImageType=ORIGINAL\\\\AXIAL",
    "InstanceNumber=",
    "SliceThickness=",
  ]);
  kr = await make("json-kr", [
    "SpecificCharacterSet=\\ISO 2022 IR 149",
    `PatientName=${Object.values(KOREAN).join("=")}`,
    "PatientID=JSON-KR",
  ]);
  // Orthanc keeps Latin-1 in its index (Japanese does not survive it), so the origin-facing check uses this one.
  de = await make("json-de", [
    "SpecificCharacterSet=ISO_IR 100",
    "PatientName=Müller^Jürgen",
    "PatientID=JSON-DE",
    "StudyDescription=Conformance",
    "InstitutionName=Harmony Hospital",
  ]);
  ct = await make("json-ct", [], "CT_small.dcm"); // GE private elements, 16-bit pixel data
  proxyPort = await freePort();
  webPort = await freePort();
  const dicomBackend = `service = "dicom"
options = { host = "127.0.0.1", port = ${orthanc.dicomPort}, aet = "${orthanc.aet}", local_aet = "HARMONY" }`;
  const dir = writeTree({
    "config.toml": baseConfig(`
[pipelines.pacs]
networks = ["default"]
endpoints = ["pacs_in"]
backends = ["pacs_out"]

[endpoints.pacs_in]
service = "dicomweb"
options = { path_prefix = "/pacs" }

[backends.pacs_out]
${dicomBackend}

[pipelines.proxy]
endpoints = ["scp_proxy"]
backends = ["proxy_out"]

[endpoints.scp_proxy]
service = "dicom"
options = { port = ${proxyPort}, bind_address = "127.0.0.1", local_aet = "HARMONY_PROXY" }

[backends.proxy_out]
${dicomBackend}

[pipelines.web]
endpoints = ["scp_web"]
backends = ["web_out"]

[endpoints.scp_web]
service = "dicom"
options = { port = ${webPort}, bind_address = "127.0.0.1", local_aet = "HARMONY_WEB" }

[backends.web_out]
service = "dicomweb"
options = { base_url = "${orthanc.dicomweb}" }
`),
  });
  dp = await startDataplane(join(dir, "config.toml"));
  await dp.waitForLog((l) => l.message === "DICOM listener started" && l.port === proxyPort);
  await dp.waitForLog((l) => l.message === "DICOM listener started" && l.port === webPort);
  pacs = dp.url("default", "/pacs");
});

after(async () => {
  await dp?.stop();
  await orthanc?.stop();
});

test("metadata via C-GET: an empty value among several is null in its place, an empty attribute has no Value", async () => {
  const res = await fetch(`${pacs}/studies/${jp.study}/series/${jp.series}/instances/${jp.sop}/metadata`);
  assert.equal(res.status, 200);
  const [ds] = (await res.json()) as DicomJson[];
  assert.deepEqual(ds!["00080008"], { vr: "CS", Value: ["ORIGINAL", null, "AXIAL"] });
  assert.deepEqual(ds!["00200013"], { vr: "IS" }); // InstanceNumber, zero length
  assert.deepEqual(ds!["00180050"], { vr: "DS" }); // SliceThickness, zero length
});

test("metadata via C-GET: ISO 2022 IR 87 and IR 149 person names come out as Unicode", async () => {
  for (const [made, name] of [
    [jp, JAPANESE],
    [kr, KOREAN],
  ] as const) {
    const res = await fetch(`${pacs}/studies/${made.study}/metadata`);
    assert.equal(res.status, 200);
    const [ds] = (await res.json()) as DicomJson[];
    assert.deepEqual(ds!["00100010"]?.Value, [name]);
    assert.equal(JSON.stringify(ds).includes("\\u001b"), false, "no escape sequence left in the JSON");
  }
});

test("C-FIND through the SCP → dicom backend proxy with zero-length IS/DS return keys succeeds", async () => {
  const r = await find(proxyPort, "HARMONY_PROXY", [
    "QueryRetrieveLevel=IMAGE",
    `StudyInstanceUID=${jp.study}`,
    `SeriesInstanceUID=${jp.series}`,
    `SOPInstanceUID=${jp.sop}`,
    "InstanceNumber=",
    "SliceThickness=",
  ]);
  const statuses = r.responses.map((x) => x.status);
  assert.deepEqual(statuses, [0xff00, 0x0000], JSON.stringify(r));
  const id = r.responses[0]!.identifier!;
  assert.equal(id["00080018"]?.Value?.[0], jp.sop);
  assert.equal(id["00200013"]?.Value, undefined); // present, empty
});

test("C-FIND responses through the SCP declare the character set their bytes are in", async () => {
  for (const [port, aet] of [
    [webPort, "HARMONY_WEB"],
    [proxyPort, "HARMONY_PROXY"],
  ] as const) {
    // The SCU asks for SpecificCharacterSet, as many do; the origin's (ISO_IR 100) must not be
    // passed on over values the gateway writes in UTF-8.
    const r = await find(port, aet, [
      "QueryRetrieveLevel=STUDY",
      `StudyInstanceUID=${de.study}`,
      "SpecificCharacterSet=",
      "PatientName=",
    ]);
    assert.deepEqual(
      r.responses.map((x) => x.status),
      [0xff00, 0x0000],
      JSON.stringify(r),
    );
    // pydicom decodes with the declared SpecificCharacterSet: mojibake if it lies.
    const pn = r.responses[0]!.identifier!["00100010"]?.Value?.[0] as { Alphabetic?: string } | undefined;
    assert.equal(pn?.Alphabetic, "Müller^Jürgen", `${aet}: ${JSON.stringify(r.responses[0])}`);
  }
});

test("Study Root C-FIND at PATIENT level is refused (0xA900); Patient Root still answers", async () => {
  const study = await find(webPort, "HARMONY_WEB", ["QueryRetrieveLevel=PATIENT", "PatientID=JSON-DE"]);
  assert.deepEqual(
    study.responses.map((x) => x.status),
    [0xa900],
    JSON.stringify(study),
  );
  const patient = await find(webPort, "HARMONY_WEB", [
    "--patient-root",
    "QueryRetrieveLevel=PATIENT",
    "PatientID=JSON-DE",
    "PatientName=",
  ]);
  assert.deepEqual(
    patient.responses.map((x) => x.status),
    [0xff00, 0x0000],
    JSON.stringify(patient),
  );
});

test("C-FIND return keys reach a DICOMweb origin as repeated includefield parameters", async () => {
  const r = await find(webPort, "HARMONY_WEB", [
    "QueryRetrieveLevel=STUDY",
    `StudyInstanceUID=${de.study}`,
    "StudyDescription=",
    "InstitutionName=",
  ]);
  assert.deepEqual(
    r.responses.map((x) => x.status),
    [0xff00, 0x0000],
    JSON.stringify(r),
  );
  const id = r.responses[0]!.identifier!;
  assert.deepEqual(id["00081030"]?.Value, ["Conformance"], JSON.stringify(id));
  assert.deepEqual(id["00080080"]?.Value, ["Harmony Hospital"], JSON.stringify(id));
});

test("metadata via C-GET keeps private elements and gives BulkDataURIs the gateway serves", async () => {
  const res = await fetch(`${pacs}/studies/${ct.study}/series/${ct.series}/instances/${ct.sop}/metadata`);
  assert.equal(res.status, 200);
  const [ds] = (await res.json()) as (DicomJson & Record<string, { BulkDataURI?: string }>)[];
  const file = readFileSync(ct.file);
  const { dict } = dcmjs.data.DicomMessage.readFile(
    file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength),
  );
  const privateTags = Object.keys(dict).filter((t) => parseInt(t.slice(0, 4), 16) % 2 === 1);
  assert.ok(privateTags.length > 10);
  for (const t of privateTags) assert.ok(ds![t], `private ${t} kept`);
  assert.deepEqual(ds!["00090010"]?.Value, ["GEMS_IDEN_01"]);
  const uri = ds!["7FE00010"]?.BulkDataURI;
  assert.ok(uri?.startsWith(pacs), JSON.stringify(ds!["7FE00010"]));
  const bulk = await fetch(uri!);
  assert.equal(bulk.status, 200);
  assert.match(bulk.headers.get("content-type") ?? "", /^multipart\/related; type="application\/octet-stream"/);
  const [pixels] = splitMultipart(Buffer.from(await bulk.arrayBuffer()), bulk.headers.get("content-type")!);
  const expected = Buffer.from((dict["7FE00010"]!.Value as ArrayBuffer[])[0]!);
  assert.ok(pixels?.equals(expected), `pixel data: ${pixels?.length} bytes, expected ${expected.length}`);
});
