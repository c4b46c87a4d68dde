/**
 * DICOM Part 10 framing (PS3.10 §7): a 128-byte preamble, "DICM", the File Meta group (0002,xxxx,
 * always Explicit VR Little Endian), then the data set in the transfer syntax the meta names.
 * DIMSE carries only the data set, so a gateway between DICOMweb (Part 10 files) and DIMSE splits
 * and rebuilds this frame; the data set bytes themselves pass through untouched.
 */
export interface Part10 {
  transferSyntax: string;
  sopClass: string;
  sopInstance: string;
  /** The data set, byte for byte as in the file. */
  dataset: Buffer;
}

const LONG_VRS = new Set(["OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"]);

export class Part10Error extends Error {}

export function parsePart10(file: Buffer): Part10 {
  if (file.length < 132 || file.toString("latin1", 128, 132) !== "DICM")
    throw new Part10Error("not a DICOM Part 10 file (no DICM prefix)");
  let at = 132;
  const meta: Record<string, string> = {};
  while (at + 8 <= file.length && file.readUInt16LE(at) === 0x0002) {
    const element = file.readUInt16LE(at + 2);
    const vr = file.toString("latin1", at + 4, at + 6);
    let length: number;
    let valueAt: number;
    if (LONG_VRS.has(vr)) {
      length = file.readUInt32LE(at + 8);
      valueAt = at + 12;
    } else {
      length = file.readUInt16LE(at + 6);
      valueAt = at + 8;
    }
    if (valueAt + length > file.length) throw new Part10Error("file meta information is truncated");
    if (vr === "UI")
      meta[element.toString(16).padStart(4, "0")] = file
        .toString("latin1", valueAt, valueAt + length)
        .replace(/[\0 ]+$/, "");
    at = valueAt + length;
  }
  const transferSyntax = meta["0010"];
  if (!transferSyntax) throw new Part10Error("file meta information has no TransferSyntaxUID (0002,0010)");
  return {
    transferSyntax,
    sopClass: meta["0002"] ?? "",
    sopInstance: meta["0003"] ?? "",
    dataset: file.subarray(at),
  };
}

/** Our implementation identity in the meta groups we write (PS3.7 D.3.3.2; a 2.25 UUID-derived root). */
export const IMPLEMENTATION_CLASS_UID = "2.25.226516417478153473325633413596440183937";
export const IMPLEMENTATION_VERSION = "HARMONY_1";

function element(group: number, el: number, vr: string, value: Buffer): Buffer {
  const long = LONG_VRS.has(vr);
  const head = Buffer.alloc(long ? 12 : 8);
  head.writeUInt16LE(group, 0);
  head.writeUInt16LE(el, 2);
  head.write(vr, 4, "latin1");
  if (long) head.writeUInt32LE(value.length, 8);
  else head.writeUInt16LE(value.length, 6);
  return Buffer.concat([head, value]);
}

/** UI values are padded to even length with NUL (PS3.5 §6.2). */
const ui = (s: string) => Buffer.from(s.length % 2 ? s + "\0" : s, "latin1");
const sh = (s: string) => Buffer.from(s.length % 2 ? s + " " : s, "latin1");

/** The preamble and File Meta group for a data set; concatenate the data set bytes after it. */
export function part10Header(p: Omit<Part10, "dataset">, sourceAet?: string): Buffer {
  const body = Buffer.concat([
    element(0x0002, 0x0001, "OB", Buffer.from([0, 1])),
    element(0x0002, 0x0002, "UI", ui(p.sopClass)),
    element(0x0002, 0x0003, "UI", ui(p.sopInstance)),
    element(0x0002, 0x0010, "UI", ui(p.transferSyntax)),
    element(0x0002, 0x0012, "UI", ui(IMPLEMENTATION_CLASS_UID)),
    element(0x0002, 0x0013, "SH", sh(IMPLEMENTATION_VERSION)),
    ...(sourceAet ? [element(0x0002, 0x0016, "AE", sh(sourceAet.slice(0, 16)))] : []),
  ]);
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(body.length);
  return Buffer.concat([Buffer.alloc(128), Buffer.from("DICM"), element(0x0002, 0x0000, "UL", groupLength), body]);
}

export const toPart10 = (p: Part10, sourceAet?: string): Buffer =>
  Buffer.concat([part10Header(p, sourceAet), p.dataset]);
