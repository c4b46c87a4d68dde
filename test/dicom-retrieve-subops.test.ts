/**
 * The gateway as C-GET / C-MOVE SCP, sending the sub-operations (issue 13). pynetdicom is the
 * independent peer: a C-GET SCU proposing its storage contexts in several shapes, and an
 * Implicit VR Little Endian-only C-MOVE destination. Instances come from Orthanc over DICOMweb,
 * as stored: uncompressed ones are transcoded losslessly, compressed ones never.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { scpToDicomwebPipeline, startOrthanc, SAMPLES, type Orthanc } from "./peers/dicom-peers.js";
import { IMPLICIT_LE, EXPLICIT_LE, python, startPyStoreScp, type PyStoreScp } from "./peers/pynetdicom.js";
import { baseConfig, freePort, startDataplane, tempDir, writeTree, type Dataplane } from "../dataplane/test/helpers.js";
import { parsePart10 } from "../dataplane/src/protocols/part10.js";

const EXPLICIT_BE = "1.2.840.10008.1.2.2";
const JPEG_BASELINE = "1.2.840.10008.1.2.4.50";

interface Instance {
  file: string;
  series: string;
  sop: string;
  sopClass: string;
  transferSyntax: string;
}
interface Response {
  status: number;
  remaining: number | null;
  completed: number;
  failed: number;
  warning: number;
  failedUids: string[] | null;
}

let orthanc: Orthanc;
let dest: PyStoreScp;
let dp: Dataplane;
let scpPort: number;
let study: { study: string; instances: Instance[] };
const byTs = (ts: string) => study.instances.find((i) => i.transferSyntax === ts)!;

before(async () => {
  orthanc = await startOrthanc();
  dest = await startPyStoreScp("DEST"); // Implicit VR Little Endian only
  const made = await python("make_study.py", [
    "subops",
    tempDir("harmony-subops-"),
    join(SAMPLES, "CT_small.dcm"),
    join(SAMPLES, "MR_small_bigendian.dcm"),
    join(SAMPLES, "SC_rgb_jpeg_dcmtk.dcm"),
  ]);
  assert.equal(made.code, 0, made.err);
  study = JSON.parse(made.out) as typeof study;
  for (const i of study.instances) {
    const r = await fetch(`${orthanc.http}/instances`, { method: "POST", body: readFileSync(i.file) });
    assert.equal(r.status, 200, await r.text());
  }
  scpPort = await freePort();
  const dir = writeTree({
    "config.toml": baseConfig(scpToDicomwebPipeline(scpPort, orthanc.dicomweb, { DEST: dest.port })),
  });
  dp = await startDataplane(join(dir, "config.toml"));
  await dp.waitForLog((l) => l.message === "DICOM listener started" && l.port === scpPort);
});

after(async () => {
  await dp?.stop();
  await Promise.all([orthanc?.stop(), dest?.stop()]);
});

/** C-GET of one instance by a pynetdicom SCU proposing `syntaxes` ("|" starts another context). */
async function getOne(inst: Instance, syntaxes: string[]): Promise<{ final: Response; out: string; dir: string }> {
  const dir = tempDir("harmony-getscu-");
  const r = await python("get_scu.py", [
    "127.0.0.1",
    String(scpPort),
    "HARMONY",
    dir,
    `${study.study}/${inst.series}/${inst.sop}`,
    inst.sopClass,
    ...syntaxes,
  ]);
  assert.equal(r.code, 0, r.err);
  return { final: (JSON.parse(r.out) as { responses: Response[] }).responses.at(-1)!, out: r.out, dir };
}

test("C-GET SCP: contexts [Explicit LE, JPEG] + [Implicit LE] — the JPEG instance goes as stored (JPEG accepted where it adds something)", async () => {
  const jpeg = byTs(JPEG_BASELINE);
  const { final, out, dir } = await getOne(jpeg, [EXPLICIT_LE, JPEG_BASELINE, "|", IMPLICIT_LE]);
  assert.deepEqual([final.status, final.completed, final.failed], [0, 1, 0], out);
  const got = parsePart10(readFileSync(join(dir, `${jpeg.sop}.dcm`)));
  assert.equal(got.transferSyntax, JPEG_BASELINE);
  assert.ok(got.dataset.equals(parsePart10(readFileSync(jpeg.file)).dataset), "JPEG bytes as stored");
  // The uncompressed instance of another class still goes on the same kind of proposal, transcoded.
  const ct = byTs(EXPLICIT_LE);
  const other = await getOne(ct, [EXPLICIT_LE, JPEG_BASELINE, "|", IMPLICIT_LE]);
  assert.deepEqual([other.final.status, other.final.completed], [0, 1], other.out);
  assert.ok(isUncompressedTs(parsePart10(readFileSync(join(other.dir, `${ct.sop}.dcm`))).transferSyntax));
});

const isUncompressedTs = (ts: string) => [IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE].includes(ts);

test("C-GET SCP: contexts [Implicit LE] + [JPEG] — a Big Endian instance goes in Implicit LE, not on the JPEG context", async () => {
  const be = byTs(EXPLICIT_BE);
  const { final, out, dir } = await getOne(be, [IMPLICIT_LE, "|", JPEG_BASELINE]);
  assert.deepEqual([final.status, final.completed, final.failed], [0, 1, 0], out);
  assert.equal(parsePart10(readFileSync(join(dir, `${be.sop}.dcm`))).transferSyntax, IMPLICIT_LE);
});

test("C-GET SCP: a JPEG instance no accepted context can carry fails its sub-operation (0xA702, UID listed), no hang", async () => {
  const jpeg = byTs(JPEG_BASELINE);
  const { final, out } = await getOne(jpeg, [IMPLICIT_LE]);
  assert.deepEqual([final.status, final.completed, final.failed], [0xa702, 0, 1], out);
  assert.deepEqual(final.failedUids, [jpeg.sop], out);
});

test("C-MOVE SCP to an Implicit-only AE: Remaining counts down, the final response lists the failed UID", async () => {
  const r = await python("move_scu.py", ["127.0.0.1", String(scpPort), "HARMONY", "DEST", study.study]);
  assert.equal(r.code, 0, r.err);
  const responses = (JSON.parse(r.out) as { responses: Response[] }).responses;
  const final = responses.at(-1)!;
  const pending = responses.slice(0, -1);
  assert.ok(
    pending.every((p) => p.status === 0xff00),
    r.out,
  );
  // Three sub-operations known up front: each pending response says how many are left.
  assert.ok(pending.length >= 1, r.out);
  for (const p of pending) assert.equal(p.remaining, 3 - p.completed - p.failed - p.warning, r.out);
  assert.equal(pending.at(-1)!.remaining, 0, r.out);
  // Two uncompressed instances transcoded to Implicit LE; the JPEG one refused by the peer.
  assert.deepEqual([final.status, final.completed, final.failed, final.warning], [0xb000, 2, 1, 0], r.out);
  assert.deepEqual(final.failedUids, [byTs(JPEG_BASELINE).sop], r.out);
  assert.ok(dest.received(byTs(EXPLICIT_LE).sop) && dest.received(byTs(EXPLICIT_BE).sop));
  assert.equal(dest.received(byTs(JPEG_BASELINE).sop), undefined);
});
