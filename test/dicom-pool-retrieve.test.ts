/**
 * C-GET and C-MOVE on the `dicom` backend's association pool (issue 18): WADO-RS retrieves one
 * after another reuse one association to Orthanc, counted by Orthanc itself (its --verbose log has
 * one "Association Received" line per A-ASSOCIATE-RQ). Before, each retrieve opened its own.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { dicomwebToDimsePipeline, SAMPLES, startOrthanc, type Orthanc } from "./peers/dicom-peers.js";
import { uidsOf } from "./dicom-files.js";
import {
  baseConfig,
  eventually,
  freePort,
  startDataplane,
  writeTree,
  type Dataplane,
} from "../dataplane/test/helpers.js";

const CT_FILE = readFileSync(join(SAMPLES, "CT_small.dcm"));
const CT = uidsOf(CT_FILE);
const RETRIEVES = 3;

let orthanc: Orthanc;
let dp: Dataplane;
let associations = 0;

before(async () => {
  const movePort = await freePort();
  orthanc = await startOrthanc({
    aet: "RETRIEVEPACS",
    verbose: true,
    modalities: { MOVE_HARMONY: ["MOVE_HARMONY", "127.0.0.1", movePort] },
  });
  const count = (c: Buffer | string) => (associations += String(c).split("Association Received").length - 1);
  orthanc.proc.stderr!.on("data", count);
  orthanc.proc.stdout!.on("data", count);
  assert.equal((await fetch(`${orthanc.http}/instances`, { method: "POST", body: CT_FILE })).status, 200);
  const peer = { port: orthanc.dicomPort, aet: orthanc.aet };
  const bridge = (name: string, prefix: string, extra = "") =>
    dicomwebToDimsePipeline(name, prefix, peer, `local_aet = "HARMONY"${extra}`);
  const dir = writeTree({
    "config.toml": baseConfig(
      bridge("get", "/get") +
        bridge(
          "move",
          "/move",
          `, retrieve = "move", move_aet = "MOVE_HARMONY", move_port = ${movePort}, move_bind_address = "127.0.0.1"`,
        ),
    ),
  });
  dp = await startDataplane(join(dir, "config.toml"));
});

after(async () => {
  await dp?.stop();
  await orthanc?.stop();
});

async function retrieve(prefix: string): Promise<void> {
  const res = await fetch(dp.url("default", `${prefix}/studies/${CT.study}`), {
    headers: { accept: 'multipart/related; type="application/dicom"' },
  });
  const body = Buffer.from(await res.arrayBuffer());
  assert.equal(res.status, 200, body.toString("latin1").slice(0, 300));
  assert.ok(body.includes(Buffer.from(CT.sop)), "the instance came back");
}

for (const [what, prefix] of [
  ["C-GET", "/get"],
  ["C-MOVE", "/move"],
] as const)
  test(`${RETRIEVES} WADO-RS retrieves by ${what} share one association to the PACS`, async () => {
    const base = associations;
    for (let i = 0; i < RETRIEVES; i++) await retrieve(prefix);
    await eventually("Orthanc logged the association", () => associations > base);
    assert.equal(associations - base, 1, orthanc.log().slice(-4000));
  });
