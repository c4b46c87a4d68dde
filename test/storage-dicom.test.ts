/**
 * DICOM into a `storage` backend, with independent peers: C-STORE from dcmtk's storescu and from
 * pynetdicom (Implicit VR Little Endian only) to a `dicom` endpoint, and STOW-RS from
 * dicomweb-client to a `dicomweb` endpoint, each written as {StudyInstanceUID}/{SOPInstanceUID}.dcm
 * (`write_pattern = "{file}"`, Harmony's cstore-filesystem example) and read back over HTTP
 * through a second pipeline on the same root.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { SAMPLES, dcmtk } from "./peers/dicom-peers.js";
import { python } from "./peers/pynetdicom.js";
import { uidsOf } from "./dicom-files.js";
import {
  baseConfig,
  freePort,
  http,
  startDataplane,
  tempDir,
  writeTree,
  type Dataplane,
} from "../dataplane/test/helpers.js";

const CT_FILE = join(SAMPLES, "CT_small.dcm");
const MR_FILE = join(SAMPLES, "MR_small.dcm");
const CT = uidsOf(readFileSync(CT_FILE));
const MR = uidsOf(readFileSync(MR_FILE));

let dp: Dataplane;
let scpPort: number;
let root: string;

const reader = (name: string, prefix: string, dir: string) => `
[pipelines.${name}]
networks = ["default"]
endpoints = ["${name}_in"]
backends = ["${name}_out"]

[endpoints.${name}_in]
service = "http"
options = { path_prefix = "${prefix}" }

[backends.${name}_out]
service = "storage"
options = { root = "${dir}" }
`;

before(async () => {
  root = tempDir("harmony-storage-dicom-");
  scpPort = await freePort();
  const dir = writeTree({
    "config.toml": baseConfig(`
[pipelines.dicom_ingest]
networks = ["default"]
endpoints = ["dicom_listener"]
backends = ["filesystem_storage"]

[endpoints.dicom_listener]
service = "dicom_scp"
[endpoints.dicom_listener.options]
local_aet = "HARMONY_SCP"
bind_address = "127.0.0.1"
port = ${scpPort}
enable_echo = true
enable_store = true

[backends.filesystem_storage]
service = "storage"
[backends.filesystem_storage.options]
root = "${root}/archive"
write_pattern = "{file}"

[pipelines.stow]
networks = ["default"]
endpoints = ["stow_in"]
backends = ["stow_storage"]

[endpoints.stow_in]
service = "dicomweb"
options = { path_prefix = "/dicomweb" }

[backends.stow_storage]
service = "storage"
options = { root = "${root}/stow", write_pattern = "{file}" }
${reader("archive", "/archive", `${root}/archive`)}
${reader("stowed", "/stowed", `${root}/stow`)}
`),
  });
  dp = await startDataplane(join(dir, "config.toml"));
  await dp.waitForLog((l) => l.message === "DICOM listener started" && l.port === scpPort);
});

after(async () => {
  await dp?.stop();
});

async function readBack(prefix: string, u: { study: string; sop: string }): Promise<Buffer> {
  const r = await http(dp.url("default", `${prefix}/${u.study}/${u.sop}.dcm`));
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers["content-type"], "application/dicom");
  return r.body;
}

test("C-STORE from storescu is written as {study}/{sop}.dcm and read back over HTTP", async () => {
  const r = await dcmtk("storescu", ["-aet", "STORESCU", "-aec", "HARMONY_SCP", "127.0.0.1", String(scpPort), MR_FILE]);
  assert.equal(r.code, 0, r.out);
  assert.deepEqual(readdirSync(join(root, "archive", MR.study)), [`${MR.sop}.dcm`], "one file, no temporary left");
  const body = await readBack("/archive", MR);
  // storescu may re-encode to the syntax accepted: compared by identity, and dcmtk must read the file.
  assert.deepEqual(uidsOf(body), MR);
  assert.equal((await dcmtk("dcmftest", [join(root, "archive", MR.study, `${MR.sop}.dcm`)])).code, 0);
});

test("C-STORE from pynetdicom (Implicit VR Little Endian only) lands the same way", async () => {
  const r = await python("store_scu.py", ["127.0.0.1", String(scpPort), "HARMONY_SCP", CT_FILE]);
  assert.equal(r.code, 0, r.err);
  const out = JSON.parse(r.out) as { statuses: Record<string, number> };
  assert.deepEqual(out.statuses, { [CT.sop]: 0 });
  assert.deepEqual(uidsOf(await readBack("/archive", CT)), CT);
  const same = await python("same_dataset.py", [CT_FILE, join(root, "archive", CT.study, `${CT.sop}.dcm`)]);
  assert.equal(same.code, 0, same.out + same.err);
});

test("STOW-RS from dicomweb-client writes each instance; the response references them; GET reads them back", async () => {
  const work = tempDir("harmony-storage-study-");
  const made = await python("make_study.py", ["storage-stow", work, CT_FILE, MR_FILE]);
  assert.equal(made.code, 0, made.err);
  const study = JSON.parse(made.out) as { study: string; instances: { file: string; sop: string }[] };
  const r = await python("stow_scu.py", [dp.url("default", "/dicomweb"), ...study.instances.map((i) => i.file)]);
  assert.equal(r.code, 0, r.err);
  const out = JSON.parse(r.out) as { stored: string[]; urls: string[]; failed: number };
  assert.deepEqual(out.stored.sort(), study.instances.map((i) => i.sop).sort());
  assert.equal(out.failed, 0);
  assert.deepEqual(
    readdirSync(join(root, "stow", study.study)).sort(),
    study.instances.map((i) => `${i.sop}.dcm`).sort(),
  );
  for (const i of study.instances) {
    const body = await readBack("/stowed", { study: study.study, sop: i.sop });
    assert.deepEqual(body, readFileSync(i.file), "STOW-RS keeps the bytes as sent");
  }
});

test("a STOW-RS part that is not DICOM is refused in FailedSOPSequence, the rest stored (202)", async () => {
  const b = "harmony-test-boundary";
  const body = Buffer.concat([
    Buffer.from(`--${b}\r\nContent-Type: application/dicom\r\n\r\n`),
    readFileSync(CT_FILE),
    Buffer.from(`\r\n--${b}\r\nContent-Type: application/dicom\r\n\r\nnot a DICOM file\r\n--${b}--\r\n`),
  ]);
  const r = await http(dp.url("default", "/dicomweb/studies"), {
    method: "POST",
    headers: { "content-type": `multipart/related; type="application/dicom"; boundary=${b}` },
    body,
  });
  assert.equal(r.status, 202, r.text);
  const j = r.json() as Record<string, { Value: Record<string, { Value?: unknown[] }>[] }>;
  assert.equal(j["00081199"]!.Value[0]!["00081155"]!.Value![0], CT.sop);
  assert.equal(j["00081198"]!.Value[0]!["00081197"]!.Value![0], 0xc000);
});

test("STOW-RS to /studies/{study} refuses instances of another study (0xA900) and writes none of them", async () => {
  const b = "harmony-test-boundary-2";
  const r = await http(dp.url("default", `/dicomweb/studies/${CT.study}`), {
    method: "POST",
    headers: { "content-type": `multipart/related; type="application/dicom"; boundary=${b}` },
    body: Buffer.concat([
      Buffer.from(`--${b}\r\nContent-Type: application/dicom\r\n\r\n`),
      readFileSync(MR_FILE),
      Buffer.from(`\r\n--${b}--\r\n`),
    ]),
  });
  assert.equal(r.status, 409, r.text);
  const j = r.json() as Record<string, { Value: Record<string, { Value?: unknown[] }>[] }>;
  assert.equal(j["00081198"]!.Value[0]!["00081197"]!.Value![0], 0xa900);
  assert.ok(!readdirSync(join(root, "stow")).includes(MR.study), "the other study's instance was not written");
});
