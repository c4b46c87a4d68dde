/**
 * DICOMweb clients reaching DIMSE peers through the gateway (`dicomweb` endpoint → `dicom`
 * backend, the bridge PS3.18 makes possible): QIDO-RS as C-FIND, WADO-RS as C-GET, STOW-RS as
 * C-STORE, against Orthanc's DIMSE port and dcmtk's dcmqrscp. Every object the gateway emits
 * passes dciodvfy; the data sets it relays are byte-identical to what the archive holds.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
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
import { makeInstance, multipartRelated, splitMultipart, uid, uidsOf } from "./dicom-files.js";
import { baseConfig, freePort, startDataplane, tempDir, writeTree, type Dataplane } from "../dataplane/test/helpers.js";
import { parsePart10 } from "../dataplane/src/protocols/part10.js";

let orthanc: Orthanc;
let qr: Dcmqrscp;
let wl: Worklist;
let movePorts: { pacs: number; archive: number };
let wire: StoreScp; // storescp +B: keeps what the gateway sent, byte for byte
let dp: Dataplane;
let pacs: string; // gateway → Orthanc DIMSE
let archive: string; // gateway → dcmqrscp
const ct = readFileSync(join(SAMPLES, "CT_small.dcm"));
const mr = readFileSync(join(SAMPLES, "MR_small.dcm"));
const CT = uidsOf(ct);
const MR = uidsOf(mr);
type DicomJson = Record<string, { vr: string; Value?: unknown[]; InlineBinary?: string }>;

function dciodvfyErrors(file: Buffer): string[] {
  const path = join(tempDir("harmony-dciodvfy-"), "object.dcm");
  writeFileSync(path, file);
  const r = spawnSync("dciodvfy", [path], { encoding: "utf8" });
  return `${r.stdout}${r.stderr}`.split("\n").filter((l) => /^Error/.test(l));
}

before(async () => {
  movePorts = { pacs: await freePort(), archive: await freePort() };
  orthanc = await startOrthanc({ modalities: { MOVE_PACS: ["MOVE_PACS", "127.0.0.1", movePorts.pacs] } });
  qr = await startDcmqrscp({ harmony: ["MOVE_QR", movePorts.archive] });
  wl = await startWorklist();
  wire = await startStorescp("WIRE", undefined, true);
  for (const f of [ct, mr])
    assert.equal((await fetch(`${orthanc.http}/instances`, { method: "POST", body: f })).status, 200);
  const storescu = spawnSync("storescu", ["-aec", qr.aet, "127.0.0.1", String(qr.port), join(SAMPLES, "CT_small.dcm")]);
  assert.equal(storescu.status, 0, String(storescu.stderr));
  const dead = await freePort();
  const bridge = (name: string, prefix: string, host: string, port: number, aet: string, extra = "") => `
[pipelines.${name}]
networks = ["default"]
endpoints = ["${name}_in"]
backends = ["${name}_out"]

[endpoints.${name}_in]
service = "dicomweb"
options = { path_prefix = "${prefix}" }

[backends.${name}_out]
service = "dicom"
options = { host = "${host}", port = ${port}, aet = "${aet}", local_aet = "HARMONY", connect_timeout_ms = 2000${extra} }
`;
  const dir = writeTree({
    "config.toml": baseConfig(
      bridge("pacs", "/pacs", "127.0.0.1", orthanc.dicomPort, orthanc.aet) +
        bridge("archive", "/archive", "127.0.0.1", qr.port, qr.aet) +
        bridge("dead", "/dead", "127.0.0.1", dead, "NOBODY") +
        bridge("worklist", "/worklist", "127.0.0.1", wl.port, wl.aet) +
        bridge("wire", "/wire", "127.0.0.1", wire.port, wire.aet) +
        bridge(
          "pacs_move",
          "/pacs-move",
          "127.0.0.1",
          orthanc.dicomPort,
          orthanc.aet,
          `, retrieve = "move", move_aet = "MOVE_PACS", move_port = ${movePorts.pacs}, move_bind_address = "127.0.0.1"`,
        ) +
        bridge(
          "archive_move",
          "/archive-move",
          "127.0.0.1",
          qr.port,
          qr.aet,
          `, retrieve = "move", move_aet = "MOVE_QR", move_port = ${movePorts.archive}, move_bind_address = "127.0.0.1"`,
        ),
    ),
  });
  dp = await startDataplane(join(dir, "config.toml"));
  pacs = dp.url("default", "/pacs");
  archive = dp.url("default", "/archive");
});

after(async () => {
  await dp?.stop();
  await orthanc?.stop();
  await qr?.stop();
  await wl?.stop();
  await wire?.stop();
});

test("QIDO-RS → C-FIND: the archive's answers as DICOM JSON, with RetrieveURLs on the gateway", async () => {
  for (const base of [pacs, archive]) {
    const res = await fetch(`${base}/studies?PatientID=${CT.patientId}`, {
      headers: { accept: "application/dicom+json" },
    });
    assert.equal(res.status, 200, base);
    assert.equal(res.headers.get("content-type"), "application/dicom+json");
    const studies = (await res.json()) as DicomJson[];
    assert.equal(studies.length, 1);
    assert.equal(studies[0]!["0020000D"]!.Value![0], CT.study);
    assert.equal(studies[0]!["00100020"]!.Value![0], CT.patientId);
    assert.equal(studies[0]!["00081190"]!.Value![0], `${base}/studies/${CT.study}`);
    assert.equal(studies[0]!["00080052"], undefined, "no QueryRetrieveLevel in results");
  }
  // Same study as Orthanc's own DICOMweb reports.
  const direct = (await (await fetch(`${orthanc.dicomweb}/studies?PatientID=${CT.patientId}`)).json()) as DicomJson[];
  const viaDimse = (await (await fetch(`${pacs}/studies?PatientID=${CT.patientId}`)).json()) as DicomJson[];
  for (const tag of ["0020000D", "00100020", "00080020", "00080050"])
    assert.deepEqual(viaDimse[0]![tag]?.Value, direct[0]![tag]?.Value, tag);

  const series = (await (await fetch(`${pacs}/studies/${CT.study}/series`)).json()) as DicomJson[];
  assert.equal(series[0]!["0020000E"]!.Value![0], CT.series);
  const inst = (await (await fetch(`${pacs}/studies/${CT.study}/series/${CT.series}/instances`)).json()) as DicomJson[];
  assert.equal(inst[0]!["00080018"]!.Value![0], CT.sop);
  assert.equal(inst[0]!["00081190"]!.Value![0], `${pacs}/studies/${CT.study}/series/${CT.series}/instances/${CT.sop}`);

  const wildcard = (await (await fetch(`${pacs}/studies?PatientName=Compressed*`)).json()) as DicomJson[];
  assert.equal(wildcard.length, 2, "wildcards are C-FIND wildcards");
  const paged = (await (await fetch(`${pacs}/studies?PatientName=Compressed*&limit=1&offset=1`)).json()) as DicomJson[];
  assert.equal(paged.length, 1);
  const none = await fetch(`${pacs}/studies?PatientID=nobody`);
  assert.equal(none.status, 204, "no match is 204 No Content");
  const badKey = await fetch(`${pacs}/studies?NotAnAttribute=1`);
  assert.equal(badKey.status, 400);
});

/** What the archive holds: dcmqrscp's stored file for that instance. */
function storedBy(dir: string, sop: string): Buffer {
  for (const f of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!f.isFile()) continue;
    const buf = readFileSync(join(f.parentPath, f.name));
    if (buf.length > 132 && buf.toString("latin1", 128, 132) === "DICM" && parsePart10(buf).sopInstance === sop)
      return buf;
  }
  throw new Error(`no stored file for ${sop}`);
}

