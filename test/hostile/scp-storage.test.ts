/**
 * `storage_dir` of a `dicom` endpoint turns two UIDs a modality sends into a path. Instances whose
 * StudyInstanceUID or SOPInstanceUID could climb out of the directory ("..", "/", anything not a
 * plain UID) are refused with 0xC000 and write nothing anywhere; the listener keeps serving. A
 * well-formed instance in the same run is written, so the refusals are not an artefact of a
 * storage_dir that never works.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { echo } from "../peers/dicom-peers.js";
import { makeInstance, uid } from "../dicom-files.js";
import {
  baseConfig,
  freePort,
  startDataplane,
  tempDir,
  writeTree,
  type Dataplane,
} from "../../dataplane/test/helpers.js";
import { assertStillServes } from "./harness.js";

let dp: Dataplane;
let port: number;
let base: string; // storage_dir's parent: nothing may appear here but storage_dir itself
let store: string;

function storescu(file: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn("storescu", ["-v", "-aet", "STORESCU", "-aec", "HARMONY", "127.0.0.1", String(port), file]);
    let out = "";
    p.stdout.on("data", (c: Buffer) => (out += c.toString()));
    p.stderr.on("data", (c: Buffer) => (out += c.toString()));
    p.on("close", (code) => resolve({ code, out }));
  });
}

/**
 * dcmjs cleans UI values as it writes them (non-UID characters dropped), so hostile UIDs are put
 * in afterwards: the instance is made with same-length placeholders whose bytes are then replaced
 * wherever they occur (data set and file meta).
 */
function instanceFile(name: string, study: string, sop: string): string {
  const file = join(tempDir("harmony-scp-attack-"), `${name}.dcm`);
  const hold = (v: string, digit: string) => (/^[0-9.]+$/.test(v) ? v : digit.repeat(v.length));
  const [studyHold, sopHold] = [hold(study, "7"), hold(sop, "8")];
  let bytes = makeInstance({
    study: studyHold,
    series: uid(`${name}-series`),
    sop: sopHold,
    patientId: "P1",
    patientName: "Doe^J",
  });
  for (const [from, to] of [
    [studyHold, study],
    [sopHold, sop],
  ] as const) {
    if (from === to) continue;
    const needle = Buffer.from(from, "latin1");
    for (let i = bytes.indexOf(needle); i >= 0; i = bytes.indexOf(needle, i + 1))
      bytes = Buffer.concat([bytes.subarray(0, i), Buffer.from(to, "latin1"), bytes.subarray(i + to.length)]);
  }
  writeFileSync(file, bytes);
  return file;
}

before(async () => {
  port = await freePort();
  base = tempDir("harmony-scp-storage-");
  store = join(base, "store");
  const dir = writeTree({
    "config.toml": baseConfig(`
[pipelines.modality]
endpoints = ["scp"]
backends = ["echo"]

[endpoints.scp]
service = "dicom_scp"
options = { port = ${port}, bind_address = "127.0.0.1", local_aet = "HARMONY", storage_dir = "${store}" }

[backends.echo]
service = "echo"

[pipelines.http]
networks = ["default"]
endpoints = ["web"]
backends = ["echo"]

[endpoints.web]
service = "http"
options = { path_prefix = "/echo" }
`),
  });
  dp = await startDataplane(join(dir, "config.toml"));
  await dp.waitForLog((l) => l.message === "DICOM listener started" && l.port === port);
});

after(async () => {
  await dp?.stop();
});

test("a plain instance is written to storage_dir (control)", async () => {
  const study = uid("plain-study");
  const sop = uid("plain-sop");
  const r = await storescu(instanceFile("plain", study, sop));
  assert.equal(r.code, 0, r.out);
  assert.ok(existsSync(join(store, study, `${sop}.dcm`)), r.out);
});

for (const [name, study, sop] of [
  ["study climbs out", "../escaped", uid("a-sop")],
  ["study is ..", "..", uid("b-sop")],
  ["study is absolute", "/tmp/escaped", uid("c-sop")],
  ["study is ...", "...", uid("f-sop")],
  ["sop climbs out", uid("d-study"), "../../escaped"],
  ["sop is not a UID", uid("e-study"), "1.2.x"],
] as const) {
  test(`storage_dir: ${name}: refused with 0xC000, nothing written`, async () => {
    const before = readdirSync(store).sort();
    const r = await storescu(instanceFile(name.replaceAll(" ", "-"), study, sop));
    assert.notEqual(r.code, 0, r.out);
    assert.match(r.out, /0xc000|Cannot ?Understand/i, r.out);
    assert.deepEqual(readdirSync(base), ["store"], "nothing beside storage_dir");
    assert.deepEqual(readdirSync(store).sort(), before, "nothing new inside it");
    assert.ok(!existsSync("/tmp/escaped"));
    assert.ok(echo("HARMONY", port), "the listener still answers C-ECHO");
    await assertStillServes(dp, "default", "/echo/x");
  });
}
