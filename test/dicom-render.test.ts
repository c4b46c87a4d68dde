/**
 * WADO-RS frames and rendered images from a DIMSE origin (a `dicomweb` endpoint with a `dicom`
 * backend): dicomweb-client fetches rendered frames as PNG and JPEG through the gateway from
 * Orthanc, and each image is compared pixel by pixel with pydicom's decoding of the same file
 * (16-bit signed CT without a window, MR with one, 8-bit RGB, a 15-frame 32-bit RT Dose in
 * Implicit VR). Raw frames (application/octet-stream) are the file's pixel bytes. An instance the
 * peer holds compressed and cannot decompress (RLE in dcmqrscp) is a 406 that says so; a frame
 * past the last is 404; study-level rendered stays 406.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PNG } from "pngjs";
import { startDcmqrscp, startOrthanc, SAMPLES, type Dcmqrscp, type Orthanc } from "./peers/dicom-peers.js";
import { python } from "./peers/pynetdicom.js";
import { splitMultipart, uidsOf } from "./dicom-files.js";
import { baseConfig, startDataplane, writeTree, type Dataplane } from "../dataplane/test/helpers.js";
import { parsePart10 } from "../dataplane/src/protocols/part10.js";
import { topLevelValue } from "../dataplane/src/protocols/transfer-syntax.js";

const file = (name: string) => join(SAMPLES, name);
const FILES = ["CT_small.dcm", "MR_small.dcm", "SC_rgb_small_odd.dcm", "rtdose.dcm"];
const CT = uidsOf(readFileSync(file("CT_small.dcm")));
const RLE = uidsOf(readFileSync(file("MR_small_RLE.dcm")));

let orthanc: Orthanc;
let qr: Dcmqrscp;
let dp: Dataplane;

before(async () => {
  orthanc = await startOrthanc();
  for (const f of FILES)
    assert.equal(
      (await fetch(`${orthanc.http}/instances`, { method: "POST", body: readFileSync(file(f)) })).status,
      200,
    );
  qr = await startDcmqrscp({}, ["+xr"]); // accepts RLE and keeps it as it came
  const stored = spawnSync("storescu", ["-xr", "-aec", qr.aet, "127.0.0.1", String(qr.port), file("MR_small_RLE.dcm")]);
  assert.equal(stored.status, 0, String(stored.stderr));
  const pipeline = (name: string, port: number, aet: string) => `
[pipelines.${name}]
networks = ["default"]
endpoints = ["${name}_in"]
backends = ["${name}_out"]

[endpoints.${name}_in]
service = "dicomweb"
options = { path_prefix = "/${name}" }

[backends.${name}_out]
service = "dicom"
options = { host = "127.0.0.1", port = ${port}, aet = "${aet}", local_aet = "HARMONY" }
`;
  const dir = writeTree({
    "config.toml": baseConfig(pipeline("orthanc", orthanc.dicomPort, orthanc.aet) + pipeline("qr", qr.port, qr.aet)),
  });
  dp = await startDataplane(join(dir, "config.toml"));
});

after(async () => {
  await dp?.stop();
  await orthanc?.stop();
  await qr?.stop();
});

const instanceUrl = (prefix: string, u: { study: string; series: string; sop: string }) =>
  dp.url("default", `/${prefix}/studies/${u.study}/series/${u.series}/instances/${u.sop}`);

for (const [name, frames] of [
  ["CT_small.dcm", [1]],
  ["MR_small.dcm", [1]],
  ["SC_rgb_small_odd.dcm", [1]],
  ["rtdose.dcm", [1, 8, 15]],
] as const) {
  test(`rendered ${name} (frames ${frames.join(", ")}) through dicomweb-client equals pydicom's pixels`, async () => {
    const r = await python("rendered_compare.py", [dp.url("default", "/orthanc"), file(name), ...frames.map(String)]);
    assert.equal(r.code, 0, r.err + r.out);
    const lines = r.out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { frame: number; png: Stat; jpeg: Stat });
    assert.deepEqual(
      lines.map((l) => l.frame),
      [...frames],
    );
    for (const l of lines) {
      assert.equal(l.png.format, "PNG");
      assert.ok(l.png.max <= 1, `frame ${l.frame}: PNG differs from pydicom by at most rounding (${l.png.max})`);
      assert.equal(l.jpeg.format, "JPEG");
      assert.ok(l.jpeg.mean < 4, `frame ${l.frame}: JPEG (quality 90) close to pydicom (mean ${l.jpeg.mean})`);
    }
  });
}
type Stat = { format: string; max: number; mean: number };

test("instance rendered, several frames as multipart, raw frames as the file's bytes", async () => {
  const rendered = await fetch(`${instanceUrl("orthanc", CT)}/rendered`, { headers: { accept: "image/png" } });
  assert.equal(rendered.status, 200, await rendered.clone().text());
  assert.equal(rendered.headers.get("content-type"), "image/png");
  const png = PNG.sync.read(Buffer.from(await rendered.arrayBuffer()));
  assert.deepEqual([png.width, png.height], [128, 128]);

  const noAccept = await fetch(`${instanceUrl("orthanc", CT)}/frames/1`);
  assert.equal(noAccept.headers.get("content-type"), "image/jpeg", "Harmony's default for frames: JPEG");

  const dose = uidsOf(readFileSync(file("rtdose.dcm")));
  const multi = await fetch(`${instanceUrl("orthanc", dose)}/frames/2,3/rendered`, {
    headers: { accept: "image/png" },
  });
  assert.equal(multi.status, 200);
  const parts = splitMultipart(Buffer.from(await multi.arrayBuffer()), multi.headers.get("content-type")!);
  assert.equal(parts.length, 2);
  assert.equal(PNG.sync.read(parts[0]!).width, 10);

  const raw = await fetch(`${instanceUrl("orthanc", dose)}/frames/3`, {
    headers: { accept: 'multipart/related; type="application/octet-stream"' },
  });
  assert.equal(raw.status, 200);
  const [frame] = splitMultipart(Buffer.from(await raw.arrayBuffer()), raw.headers.get("content-type")!);
  const p10 = parsePart10(readFileSync(file("rtdose.dcm")));
  const pixels = topLevelValue(p10.dataset, p10.transferSyntax, 0x7fe0, 0x0010)!;
  const size = 10 * 10 * 4;
  assert.ok(frame!.equals(pixels.subarray(2 * size, 3 * size)), "frame 3's stored bytes");
});

test("refusals: compressed at a peer that cannot decompress, a frame past the last, study-level rendered", async () => {
  const rle = await fetch(`${instanceUrl("qr", RLE)}/rendered`, { headers: { accept: "image/png" } });
  assert.equal(rle.status, 406, await rle.clone().text());
  assert.match(rle.headers.get("content-type") ?? "", /problem\+json/);
  assert.match(((await rle.json()) as { detail: string }).detail, /compressed.*no codec/);

  const past = await fetch(`${instanceUrl("orthanc", CT)}/frames/2`, { headers: { accept: "image/png" } });
  assert.equal(past.status, 404);

  const study = await fetch(dp.url("default", `/orthanc/studies/${CT.study}/rendered`), {
    headers: { accept: "image/png" },
  });
  assert.equal(study.status, 406);

  const notImage = await fetch(`${instanceUrl("orthanc", CT)}/rendered`, { headers: { accept: "text/html" } });
  assert.equal(notImage.status, 406);
});