/** DCMTK's network layer (Orthanc's too) drops Data Set Trailing Padding (FFFC,FFFC) when it sends. */
function withoutTrailingPadding(ds: Buffer): Buffer {
  const i = ds.lastIndexOf(Buffer.from("fcfffcff4f420000", "hex"));
  return i >= 0 && i + 12 + ds.readUInt32LE(i + 8) === ds.length ? ds.subarray(0, i) : ds;
}

test("WADO-RS → C-GET: instances stream out as Part 10, data sets byte-identical, dciodvfy-clean", async () => {
  for (const [base, file, u] of [
    [pacs, ct, CT],
    [pacs, mr, MR],
    [archive, storedBy(qr.dir, CT.sop), CT],
  ] as const) {
    const res = await fetch(`${base}/studies/${u.study}/series/${u.series}/instances/${u.sop}`, {
      headers: { accept: 'multipart/related; type="application/dicom"' },
    });
    assert.equal(res.status, 200);
    const parts = splitMultipart(Buffer.from(await res.arrayBuffer()), res.headers.get("content-type")!);
    assert.equal(parts.length, 1);
    const got = parsePart10(parts[0]!);
    const want = parsePart10(file);
    assert.equal(got.sopInstance, u.sop);
    assert.equal(got.transferSyntax, want.transferSyntax);
    assert.ok(
      got.dataset.equals(withoutTrailingPadding(want.dataset)),
      `${base}: the data set is the archive's, byte for byte`,
    );
    assert.deepEqual(dciodvfyErrors(parts[0]!), [], "dciodvfy finds no error in what we emit");
  }
  const study = await fetch(`${pacs}/studies/${CT.study}`);
  assert.equal(study.status, 200);
  assert.equal(splitMultipart(Buffer.from(await study.arrayBuffer()), study.headers.get("content-type")!).length, 1);

  const missing = await fetch(`${pacs}/studies/1.2.3.999`);
  assert.equal(missing.status, 404);
  const png = await fetch(`${pacs}/studies/${CT.study}`, { headers: { accept: "image/png" } });
  assert.equal(png.status, 406);
  // Study-level rendered images need a DICOMweb origin; instance frames are rendered here (test/dicom-render).
  const rendered = await fetch(`${pacs}/studies/${CT.study}/rendered`, { headers: { accept: "image/png" } });
  assert.equal(rendered.status, 406);
});

