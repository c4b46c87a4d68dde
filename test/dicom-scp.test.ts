/**
 * The gateway as a DIMSE SCP (`dicom` endpoint), driven by dcmtk's SCU tools and by Orthanc as a
 * modality: C-ECHO, C-FIND (study, patient), C-STORE, C-GET, C-MOVE. Behind it: Orthanc over
 * DICOMweb (the modality → DICOMweb bridge) and dcmqrscp over DIMSE (a DIMSE proxy). Unknown AE
 * titles and malformed PDUs are refused without taking the gateway down.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import {
  dcmtk,
  echo,
  startDcmqrscp,
  startOrthanc,
  startStorescp,
  startWorklist,
  SAMPLES,
  type Dcmqrscp,
  type Orthanc,
  type StoreScp,
  type Worklist,
} from "./peers/dicom-peers.js";
import { uidsOf } from "./dicom-files.js";
import { baseConfig, freePort, startDataplane, tempDir, writeTree, type Dataplane } from "../dataplane/test/helpers.js";
import { parsePart10 } from "../dataplane/src/protocols/part10.js";

let orthanc: Orthanc;
let qr: Dcmqrscp;
let storescp: StoreScp;
let wl: Worklist;
let wlPort: number; // SCP → wlmscpfs, C-ECHO passed on
let deadEchoPort: number; // SCP → a peer that is not there, C-ECHO passed on
let dp: Dataplane;
let webPort: number; // SCP → Orthanc over DICOMweb
let proxyPort: number; // SCP → dcmqrscp over DIMSE
const CT_FILE = join(SAMPLES, "CT_small.dcm");
const MR_FILE = join(SAMPLES, "MR_small.dcm");
const CT = uidsOf(readFileSync(CT_FILE));
const MR = uidsOf(readFileSync(MR_FILE));

const at = (port: number) => ["127.0.0.1", String(port)];

function dciodvfyErrors(file: string): Promise<string[]> {
  return dcmtk("dciodvfy", [file]).then((r) => r.out.split("\n").filter((l) => /^Error/.test(l)));
}

function withoutTrailingPadding(ds: Buffer): Buffer {
  const i = ds.lastIndexOf(Buffer.from("fcfffcff4f420000", "hex"));
  return i >= 0 && i + 12 + ds.readUInt32LE(i + 8) === ds.length ? ds.subarray(0, i) : ds;
}

before(async () => {
  orthanc = await startOrthanc();
  qr = await startDcmqrscp();
  storescp = await startStorescp();
  wl = await startWorklist();
  wlPort = await freePort();
  deadEchoPort = await freePort();
  const deadPort = await freePort();
  assert.equal((await fetch(`${orthanc.http}/instances`, { method: "POST", body: readFileSync(MR_FILE) })).status, 200);
  webPort = await freePort();
  proxyPort = await freePort();
  const dir = writeTree({
    "config.toml": baseConfig(`
[pipelines.modality_to_web]
endpoints = ["scp_web"]
backends = ["orthanc_web"]

[endpoints.scp_web]
service = "dicom"
[endpoints.scp_web.options]
port = ${webPort}
bind_address = "127.0.0.1"
local_aet = "HARMONY"
allowed_aets = ["FINDSCU", "STORESCU", "GETSCU", "MOVESCU", "ECHOSCU", "ORTHANC"]
peers = { STORESCP = "127.0.0.1:${storescp.port}" }

[backends.orthanc_web]
service = "dicomweb"
options = { base_url = "${orthanc.dicomweb}" }

[pipelines.dimse_proxy]
endpoints = ["scp_proxy"]
backends = ["qr"]

[endpoints.scp_proxy]
service = "dicom"
options = { port = ${proxyPort}, bind_address = "127.0.0.1", local_aet = "HARMONY_QR" }

[backends.qr]
service = "dicom"
options = { host = "127.0.0.1", port = ${qr.port}, aet = "${qr.aet}", local_aet = "HARMONY" }

[pipelines.worklist]
endpoints = ["scp_wl"]
backends = ["wl"]

[endpoints.scp_wl]
service = "dicom"
options = { port = ${wlPort}, bind_address = "127.0.0.1", local_aet = "HARMONY_WL", echo = "upstream" }

[backends.wl]
service = "dicom"
options = { host = "127.0.0.1", port = ${wl.port}, aet = "${wl.aet}" }

[pipelines.dead_echo]
endpoints = ["scp_dead"]
backends = ["nobody"]

[endpoints.scp_dead]
service = "dicom"
options = { port = ${deadEchoPort}, bind_address = "127.0.0.1", local_aet = "HARMONY_DEAD", echo = "upstream" }

[backends.nobody]
service = "dicom"
options = { host = "127.0.0.1", port = ${deadPort}, aet = "NOBODY", connect_timeout_ms = 1000 }
`),
  });
  dp = await startDataplane(join(dir, "config.toml"));
  await dp.waitForLog((l) => l.message === "DICOM listener started" && l.port === webPort);
  await dp.waitForLog((l) => l.message === "DICOM listener started" && l.port === proxyPort);
});

after(async () => {
  await dp?.stop();
  await Promise.all([orthanc?.stop(), qr?.stop(), storescp?.stop(), wl?.stop()]);
});

test("C-ECHO; unknown calling or called AE titles are refused; a malformed PDU does not hurt", async () => {
  assert.equal((await dcmtk("echoscu", ["-aet", "ECHOSCU", "-aec", "HARMONY", ...at(webPort)])).code, 0);
  const stranger = await dcmtk("echoscu", ["-aet", "STRANGER", "-aec", "HARMONY", ...at(webPort)]);
  assert.notEqual(stranger.code, 0);
  assert.match(stranger.out, /Calling AE Title Not Recognized/i);
  const wrongCalled = await dcmtk("echoscu", ["-aet", "ECHOSCU", "-aec", "SOMEONE", ...at(webPort)]);
  assert.notEqual(wrongCalled.code, 0);
  assert.match(wrongCalled.out, /Called AE Title Not Recognized/i);

  // Garbage where an A-ASSOCIATE-RQ should be: the connection ends, the gateway stays up.
  await new Promise<void>((resolve, reject) => {
    const s = connect(webPort, "127.0.0.1", () =>
      s.write(Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n\x01\x00\x00\x00\xff\xff")),
    );
    s.resume(); // the gateway answers with an A-ABORT before it closes: read it, or the close is never seen
    s.on("error", () => undefined);
    s.on("close", () => resolve());
    s.setTimeout(10_000, () => {
      s.destroy();
      reject(new Error("the gateway kept a garbage connection open"));
    });
  });
  // And a PDU that claims 4 GiB: refused at once, not awaited.
  await new Promise<void>((resolve, reject) => {
    const s = connect(webPort, "127.0.0.1", () => s.write(Buffer.from([0x01, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00])));
    s.resume();
    s.on("error", () => undefined);
    s.on("close", () => resolve());
    s.setTimeout(10_000, () => {
      s.destroy();
      reject(new Error("the gateway waited for a 4 GiB PDU"));
    });
  });
  assert.equal(dp.proc.exitCode, null, "the gateway is still running");
  assert.ok(echo("HARMONY", webPort), "and still answers C-ECHO");
  assert.equal(
    dp.logs.filter((l) => l.level === "warn" && /association rejected/.test(String(l.message))).length,
    2,
    "both association refusals are logged",
  );
});

test("C-STORE from storescu lands in Orthanc through STOW-RS, data set unchanged", async () => {
  const r = await dcmtk("storescu", ["-aet", "STORESCU", "-aec", "HARMONY", ...at(webPort), CT_FILE]);
  assert.equal(r.code, 0, r.out);
  const found = (await (
    await fetch(`${orthanc.http}/tools/find`, {
      method: "POST",
      body: JSON.stringify({ Level: "Instance", Query: { SOPInstanceUID: CT.sop } }),
    })
  ).json()) as string[];
  assert.equal(found.length, 1);
  const stored = Buffer.from(await (await fetch(`${orthanc.http}/instances/${found[0]}/file`)).arrayBuffer());
  assert.ok(
    parsePart10(stored).dataset.equals(withoutTrailingPadding(parsePart10(readFileSync(CT_FILE)).dataset)),
    "Orthanc holds the data set storescu sent",
  );
});

test("C-FIND at study and patient level answers from Orthanc's QIDO-RS", async () => {
  const dir = tempDir("harmony-findscu-");
  const r = await dcmtk("findscu", [
    "-S",
    "-aet",
    "FINDSCU",
    "-aec",
    "HARMONY",
    "-X",
    "-od",
    dir,
    "-k",
    "QueryRetrieveLevel=STUDY",
    "-k",
    `PatientID=${MR.patientId}`,
    "-k",
    "StudyInstanceUID",
    "-k",
    "PatientName",
    "-k",
    "StudyDate",
    ...at(webPort),
  ]);
  assert.equal(r.code, 0, r.out);
  const files = readdirSync(dir);
  assert.equal(files.length, 1, "one match");
  const dump = await dcmtk("dcmdump", [join(dir, files[0]!)]);
  assert.match(dump.out, new RegExp(`\\(0020,000d\\) UI \\[${MR.study.replaceAll(".", "\\.")}\\]`));
  assert.match(dump.out, /\(0010,0010\) PN \[CompressedSamples\^MR1\]/);
  assert.match(dump.out, /\(0008,0052\) CS \[STUDY\]/);

  const patients = await dcmtk("findscu", [
    "-P",
    "-aet",
    "FINDSCU",
    "-aec",
    "HARMONY",
    "-k",
    "QueryRetrieveLevel=PATIENT",
    "-k",
    "PatientName=Compressed*",
    "-k",
    "PatientID",
    ...at(webPort),
  ]);
  assert.equal(patients.code, 0, patients.out);
  assert.equal(patients.out.match(/Find Response: \d+ \(Pending\)/g)?.length, 2, "two patients, CT and MR");
  const nothing = await dcmtk("findscu", [
    "-S",
    "-aet",
    "FINDSCU",
    "-aec",
    "HARMONY",
    "-k",
    "QueryRetrieveLevel=STUDY",
    "-k",
    "PatientID=nobody",
    ...at(webPort),
  ]);
  assert.equal(nothing.code, 0);
  assert.doesNotMatch(nothing.out, /Pending/);
});

test("C-GET returns the instance on the same association, byte-identical and dciodvfy-clean", async () => {
  const dir = tempDir("harmony-getscu-");
  const r = await dcmtk("getscu", [
    "-S",
    "-aet",
    "GETSCU",
    "-aec",
    "HARMONY",
    "-od",
    dir,
    "-k",
    "QueryRetrieveLevel=STUDY",
    "-k",
    `StudyInstanceUID=${MR.study}`,
    ...at(webPort),
  ]);
  assert.equal(r.code, 0, r.out);
  const files = readdirSync(dir);
  assert.equal(files.length, 1, r.out);
  const got = parsePart10(readFileSync(join(dir, files[0]!)));
  assert.equal(got.sopInstance, MR.sop);
  assert.ok(got.dataset.equals(parsePart10(readFileSync(MR_FILE)).dataset), "getscu stored the data set Orthanc holds");
  assert.deepEqual(await dciodvfyErrors(join(dir, files[0]!)), []);
});

test("C-MOVE sends the study to the destination AE from the peer table; unknown destinations are refused", async () => {
  const r = await dcmtk("movescu", [
    "-S",
    "-aet",
    "MOVESCU",
    "-aec",
    "HARMONY",
    "-aem",
    "STORESCP",
    "-k",
    "QueryRetrieveLevel=STUDY",
    "-k",
    `StudyInstanceUID=${MR.study}`,
    ...at(webPort),
  ]);
  assert.equal(r.code, 0, r.out + JSON.stringify(dp.logs.filter((l) => l.level !== "info").slice(-5)) + storescp.log());
  const received = readdirSync(storescp.dir);
  assert.equal(received.length, 1, r.out);
  assert.match(received[0]!, new RegExp(MR.sop.replaceAll(".", "\\.")));
  const unknown = await dcmtk("movescu", [
    "-S",
    "-aet",
    "MOVESCU",
    "-aec",
    "HARMONY",
    "-aem",
    "NOWHERE",
    "-k",
    "QueryRetrieveLevel=STUDY",
    "-k",
    `StudyInstanceUID=${MR.study}`,
    ...at(webPort),
  ]);
  assert.match(unknown.out, /Refused: MoveDestinationUnknown/);
});

test("a DIMSE proxy: storescu and findscu through the gateway reach dcmqrscp", async () => {
  const stored = await dcmtk("storescu", ["-aet", "ANYSCU", "-aec", "HARMONY_QR", ...at(proxyPort), CT_FILE]);
  assert.equal(stored.code, 0, stored.out);
  const direct = await dcmtk("findscu", [
    "-S",
    "-aec",
    qr.aet,
    "-k",
    "QueryRetrieveLevel=STUDY",
    "-k",
    "StudyInstanceUID",
    "-k",
    `PatientID=${CT.patientId}`,
    ...at(qr.port),
  ]);
  assert.match(direct.out, new RegExp(CT.study.replaceAll(".", "\\.")), "dcmqrscp has it");
  const via = await dcmtk("findscu", [
    "-S",
    "-aec",
    "HARMONY_QR",
    "-k",
    "QueryRetrieveLevel=STUDY",
    "-k",
    "StudyInstanceUID",
    "-k",
    `PatientID=${CT.patientId}`,
    ...at(proxyPort),
  ]);
  assert.equal(via.code, 0, via.out);
  assert.match(via.out, new RegExp(CT.study.replaceAll(".", "\\.")), "and the gateway finds it there");
});

test("Orthanc as a modality: echo, store and query through the gateway", async () => {
  const put = await fetch(`${orthanc.http}/modalities/harmony`, {
    method: "PUT",
    body: JSON.stringify({ AET: "HARMONY", Host: "127.0.0.1", Port: webPort }),
  });
  assert.equal(put.status, 200);
  assert.equal((await fetch(`${orthanc.http}/modalities/harmony/echo`, { method: "POST", body: "{}" })).status, 200);
  const query = await fetch(`${orthanc.http}/modalities/harmony/query`, {
    method: "POST",
    body: JSON.stringify({ Level: "Study", Query: { PatientID: MR.patientId, StudyInstanceUID: "" } }),
  });
  assert.equal(query.status, 200, await query.clone().text());
  const q = (await query.json()) as { ID: string };
  const answers = (await (await fetch(`${orthanc.http}/queries/${q.ID}/answers?expand`)).json()) as Record<
    string,
    { Value: string }
  >[];
  assert.equal(answers.length, 1);
  assert.equal(answers[0]!["0020,000d"]!.Value, MR.study);
  const ids = (await (await fetch(`${orthanc.http}/instances`)).json()) as string[];
  const store = await fetch(`${orthanc.http}/modalities/harmony/store`, {
    method: "POST",
    body: JSON.stringify({ Resources: ids, Synchronous: true }),
  });
  assert.equal(store.status, 200, await store.clone().text());
  assert.equal(((await store.json()) as { FailedInstancesCount: number }).FailedInstancesCount, 0);
});

test("Modality Worklist C-FIND through the gateway; a passed-on C-ECHO checks the whole path", async () => {
  const keys = ["-W", "-k", "ScheduledProcedureStepSequence[0].Modality", "-k", "PatientName", "-k", "PatientID"];
  const direct = await dcmtk("findscu", [...keys, "-aec", wl.aet, ...at(wl.port)]);
  const via = await dcmtk("findscu", [...keys, "-aec", "HARMONY_WL", ...at(wlPort)]);
  assert.equal(via.code, 0, via.out);
  const pending = (out: string) => out.match(/Find Response: \d+ \(Pending\)/g)?.length ?? 0;
  assert.ok(pending(direct.out) > 0, direct.out);
  assert.equal(pending(via.out), pending(direct.out), "the same worklist items as asking wlmscpfs directly");
  assert.match(via.out, /VIVALDI\^ANTONIO/);
  const mr = await dcmtk("findscu", [
    "-W",
    "-k",
    "ScheduledProcedureStepSequence[0].Modality=MR",
    "-k",
    "PatientName",
    "-aec",
    "HARMONY_WL",
    ...at(wlPort),
  ]);
  const mrDirect = await dcmtk("findscu", [
    "-W",
    "-k",
    "ScheduledProcedureStepSequence[0].Modality=MR",
    "-k",
    "PatientName",
    "-aec",
    wl.aet,
    ...at(wl.port),
  ]);
  assert.equal(pending(mr.out), pending(mrDirect.out), "matching inside the sequence");
  assert.ok(pending(mr.out) < pending(via.out));

  assert.equal((await dcmtk("echoscu", ["-aec", "HARMONY_WL", ...at(wlPort)])).code, 0, "echo reaches wlmscpfs");
  const dead = await dcmtk("echoscu", ["-v", "-aec", "HARMONY_DEAD", ...at(deadEchoPort)]);
  assert.doesNotMatch(dead.out, /Received Echo Response \(Success\)/, "a dead backend fails the echo");
  assert.match(dead.out, /Received Echo Response/, "but the gateway itself answered");
});
