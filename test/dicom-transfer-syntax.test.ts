/**
 * Transfer syntaxes against independent peers (issue 13). The gateway holds instances in one
 * syntax and meets peers that take another: pynetdicom accepts only Implicit VR Little Endian, the
 * standard's default; a C-GET SCU offers only that; a DICOMweb client asks for `transfer-syntax=*`
 * or for one syntax. Uncompressed instances are transcoded losslessly (pydicom finds the same data
 * set, dciodvfy no new error); compressed ones keep their syntax; partial retrieves say so.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  dcmtk,
  dicomwebToDimsePipeline,
  scpToDicomwebPipeline,
  startOrthanc,
  SAMPLES,
  type Orthanc,
} from "./peers/dicom-peers.js";
import { IMPLICIT_LE, python, sameDataset, startPyStoreScp, type PyStoreScp } from "./peers/pynetdicom.js";
import { multipartRelated, splitMultipart, uidsOf } from "./dicom-files.js";
import { baseConfig, freePort, startDataplane, tempDir, writeTree, type Dataplane } from "../dataplane/test/helpers.js";
import { parsePart10 } from "../dataplane/src/protocols/part10.js";

const EXPLICIT_LE = "1.2.840.10008.1.2.1";
const EXPLICIT_BE = "1.2.840.10008.1.2.2";
const DEFLATED = "1.2.840.10008.1.2.1.99";
const JPEG_BASELINE = "1.2.840.10008.1.2.4.50";
const J2K_LOSSLESS = "1.2.840.10008.1.2.4.90";
const RLE = "1.2.840.10008.1.2.5";

let orthanc: Orthanc;
let implicitScp: PyStoreScp;
let warningScp: PyStoreScp; // answers every C-STORE with 0xB000 (coercion of data elements)
let dp: Dataplane;
let scpPort: number; // gateway SCP → Orthanc over DICOMweb
let pacs: string; // gateway DICOMweb → Orthanc over DIMSE
let implicitPacs: string; // gateway DICOMweb → the Implicit-only pynetdicom SCP
interface Instance {
  file: string;
  source: string;
  series: string;
  sop: string;
  sopClass: string;
  transferSyntax: string;
}
let mixed: { study: string; instances: Instance[] };
const byTs = (ts: string) => mixed.instances.find((i) => i.transferSyntax === ts)!;

function dciodvfyErrors(file: string): string[] {
  const r = spawnSync("dciodvfy", [file], { encoding: "utf8" });
  return `${r.stdout}${r.stderr}`.split("\n").filter((l) => /^Error/.test(l));
}

/** dciodvfy errors in `emitted` that the original did not have already. */
function newDciodvfyErrors(original: string, emitted: string): string[] {
  const before = new Set(dciodvfyErrors(original));
  return dciodvfyErrors(emitted).filter((e) => !before.has(e));
}

function save(file: Buffer): string {
  const path = join(tempDir("harmony-ts-"), "object.dcm");
  writeFileSync(path, file);
  return path;
}

before(async () => {
  orthanc = await startOrthanc();
  implicitScp = await startPyStoreScp("IMPLICIT");
  warningScp = await startPyStoreScp("WARNING", [EXPLICIT_LE], 0xb000);
  // One study holding every kind of syntax, each instance kept in its own.
  const made = await python("make_study.py", [
    "mixed",
    tempDir("harmony-mixed-"),
    join(SAMPLES, "CT_small.dcm"), // Explicit VR Little Endian, with private tags
    join(SAMPLES, "MR_small_bigendian.dcm"),
    join(SAMPLES, "SC_rgb_jpeg_dcmtk.dcm"),
    join(SAMPLES, "MR_small_jp2klossless.dcm"),
    join(SAMPLES, "MR_small_RLE.dcm"),
  ]);
  assert.equal(made.code, 0, made.err);
  mixed = JSON.parse(made.out) as typeof mixed;
  for (const i of mixed.instances) {
    const r = await fetch(`${orthanc.http}/instances`, { method: "POST", body: readFileSync(i.file) });
    assert.equal(r.status, 200, `${i.source}: ${await r.text()}`);
  }
  scpPort = await freePort();
  const dir = writeTree({
    "config.toml": baseConfig(
      scpToDicomwebPipeline(scpPort, orthanc.dicomweb, { IMPLICIT: implicitScp.port }) +
        dicomwebToDimsePipeline("pacs", "/pacs", { port: orthanc.dicomPort, aet: orthanc.aet }) +
        dicomwebToDimsePipeline("implicit", "/implicit", { port: implicitScp.port, aet: "IMPLICIT" }) +
        dicomwebToDimsePipeline("warning", "/warning", { port: warningScp.port, aet: "WARNING" }),
    ),
  });
  dp = await startDataplane(join(dir, "config.toml"));
  await dp.waitForLog((l) => l.message === "DICOM listener started" && l.port === scpPort);
  pacs = dp.url("default", "/pacs");
  implicitPacs = dp.url("default", "/implicit");
});