test("metadata → C-GET read as DICOM JSON", async () => {
  const res = await fetch(`${pacs}/studies/${CT.study}/metadata`);
  assert.equal(res.status, 200);
  const meta = (await res.json()) as DicomJson[];
  assert.equal(meta.length, 1);
  assert.equal(meta[0]!["00080018"]!.Value![0], CT.sop);
  assert.equal(meta[0]!["00280010"]!.Value![0], 128, "Rows as a number");
  // Pixel data is not inlined: a BulkDataURI on the gateway stands for it.
  const pixels = meta[0]!["7FE00010"] as { BulkDataURI?: string; InlineBinary?: string; Value?: unknown } | undefined;
  assert.equal(pixels?.InlineBinary ?? pixels?.Value, undefined, "pixel data is not inlined");
  assert.match(pixels?.BulkDataURI ?? "", /\/bulkdata\/7FE00010$/);
});

test("STOW-RS → C-STORE: stored in the archive, refused for another study, reported per instance", async () => {
  const study = uid("stow-bridge-study");
  const inst = (n: number) =>
    makeInstance({
      study,
      series: uid("stow-bridge-series"),
      sop: uid(`stow-bridge-${n}`),
      patientId: "STOW1",
      patientName: "Stow^Bridge",
    });
  const { body, contentType } = multipartRelated([inst(1), inst(2)]);
  const res = await fetch(`${pacs}/studies`, { method: "POST", headers: { "content-type": contentType }, body });
  assert.equal(res.status, 200, await res.clone().text());
  const out = (await res.json()) as DicomJson;
  assert.equal((out["00081199"]!.Value as unknown[]).length, 2);
  assert.equal(out["00081190"]!.Value![0], `${pacs}/studies/${study}`);
  const found = (await (await fetch(`${orthanc.dicomweb}/studies?PatientID=STOW1`)).json()) as DicomJson[];
  assert.equal(found.length, 1, "Orthanc has the study");

  // Posting to a study URL with an instance of another study: refused for that instance only.
  const mixed = multipartRelated([inst(3), ct]);
  const partial = await fetch(`${pacs}/studies/${study}`, {
    method: "POST",
    headers: { "content-type": mixed.contentType },
    body: mixed.body,
  });
  assert.equal(partial.status, 202);
  const p = (await partial.json()) as DicomJson;
  const failed = p["00081198"]!.Value as DicomJson[];
  assert.equal(failed.length, 1);
  assert.equal(failed[0]!["00081155"]!.Value![0], CT.sop);
  assert.equal(failed[0]!["00081197"]!.Value![0], 0xa900);

  // A compressed instance (JPEG 2000) is stored in its own transfer syntax, never decoded on the way.
  const j2k = readFileSync(join(SAMPLES, "JPEG2000.dcm"));
  const compressed = multipartRelated([j2k]);
  const c = await fetch(`${pacs}/studies`, {
    method: "POST",
    headers: { "content-type": compressed.contentType },
    body: compressed.body,
  });
  assert.equal(c.status, 200, await c.clone().text());
  const J2K = uidsOf(j2k);
  const held = (await (
    await fetch(`${orthanc.http}/tools/find`, {
      method: "POST",
      body: JSON.stringify({ Level: "Instance", Query: { SOPInstanceUID: J2K.sop } }),
    })
  ).json()) as string[];
  const file = Buffer.from(await (await fetch(`${orthanc.http}/instances/${held[0]}/file`)).arrayBuffer());
  // Orthanc keeps the syntax (its DCMTK re-encodes sequence lengths when it writes, so its file is
  // not the reference for bytes; storescp +B below is).
  assert.equal(parsePart10(file).transferSyntax, parsePart10(j2k).transferSyntax);
  const sent = await fetch(dp.url("default", "/wire/studies"), {
    method: "POST",
    headers: { "content-type": compressed.contentType },
    body: compressed.body,
  });
  assert.equal(sent.status, 200);
  const [received] = readdirSync(wire.dir).filter((f) => f.includes(J2K.sop));
  assert.ok(received, "storescp received it");
  assert.ok(
    parsePart10(readFileSync(join(wire.dir, received))).dataset.equals(parsePart10(j2k).dataset),
    "on the wire, the data set is the client's, byte for byte",
  );

  const junk = multipartRelated([Buffer.from("not dicom at all")]);
  const bad = await fetch(`${pacs}/studies`, {
    method: "POST",
    headers: { "content-type": junk.contentType },
    body: junk.body,
  });
  assert.equal(bad.status, 409, "nothing stored");
});

