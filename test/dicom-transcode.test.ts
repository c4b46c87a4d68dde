/**
 * The lossless transcoder (dataplane/src/protocols/transfer-syntax.ts) over pydicom's sample
 * files: every uncompressed sample into every uncompressed syntax, judged by pydicom (the same
 * data set, python/same_dataset.py) and dciodvfy (no error the original did not have). Sequences
 * of undefined length, private sequences, UN sequences in Implicit VR, waveforms, RT objects and
 * both byte orders are among them. Compressed syntaxes are refused, never decoded.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SAMPLES } from "./peers/dicom-peers.js";
import { sameDataset } from "./peers/pynetdicom.js";
import { tempDir } from "../dataplane/test/helpers.js";
import { parsePart10, toPart10 } from "../dataplane/src/protocols/part10.js";
import { DEFLATED_LE, TranscodeError, UNCOMPRESSED, transcode } from "../dataplane/src/protocols/transfer-syntax.js";

const SAMPLE_FILES = [
  "CT_small.dcm", // Explicit LE, GE private elements
  "MR_small_implicit.dcm",
  "MR_small_bigendian.dcm",
  "image_dfl.dcm", // Deflated
  "rtplan.dcm", // nested sequences
  "nested_priv_SQ.dcm", // private sequences in Implicit VR
  "test-SR.dcm", // deep content tree
  "waveform_ecg.dcm", // OW waveform data, many sequences
  "ExplVR_BigEnd.dcm",
  "rtdose.dcm", // multi-frame
];

function dciodvfyErrors(file: string): string[] {
  const r = spawnSync("dciodvfy", [file], { encoding: "utf8" });
  return `${r.stdout}${r.stderr}`.split("\n").filter((l) => /^Error/.test(l));
}

for (const name of SAMPLE_FILES) {
  test(`${name}: into every uncompressed syntax, the same data set`, async () => {
    const source = join(SAMPLES, name);
    const p10 = parsePart10(readFileSync(source));
    const before = new Set(dciodvfyErrors(source));
    for (const to of UNCOMPRESSED) {
      if (to === p10.transferSyntax) continue;
      const dataset = transcode(p10.dataset, p10.transferSyntax, to);
      const out = join(tempDir("harmony-transcode-"), "out.dcm");
      writeFileSync(out, toPart10({ ...p10, transferSyntax: to, dataset }));
      const same = await sameDataset(source, out);
      assert.ok(same.same, `${name} → ${to}: ${same.report}`);
      // dciodvfy cannot read Deflated data sets at all: no baseline on either side.
      if (to !== DEFLATED_LE && p10.transferSyntax !== DEFLATED_LE)
        assert.deepEqual(
          dciodvfyErrors(out).filter((e) => !before.has(e)),
          [],
          `${name} → ${to}`,
        );
      // And back: between the explicit syntaxes, byte for byte.
      if (
        p10.transferSyntax !== "1.2.840.10008.1.2" &&
        to !== "1.2.840.10008.1.2" &&
        p10.transferSyntax !== DEFLATED_LE
      )
        assert.ok(transcode(dataset, to, p10.transferSyntax).equals(p10.dataset), `${name} → ${to} → back`);
    }
  });
}

test("compressed data sets are refused, never decoded", () => {
  const p10 = parsePart10(readFileSync(join(SAMPLES, "JPEG2000.dcm")));
  assert.throws(() => transcode(p10.dataset, p10.transferSyntax, "1.2.840.10008.1.2"), TranscodeError);
});

test("malformed data sets are a TranscodeError, not a crash", () => {
  const p10 = parsePart10(readFileSync(join(SAMPLES, "CT_small.dcm")));
  for (const bad of [
    p10.dataset.subarray(0, p10.dataset.length - 7), // truncated inside pixel data
    Buffer.concat([p10.dataset.subarray(0, 8), Buffer.from("SQ\0\0\xff\xff\xff\xff", "latin1")]), // no delimiter
    Buffer.from("0800050043530a00", "hex"), // a length past the end
  ])
    assert.throws(() => transcode(bad, p10.transferSyntax, "1.2.840.10008.1.2"), TranscodeError);
});

test("sequences nested past a fixed depth are refused before the stack runs out", () => {
  const level = Buffer.from("400030a753510000fffffffffeff00e0ffffffff", "hex"); // (0040,A730) SQ, an item
  const deep = Buffer.concat(Array.from({ length: 100_000 }, () => level));
  assert.throws(() => transcode(deep, "1.2.840.10008.1.2.1", "1.2.840.10008.1.2"), /nested deeper than 256/);
});