after(async () => {
  await dp?.stop();
  await Promise.all([orthanc?.stop(), implicitScp?.stop(), warningScp?.stop()]);
});

test("STOW-RS to an Implicit-only PACS: uncompressed instances are transcoded losslessly, compressed ones refused with 0xC122", async () => {
  const files = [byTs(EXPLICIT_LE), byTs(EXPLICIT_BE), byTs(JPEG_BASELINE)].map((i) => readFileSync(i.file));
  const deflated = readFileSync(join(SAMPLES, "image_dfl.dcm"));
  const { body, contentType } = multipartRelated([...files, deflated]);
  const res = await fetch(`${implicitPacs}/studies`, {
    method: "POST",
    headers: { "content-type": contentType, accept: "application/dicom+json" },
    body,
  });
  const json = (await res.json()) as Record<string, { Value?: Record<string, { Value?: unknown[] }>[] }>;
  assert.equal(res.status, 202, JSON.stringify(json)); // three stored, the JPEG one not
  const failed = json["00081198"]?.Value ?? [];
  assert.equal(failed.length, 1);
  assert.equal(failed[0]!["00081155"]?.Value?.[0], byTs(JPEG_BASELINE).sop);
  // A PS3.4 status (US, never negative): the peer took no syntax the instance can be sent in.
  assert.equal(failed[0]!["00081197"]?.Value?.[0], 0xc122);
  for (const [source, sop] of [
    [byTs(EXPLICIT_LE).file, byTs(EXPLICIT_LE).sop],
    [byTs(EXPLICIT_BE).file, byTs(EXPLICIT_BE).sop],
    [join(SAMPLES, "image_dfl.dcm"), uidsOf(deflated).sop],
  ] as const) {
    const stored = implicitScp.received(sop);
    assert.ok(stored, `${source} reached the Implicit-only SCP`);
    assert.equal(parsePart10(readFileSync(stored)).transferSyntax, IMPLICIT_LE);
    const same = await sameDataset(source, stored);
    assert.ok(same.same, `${source}: ${same.report}`);
    // dciodvfy cannot read Deflated data sets, so the deflated original is no baseline for it.
    if (parsePart10(readFileSync(source)).transferSyntax !== DEFLATED)
      assert.deepEqual(newDciodvfyErrors(source, stored), [], source);
  }
});

test("C-MOVE through the gateway SCP to an Implicit-only third AE completes every sub-operation", async () => {
  const ct = byTs(EXPLICIT_LE);
  const r = await dcmtk("movescu", [
    "-S",
    "-aet",
    "MOVESCU",
    "-aec",
    "HARMONY",
    "-aem",
    "IMPLICIT",
    "-k",
    "QueryRetrieveLevel=SERIES",
    "-k",
    `StudyInstanceUID=${mixed.study}`,
    "-k",
    `SeriesInstanceUID=${ct.series}`,
    "127.0.0.1",
    String(scpPort),
  ]);
  assert.equal(r.code, 0, r.out);
  const stored = implicitScp.received(ct.sop);
  assert.ok(stored, `the instance reached IMPLICIT:\n${r.out}`);
  assert.equal(parsePart10(readFileSync(stored)).transferSyntax, IMPLICIT_LE);
  const same = await sameDataset(ct.file, stored);
  assert.ok(same.same, same.report);
});

test("C-GET from an Implicit-only SCU through the gateway SCP receives the instance, transcoded losslessly", async () => {
  for (const inst of [byTs(EXPLICIT_LE), byTs(EXPLICIT_BE)]) {
    const dir = tempDir("harmony-getscu-");
    const r = await python("get_scu.py", [
      "127.0.0.1",
      String(scpPort),
      "HARMONY",
      dir,
      `${mixed.study}/${inst.series}/${inst.sop}`,
      inst.sopClass,
      IMPLICIT_LE,
    ]);
    assert.equal(r.code, 0, r.err);
    const result = JSON.parse(r.out) as { responses: { status: number; completed: number; failed: number }[] };
    const final = result.responses.at(-1)!;
    assert.equal(final.status, 0, r.out);
    assert.equal(final.completed, 1, r.out);
    const got = join(dir, `${inst.sop}.dcm`);
    assert.equal(parsePart10(readFileSync(got)).transferSyntax, IMPLICIT_LE);
    const same = await sameDataset(inst.file, got);
    assert.ok(same.same, `${inst.source}: ${same.report}`);
  }
});

