/**
 * Harmony 0.13's `dicom_scp` endpoint options and `dicom_scu` backend spellings, over the wire with
 * dcmtk's tools as the modality and dcmqrscp as the PACS behind the gateway:
 * `aet_table` (C-MOVE destinations), `storage_dir` (received instances kept on disk),
 * `enable_echo/find/get/move/store` (services offered), and on the backend
 * `dimse_retrieve_mode`/`incoming_store_port` (retrieve by C-MOVE) plus the options this build
 * only reports as not used.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { dcmtk, startDcmqrscp, startStorescp, SAMPLES, type Dcmqrscp, type StoreScp } from "./peers/dicom-peers.js";
import { uidsOf } from "./dicom-files.js";
import {
  baseConfig,
  freePort,
  runCli,
  startDataplane,
  tempDir,
  writeTree,
  type Dataplane,
} from "../dataplane/test/helpers.js";
import { parsePart10 } from "../dataplane/src/protocols/part10.js";

let qr: Dcmqrscp;
let storescp: StoreScp;
let dp: Dataplane;
let allPort: number; // every service, aet_table, storage_dir
let noStorePort: number; // enable_store = false (C-GET still on)
let findOnlyPort: number; // only C-FIND
let receiverPort: number; // the backend's C-MOVE receiver (incoming_store_port)
let storageDir: string;
const CT_FILE = join(SAMPLES, "CT_small.dcm");
const MR_FILE = join(SAMPLES, "MR_small.dcm");
const CT = uidsOf(readFileSync(CT_FILE));
const MR = uidsOf(readFileSync(MR_FILE));

const at = (port: number) => ["127.0.0.1", String(port)];
const studyFind = (port: number, study: string) =>
  dcmtk("findscu", [
    "-S",
    "-aet",
    "FINDSCU",
    "-aec",
    "HARMONY",
    "-k",
    "QueryRetrieveLevel=STUDY",
    "-k",
    `StudyInstanceUID=${study}`,
    ...at(port),
  ]);

before(async () => {
  receiverPort = await freePort();
  // dcmqrscp sends C-MOVE results to the backend's receiver, which it knows as HARMONY.
  qr = await startDcmqrscp({ harmony: ["HARMONY", receiverPort] });
  storescp = await startStorescp("STORESCP");
  [allPort, noStorePort, findOnlyPort] = await Promise.all([freePort(), freePort(), freePort()]);
  storageDir = tempDir("harmony-scp-storage-");
  const dir = writeTree({
    "config.toml": baseConfig(`
[pipelines.modality]
endpoints = ["scp_all", "scp_nostore", "scp_findonly"]
backends = ["pacs"]

[endpoints.scp_all]
service = "dicom_scp"
[endpoints.scp_all.options]
port = ${allPort}
bind_address = "127.0.0.1"
local_aet = "HARMONY"
storage_dir = "${storageDir}"
aet_table.ARCHIVE = { ae_title = "STORESCP", host = "127.0.0.1", port = ${storescp.port} }

[endpoints.scp_nostore]
service = "dicom_scp"
options = { port = ${noStorePort}, bind_address = "127.0.0.1", local_aet = "HARMONY", enable_store = false }

[endpoints.scp_findonly]
service = "dicom_scp"
[endpoints.scp_findonly.options]
port = ${findOnlyPort}
bind_address = "127.0.0.1"
local_aet = "HARMONY"
enable_echo = false
enable_get = false
enable_move = false
enable_store = false

[backends.pacs]
service = "dicom_scu"
[backends.pacs.options]
host = "127.0.0.1"
port = ${qr.port}
aet = "${qr.aet}"
local_aet = "HARMONY"
dimse_retrieve_mode = "move"
incoming_store_port = ${receiverPort}
move_bind_address = "127.0.0.1"
persistent_store_scp = false
use_tls = false
storage_dir = "./tmp/dimse"
enable_echo = true
`),
  });
  dp = await startDataplane(join(dir, "config.toml"));
  for (const port of [allPort, noStorePort, findOnlyPort])
    await dp.waitForLog((l) => l.message === "DICOM listener started" && l.port === port);
});

after(async () => {
  await dp?.stop();
  await Promise.all([qr?.stop(), storescp?.stop()]);
});

test("storage_dir: a C-STORE is kept as {study}/{sop}.dcm and relayed to the PACS", async () => {
  const r = await dcmtk("storescu", ["-aet", "STORESCU", "-aec", "HARMONY", ...at(allPort), MR_FILE]);
  assert.equal(r.code, 0, r.out);
  const kept = join(storageDir, MR.study, `${MR.sop}.dcm`);
  assert.ok(existsSync(kept), `${kept} missing; storage_dir holds ${JSON.stringify(readdirSync(storageDir))}`);
  assert.deepEqual(readdirSync(join(storageDir, MR.study)), [`${MR.sop}.dcm`], "no temporary file left behind");
  // storescu may re-encode to the transfer syntax accepted, so the data set is compared by its UIDs.
  assert.equal(parsePart10(readFileSync(kept)).sopInstance, MR.sop);
  assert.deepEqual(uidsOf(readFileSync(kept)), MR);
  assert.equal((await dcmtk("dcmftest", [kept])).code, 0, "a Part 10 file dcmtk reads");
  const found = await studyFind(allPort, MR.study);
  assert.equal(found.code, 0, found.out);
  assert.match(found.out, new RegExp(MR.study.replaceAll(".", "\\.")), "the PACS has it too");
});

test("C-MOVE to an aet_table destination stores the study there (backend retrieving by C-MOVE)", async () => {
  const r = await dcmtk("movescu", [
    "-S",
    "-aet",
    "MOVESCU",
    "-aec",
    "HARMONY",
    "-aem",
    "ARCHIVE",
    "-k",
    "QueryRetrieveLevel=STUDY",
    "-k",
    `StudyInstanceUID=${MR.study}`,
    ...at(allPort),
  ]);
  const why = r.out + JSON.stringify(dp.logs.filter((l) => l.level !== "info").slice(-5)) + storescp.log();
  assert.equal(r.code, 0, why);
  const received = readdirSync(storescp.dir).filter((f) => f.includes(MR.sop));
  assert.equal(received.length, 1, why);
  assert.equal(parsePart10(readFileSync(join(storescp.dir, received[0]!))).sopInstance, MR.sop);
  // dimse_retrieve_mode = "move" + incoming_store_port: the backend fetched through its own receiver.
  assert.ok(
    dp.logs.some((l) => l.message === "C-MOVE receiver started" && l.port === receiverPort),
    "the backend's C-MOVE receiver listens on incoming_store_port",
  );
  // The destination table holds AE titles only: no inherited key names a peer.
  for (const aem of ["__proto__", "constructor"]) {
    const odd = await dcmtk("movescu", [
      "-S",
      "-aet",
      "MOVESCU",
      "-aec",
      "HARMONY",
      "-aem",
      aem,
      "-k",
      "QueryRetrieveLevel=STUDY",
      "-k",
      `StudyInstanceUID=${MR.study}`,
      ...at(allPort),
    ]);
    assert.match(odd.out, /Refused: MoveDestinationUnknown/, odd.out);
  }
});

test("enable_store = false: C-STORE is refused with 0x0122 and nothing reaches the PACS", async () => {
  const r = await dcmtk("storescu", ["-v", "-aet", "STORESCU", "-aec", "HARMONY", ...at(noStorePort), CT_FILE]);
  assert.notEqual(r.code, 0, r.out);
  assert.match(r.out, /0x0122|SOP ?Class ?Not ?Supported/i, r.out);
  const found = await studyFind(noStorePort, CT.study);
  assert.equal(found.code, 0, found.out);
  assert.doesNotMatch(found.out, new RegExp(CT.study.replaceAll(".", "\\.")), "the PACS did not get it");
});

test("only enable_find: C-ECHO and C-STORE contexts are rejected, C-FIND still answers", async () => {
  const e = await dcmtk("echoscu", ["-aet", "ECHOSCU", "-aec", "HARMONY", ...at(findOnlyPort)]);
  assert.notEqual(e.code, 0, e.out);
  assert.match(e.out, /no acceptable presentation contexts/i, e.out);
  const s = await dcmtk("storescu", ["-aet", "STORESCU", "-aec", "HARMONY", ...at(findOnlyPort), CT_FILE]);
  assert.notEqual(s.code, 0, s.out);
  assert.match(s.out, /no (acceptable )?presentation context/i, s.out);
  const found = await studyFind(findOnlyPort, MR.study);
  assert.equal(found.code, 0, found.out);
  assert.match(found.out, new RegExp(MR.study.replaceAll(".", "\\.")));
  // The listener is still there for the next association.
  assert.equal((await dcmtk("echoscu", ["-aec", "HARMONY", ...at(allPort)])).code, 0);
});

test("dicom_scu options this build does not act on load with one warning each; use_tls = true is refused", async () => {
  const warned = (key: string) =>
    dp.logs.some((l) => l.level === "warn" && JSON.stringify(l).includes(`backends.pacs.options.${key}`));
  for (const key of ["persistent_store_scp", "storage_dir", "enable_echo"])
    assert.ok(warned(key), `no warning for ${key}: ${JSON.stringify(dp.logs.filter((l) => l.level === "warn"))}`);
  assert.ok(!warned("use_tls"), "use_tls = false is what happens: nothing to say");
  assert.ok(!warned("dimse_retrieve_mode") && !warned("incoming_store_port"), "these two are used");

  const dir = writeTree({
    "config.toml": baseConfig(`
[pipelines.p]
endpoints = ["scp"]
backends = ["pacs"]
[endpoints.scp]
service = "dicom_scp"
options = { port = 0, bind_address = "127.0.0.1" }
[backends.pacs]
service = "dicom_scu"
options = { host = "127.0.0.1", port = 104, aet = "PACS", use_tls = true }
`),
  });
  const r = await runCli(["--check", "--config", join(dir, "config.toml")]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout + r.stderr, /backends\.pacs\.options\.use_tls: DICOM TLS is not available/);
});