test("a DIMSE peer that is down is a 502 problem, not a hang", async () => {
  const res = await fetch(dp.url("default", `/dead/studies?PatientID=x`));
  assert.equal(res.status, 502);
  const p = (await res.json()) as { detail: string };
  assert.match(p.detail, /NOBODY/);
});

test("UPS-RS workitem search → Modality Worklist C-FIND, with matching inside the sequence", async () => {
  const all = await fetch(dp.url("default", "/worklist/workitems"));
  assert.equal(all.status, 200);
  const items = (await all.json()) as DicomJson[];
  assert.ok(items.length >= 2);
  assert.ok(
    items.some((i) => JSON.stringify(i["00100010"]?.Value) === JSON.stringify([{ Alphabetic: "VIVALDI^ANTONIO" }])),
  );
  const sps = items[0]!["00400100"]!.Value![0] as DicomJson;
  assert.ok(sps["00080060"], "Modality inside ScheduledProcedureStepSequence");
  const mr = (await (
    await fetch(dp.url("default", "/worklist/workitems?ScheduledProcedureStepSequence.Modality=MR"))
  ).json()) as DicomJson[];
  assert.ok(mr.length >= 1 && mr.length < items.length);
  for (const i of mr) assert.equal((i["00400100"]!.Value![0] as DicomJson)["00080060"]!.Value![0], "MR");
  const none = await fetch(dp.url("default", "/worklist/workitems?PatientID=nobody"));
  assert.equal(none.status, 204);
});

test("WADO-RS → C-MOVE to the gateway's own receiver, for peers without C-GET", async () => {
  for (const [base, file, u] of [
    [dp.url("default", "/pacs-move"), ct, CT],
    [dp.url("default", "/archive-move"), storedBy(qr.dir, CT.sop), CT],
  ] as const) {
    const res = await fetch(`${base}/studies/${u.study}/series/${u.series}/instances/${u.sop}`);
    assert.equal(res.status, 200, `${base}: ${await res.clone().text()}`);
    const parts = splitMultipart(Buffer.from(await res.arrayBuffer()), res.headers.get("content-type")!);
    assert.equal(parts.length, 1);
    assert.ok(parsePart10(parts[0]!).dataset.equals(withoutTrailingPadding(parsePart10(file).dataset)), base);
  }
  // Two at once through one receiver: each gets its own instances.
  const [a, b] = await Promise.all(
    [CT, MR].map((u) =>
      fetch(`${dp.url("default", "/pacs-move")}/studies/${u.study}`).then(async (r) => ({
        r,
        body: Buffer.from(await r.arrayBuffer()),
      })),
    ),
  );
  assert.equal(parsePart10(splitMultipart(a!.body, a!.r.headers.get("content-type")!)[0]!).sopInstance, CT.sop);
  assert.equal(parsePart10(splitMultipart(b!.body, b!.r.headers.get("content-type")!)[0]!).sopInstance, MR.sop);
  const missing = await fetch(`${dp.url("default", "/pacs-move")}/studies/1.2.3.999`);
  assert.equal(missing.status, 404);
});