test("C-GET through the gateway SCP returns a JPEG 2000 instance as stored (the origin is asked for transfer-syntax=*)", async () => {
  const j2k = byTs(J2K_LOSSLESS);
  const dir = tempDir("harmony-getscu-");
  const r = await python("get_scu.py", [
    "127.0.0.1",
    String(scpPort),
    "HARMONY",
    dir,
    `${mixed.study}/${j2k.series}/${j2k.sop}`,
    j2k.sopClass,
    J2K_LOSSLESS,
  ]);
  assert.equal(r.code, 0, r.err);
  const final = (JSON.parse(r.out) as { responses: { status: number; completed: number }[] }).responses.at(-1)!;
  assert.deepEqual([final.status, final.completed], [0, 1], r.out);
  const got = readFileSync(join(dir, `${j2k.sop}.dcm`));
  assert.equal(parsePart10(got).transferSyntax, J2K_LOSSLESS);
  assert.ok(parsePart10(got).dataset.equals(parsePart10(readFileSync(j2k.file)).dataset));
});

test("WADO-RS via C-GET with transfer-syntax=*: every instance of a mixed study, each in its stored syntax", async () => {
  const res = await fetch(`${pacs}/studies/${mixed.study}`, {
    headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' },
  });
  assert.equal(res.status, 200);
  const parts = splitMultipart(Buffer.from(await res.arrayBuffer()), res.headers.get("content-type")!);
  assert.equal(parts.length, mixed.instances.length);
  for (const part of parts) {
    const p10 = parsePart10(part);
    const inst = mixed.instances.find((i) => i.sop === p10.sopInstance)!;
    assert.ok(inst, p10.sopInstance);
    if (inst.transferSyntax !== EXPLICIT_BE) {
      // Orthanc sends an uncompressed instance in the syntax the context took; the rest as stored.
      assert.equal(p10.transferSyntax, inst.transferSyntax, inst.source);
    }
    const path = save(part);
    const same = await sameDataset(inst.file, path);
    assert.ok(same.same, `${inst.source}: ${same.report}`);
    assert.deepEqual(newDciodvfyErrors(inst.file, path), [], inst.source);
  }
});

test("WADO-RS via C-GET honours a transfer-syntax in Accept: uncompressed instances come in it", async () => {
  const mr = byTs(EXPLICIT_BE);
  const res = await fetch(`${pacs}/studies/${mixed.study}/series/${mr.series}/instances/${mr.sop}`, {
    headers: { accept: `multipart/related; type="application/dicom"; transfer-syntax=${DEFLATED}` },
  });
  assert.equal(res.status, 200);
  const parts = splitMultipart(Buffer.from(await res.arrayBuffer()), res.headers.get("content-type")!);
  assert.equal(parts.length, 1);
  assert.equal(parsePart10(parts[0]!).transferSyntax, DEFLATED);
  const same = await sameDataset(mr.file, save(parts[0]!));
  assert.ok(same.same, same.report);
});

test("WADO-RS via C-GET that cannot return every instance answers 206 with a Warning, not a plain 200", async () => {
  // Only RLE accepted: the uncompressed instances go out transcoded, the JPEG and JPEG 2000 ones
  // cannot (never decoded here), so the answer is partial.
  const res = await fetch(`${pacs}/studies/${mixed.study}`, {
    headers: { accept: `multipart/related; type="application/dicom"; transfer-syntax=${RLE}` },
  });
  const parts = splitMultipart(Buffer.from(await res.arrayBuffer()), res.headers.get("content-type")!);
  assert.equal(res.status, 206);
  assert.match(res.headers.get("warning") ?? "", /^299 /);
  assert.ok(parts.length >= 1 && parts.length < mixed.instances.length, `${parts.length} parts`);
  for (const part of parts) assert.equal(parsePart10(part).transferSyntax, RLE);
});

interface GetResult {
  responses: { status: number; remaining: number; completed: number; failed: number; failedUids: string[] | null }[];
}

async function getScu(uids: string, sopClasses: string[], syntaxes: string[]): Promise<GetResult> {
  const r = await python("get_scu.py", [
    "127.0.0.1",
    String(scpPort),
    "HARMONY",
    tempDir("harmony-getscu-"),
    uids,
    sopClasses.join(","),
    ...syntaxes,
  ]);
  assert.equal(r.code, 0, r.err);
  return JSON.parse(r.out) as GetResult;
}

