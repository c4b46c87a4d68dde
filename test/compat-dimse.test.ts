/**
 * Harmony 0.13 connections over DIMSE, with dcmtk on both sides: the fixture's `dicom_scu` backend
 * reaches dcmqrscp through `target_ref` (QIDO-RS → C-FIND), and its SCP on the DIMSE-only network
 * (bound through `peer_ref`) answers findscu with what the target holds.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startDcmqrscp, SAMPLES, type Dcmqrscp } from "./peers/dicom-peers.js";
import { uidsOf } from "./dicom-files.js";
import { freePort, startDataplane, type Dataplane } from "../dataplane/test/helpers.js";
import { fixture013 } from "../dataplane/test/fixture-013.js";

const CT_FILE = join(SAMPLES, "CT_small.dcm");
const CT = uidsOf(readFileSync(CT_FILE));
type DicomJson = Record<string, { Value?: string[] }>;

let qr: Dcmqrscp;
let dp: Dataplane;
let peerPort: number;

before(async () => {
  qr = await startDcmqrscp();
  const stored = spawnSync("storescu", ["-aec", qr.aet, "127.0.0.1", String(qr.port), CT_FILE]);
  assert.equal(stored.status, 0, String(stored.stderr));
  peerPort = await freePort();
  const dir = fixture013([
    ["bind_port = 8080", "bind_port = 0"],
    ["connection.port = 4242", `connection.port = ${qr.port}`],
    ['aet = "ORTHANC"', `aet = "${qr.aet}"`],
    ["connection.port = 11113", `connection.port = ${peerPort}`],
    ["bind_port = 11112", `bind_port = ${await freePort()}`],
  ]);
  dp = await startDataplane(join(dir, "config.toml"));
});

after(async () => {
  await dp?.stop();
  await qr?.stop();
});

test("a dicom backend with target_ref: QIDO-RS becomes a C-FIND at the target's host and port", async () => {
  const res = await fetch(dp.url("http_net", `/pacs/studies?PatientID=${CT.patientId}`), {
    headers: { accept: "application/dicom+json" },
  });
  assert.equal(res.status, 200, await res.clone().text());
  const studies = (await res.json()) as DicomJson[];
  assert.equal(studies.length, 1);
  assert.equal(studies[0]!["0020000D"]!.Value![0], CT.study);
});

test("the peer_ref SCP on the DIMSE-only network answers findscu from the target", () => {
  const r = spawnSync("findscu", [
    "-S",
    "-aec",
    "HARMONY_SCP",
    "-k",
    "QueryRetrieveLevel=STUDY",
    "-k",
    "StudyInstanceUID",
    "-k",
    `PatientID=${CT.patientId}`,
    "127.0.0.1",
    String(peerPort),
  ]);
  const out = `${String(r.stdout)}${String(r.stderr)}`;
  assert.equal(r.status, 0, out);
  assert.match(out, new RegExp(CT.study.replaceAll(".", "\\.")));
});
