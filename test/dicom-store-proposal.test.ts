/**
 * What the gateway proposes when it sends instances as a C-STORE SCU (issue 13, PS3.8 §9.3.3.2:
 * propose only what can be sent). A relayed instance is never decoded: a compressed one can go
 * only in its own syntax, an uncompressed one in any uncompressed syntax (transcoded losslessly).
 * The peer is pynetdicom accepting only Implicit VR Little Endian, which logs every proposal.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { dicomwebToDimsePipeline, SAMPLES } from "./peers/dicom-peers.js";
import { startPyStoreScp, type PyStoreScp } from "./peers/pynetdicom.js";
import { multipartRelated, uidsOf } from "./dicom-files.js";
import { baseConfig, startDataplane, writeTree, type Dataplane } from "../dataplane/test/helpers.js";

const JPEG_BASELINE = "1.2.840.10008.1.2.4.50";
const UNCOMPRESSED = ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"];

let implicitScp: PyStoreScp;
let dp: Dataplane;

before(async () => {
  implicitScp = await startPyStoreScp("IMPLICIT");
  const dir = writeTree({
    "config.toml": baseConfig(
      dicomwebToDimsePipeline("implicit", "/implicit", { port: implicitScp.port, aet: "IMPLICIT" }),
    ),
  });
  dp = await startDataplane(join(dir, "config.toml"));
});

after(async () => {
  await dp?.stop();
  await implicitScp?.stop();
});

async function stow(
  files: Buffer[],
): Promise<{ status: number; json: Record<string, { Value?: Record<string, { Value?: unknown[] }>[] }> }> {
  const { body, contentType } = multipartRelated(files);
  const res = await fetch(dp.url("default", "/implicit/studies"), {
    method: "POST",
    headers: { "content-type": contentType, accept: "application/dicom+json" },
    body,
  });
  return { status: res.status, json: (await res.json()) as never };
}

test("C-STORE of a JPEG instance proposes only JPEG for its class; an Implicit-only peer refuses it with 0xC122", async () => {
  const jpeg = readFileSync(join(SAMPLES, "SC_rgb_jpeg_dcmtk.dcm"));
  const ct = readFileSync(join(SAMPLES, "CT_small.dcm"));
  const [jpegUids, ctUids] = [uidsOf(jpeg), uidsOf(ct)];
  const seen = implicitScp.proposals().length;
  const { status, json } = await stow([jpeg, ct]);
  assert.equal(status, 202, JSON.stringify(json)); // the CT stored, the JPEG not
  const failed = json["00081198"]?.Value ?? [];
  assert.equal(failed.length, 1);
  assert.equal(failed[0]!["00081155"]?.Value?.[0], jpegUids.sop);
  assert.equal(failed[0]!["00081197"]?.Value?.[0], 0xc122);
  assert.ok(implicitScp.received(ctUids.sop), "the uncompressed instance went, transcoded to Implicit VR LE");
  assert.equal(implicitScp.received(jpegUids.sop), undefined);

  const proposed = implicitScp.proposals().slice(seen);
  assert.equal(proposed.length, 1, "one association");
  const forClass = (uid: string) => proposed[0]!.filter((c) => c.abstractSyntax === uid);
  const jpegContexts = forClass(jpegUids.sopClass);
  assert.ok(jpegContexts.length > 0);
  for (const c of jpegContexts) assert.deepEqual(c.transferSyntaxes, [JPEG_BASELINE], "nothing the JPEG cannot go in");
  const ctContexts = forClass(ctUids.sopClass);
  assert.ok(ctContexts.length > 0);
  for (const c of ctContexts) for (const t of c.transferSyntaxes) assert.ok(UNCOMPRESSED.includes(t), t);
  // Every uncompressed syntax is offered for the uncompressed instance.
  assert.deepEqual([...new Set(ctContexts.flatMap((c) => c.transferSyntaxes))].sort(), [...UNCOMPRESSED].sort());
});

test("STOW-RS of only a JPEG instance to an Implicit-only peer: no context accepted, a clean 409 with 0xC122", async () => {
  const jpeg = readFileSync(join(SAMPLES, "SC_rgb_jpeg_dcmtk.dcm"));
  const { status, json } = await stow([jpeg]);
  assert.equal(status, 409, JSON.stringify(json));
  const failed = json["00081198"]?.Value ?? [];
  assert.equal(failed[0]!["00081155"]?.Value?.[0], uidsOf(jpeg).sop);
  assert.equal(failed[0]!["00081197"]?.Value?.[0], 0xc122);
  // The gateway still serves: the Implicit-only peer takes an uncompressed instance next.
  const ct = readFileSync(join(SAMPLES, "CT_small.dcm"));
  assert.equal((await stow([ct])).status, 200);
});