test("C-GET SCP: a list of Series UIDs retrieves each, and pending responses count the remaining sub-operations", async () => {
  const a = byTs(EXPLICIT_LE);
  const b = byTs(EXPLICIT_BE);
  const r = await getScu(`${mixed.study}/${a.series}\\${b.series}`, [a.sopClass, b.sopClass], [IMPLICIT_LE]);
  const final = r.responses.at(-1)!;
  assert.deepEqual([final.status, final.completed, final.failed], [0, 2, 0], JSON.stringify(r));
  assert.deepEqual(
    r.responses.slice(0, -1).map((x) => x.remaining),
    [1, 0],
    JSON.stringify(r),
  );
});

test("C-GET SCP: Patient Root at PATIENT level retrieves the patient's studies", async () => {
  const ct = byTs(EXPLICIT_LE);
  const r = await getScu(`PATIENT:${uidsOf(readFileSync(ct.file)).patientId}`, [ct.sopClass], [IMPLICIT_LE]);
  const final = r.responses.at(-1)!;
  // The SCU takes only the CT's SOP class: the CT goes, the other four cannot.
  assert.deepEqual([final.completed, final.failed], [1, mixed.instances.length - 1], JSON.stringify(r));
});

test("C-GET SCP: the final response of a partly failed retrieve lists the Failed SOP Instance UIDs", async () => {
  // The SCU takes MR only in Implicit VR: the Big Endian one is transcoded, the RLE one cannot be.
  const be = byTs(EXPLICIT_BE);
  const rle = byTs(RLE);
  const r = await getScu(`${mixed.study}/${be.series}\\${rle.series}`, [be.sopClass], [IMPLICIT_LE]);
  const final = r.responses.at(-1)!;
  assert.deepEqual([final.status, final.completed, final.failed], [0xb000, 1, 1], JSON.stringify(r));
  assert.deepEqual(final.failedUids, [rle.sop], JSON.stringify(r));
});

test("dicomweb-client through the gateway to a PACS: STOW-RS, QIDO-RS, WADO-RS as stored and by default", async () => {
  const made = await python("make_study.py", [
    "dicomweb-client",
    tempDir("harmony-dwc-"),
    join(SAMPLES, "CT_small.dcm"),
    join(SAMPLES, "MR_small_bigendian.dcm"),
    join(SAMPLES, "MR_small_RLE.dcm"),
  ]);
  assert.equal(made.code, 0, made.err);
  const study = JSON.parse(made.out) as { study: string; instances: Instance[] };
  const r = await python("dicomweb_run.py", [pacs, ...study.instances.map((i) => i.file)]);
  assert.equal(r.code, 0, r.err);
  const out = JSON.parse(r.out) as {
    stored: number;
    failed: number;
    search: string[];
    asStored: Record<string, { transferSyntax: string; elements: boolean; pixels: boolean | null }>;
    default: Record<string, { transferSyntax: string; elements: boolean; pixels: boolean | null }>;
    metadata: string[];
  };
  assert.deepEqual([out.stored, out.failed], [3, 0], r.out);
  assert.deepEqual(out.search, [study.study]);
  assert.equal(out.metadata.length, 3);
  for (const i of study.instances) {
    const asStored = out.asStored[i.sop]!;
    assert.ok(asStored.elements && asStored.pixels, `${i.source} as stored: ${r.out}`);
    if (i.transferSyntax === RLE) assert.equal(asStored.transferSyntax, RLE);
    const byDefault = out.default[i.sop];
    // dicomweb-client's default asks for Explicit VR Little Endian: uncompressed ones come in it.
    if (i.transferSyntax !== RLE) {
      assert.equal(byDefault?.transferSyntax, EXPLICIT_LE, `${i.source}: ${r.out}`);
      assert.ok(byDefault.elements && byDefault.pixels, `${i.source} by default: ${r.out}`);
    }
  }
});

test("STOW-RS: a PACS warning (0xB000) is 202 with WarningReason, not a plain 200", async () => {
  const ct = byTs(EXPLICIT_LE);
  const { body, contentType } = multipartRelated([readFileSync(ct.file)]);
  const res = await fetch(dp.url("default", "/warning/studies"), {
    method: "POST",
    headers: { "content-type": contentType, accept: "application/dicom+json" },
    body,
  });
  const json = (await res.json()) as Record<string, { Value?: Record<string, { Value?: unknown[] }>[] }>;
  assert.equal(res.status, 202, JSON.stringify(json));
  const ref = json["00081199"]?.Value?.[0];
  assert.equal(ref?.["00081155"]?.Value?.[0], ct.sop);
  assert.deepEqual(ref?.["00081196"]?.Value, [0xb000]);
  assert.equal(json["00081198"], undefined);
});
