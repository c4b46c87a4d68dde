/**
 * Transfer syntaxes (PS3.5 §10) and lossless transcoding between the uncompressed ones: Implicit
 * VR Little Endian, Explicit VR Little Endian, Explicit VR Big Endian and Deflated Explicit VR
 * Little Endian. They differ only in how each element's header and multi-byte values are written
 * (and, for Deflated, in a raw deflate around it all), so a data set moves between them element by
 * element without touching a value's meaning. This works on the encoded bytes rather than through
 * dcmjs's reader and writer, because that round trip re-formats values (DS and IS become numbers,
 * strings are decoded and re-encoded) and a gateway must not edit what it relays. Compressed
 * syntaxes are never transcoded here: their pixel data stays as the modality encoded it.
 */
import { constants as zlib, deflateRawSync, inflateRawSync } from "node:zlib";
import dcmjs from "dcmjs";

export const IMPLICIT_LE = "1.2.840.10008.1.2";
export const EXPLICIT_LE = "1.2.840.10008.1.2.1";
export const DEFLATED_LE = "1.2.840.10008.1.2.1.99";
export const EXPLICIT_BE = "1.2.840.10008.1.2.2";

/** The uncompressed syntaxes, in the order we prefer to send them. */
export const UNCOMPRESSED: readonly string[] = [EXPLICIT_LE, IMPLICIT_LE, EXPLICIT_BE, DEFLATED_LE];

/** Compressed syntaxes a C-GET may bring back as stored (PS3.5 Annex A.4, PS3.6 Annex A). */
export const COMPRESSED: readonly string[] = [
  "1.2.840.10008.1.2.4.50", // JPEG Baseline (Process 1)
  "1.2.840.10008.1.2.4.51", // JPEG Extended (Process 2 & 4)
  "1.2.840.10008.1.2.4.57", // JPEG Lossless (Process 14)
  "1.2.840.10008.1.2.4.70", // JPEG Lossless SV1
  "1.2.840.10008.1.2.4.80", // JPEG-LS Lossless
  "1.2.840.10008.1.2.4.81", // JPEG-LS Near-Lossless
  "1.2.840.10008.1.2.4.90", // JPEG 2000 Lossless
  "1.2.840.10008.1.2.4.91", // JPEG 2000
  "1.2.840.10008.1.2.5", // RLE Lossless
  "1.2.840.10008.1.2.4.201", // HTJ2K Lossless
  "1.2.840.10008.1.2.4.202", // HTJ2K Lossless RPCL
  "1.2.840.10008.1.2.4.203", // HTJ2K
];

export const isUncompressed = (ts: string): boolean => UNCOMPRESSED.includes(ts);

/** True when a data set in `from` can be sent in `to` without loss. */
export const canTranscode = (from: string, to: string): boolean =>
  from === to || (isUncompressed(from) && isUncompressed(to));

/**
 * Transfer syntaxes to propose for sending instances stored in `stored` (PS3.8 §9.3.3.2: propose
 * only what can be sent): an uncompressed instance goes in any uncompressed syntax, its own first;
 * a compressed one only in its own.
 */
export function sendableAs(stored: string): string[] {
  return isUncompressed(stored) ? [stored, ...UNCOMPRESSED.filter((t) => t !== stored)] : [stored];
}

export class TranscodeError extends Error {}

interface Encoding {
  explicit: boolean;
  little: boolean;
}
const encodingOf = (ts: string): Encoding => ({ explicit: ts !== IMPLICIT_LE, little: ts !== EXPLICIT_BE });

/** `dataset` (no File Meta) from one uncompressed syntax to another; the same bytes when they match. */
export function transcode(dataset: Buffer, from: string, to: string): Buffer {
  if (from === to) return dataset;
  if (!canTranscode(from, to))
    throw new TranscodeError(`cannot transcode losslessly from ${from} to ${to}: compressed data keeps its syntax`);
  const source = from === DEFLATED_LE ? inflate(dataset) : dataset;
  const elements = new Reader(source, encodingOf(from)).readAll();
  const out = Buffer.concat(new Writer(encodingOf(to)).write(elements));
  if (to !== DEFLATED_LE) return out;
  const deflated = deflateRawSync(out);
  // Even length, as every DICOM stream: a trailing pad byte, which inflating ignores (PS3.5 A.5).
  return deflated.length % 2 ? Buffer.concat([deflated, Buffer.alloc(1)]) : deflated;
}

/**
 * The value of one top-level element, read without going further than it (elements are in tag
 * order); undefined when absent. For what must be known before a parser has done its work.
 */
export function topLevelValue(dataset: Buffer, ts: string, group: number, element: number): Buffer | undefined {
  if (!isUncompressed(ts) && ts !== EXPLICIT_LE) ts = EXPLICIT_LE; // compressed: Explicit VR LE outside pixel data
  if (ts === DEFLATED_LE) return undefined; // not worth inflating for one element
  try {
    return new Reader(dataset, encodingOf(ts)).find(group, element)?.value;
  } catch {
    return undefined;
  }
}

function inflate(b: Buffer): Buffer {
  try {
    // A deflated stream may be followed by a pad byte (even length, PS3.5 A.5): flush what is there.
    return inflateRawSync(b, { finishFlush: zlib.Z_SYNC_FLUSH });
  } catch (e) {
    throw new TranscodeError(`deflated data set is corrupt (${String(e)})`);
  }
}

const UNDEFINED = 0xffffffff;
const MAX_DEPTH = 256;
const LONG_VRS = new Set(["OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"]);
/** Byte width of each value unit for VRs whose bytes depend on endianness. */
const SWAP: Record<string, number> = {
  US: 2,
  SS: 2,
  OW: 2,
  AT: 2,
  UL: 4,
  SL: 4,
  FL: 4,
  OF: 4,
  OL: 4,
  FD: 8,
  OD: 8,
  SV: 8,
  UV: 8,
  OV: 8,
};

/** One element with its value in little-endian byte order, or its items if it is a sequence. */
interface Element {
  group: number;
  element: number;
  vr: string;
  value?: Buffer;
  items?: Element[][];
  undefinedLength: boolean;
}

const dict = dcmjs.data.DicomMetaDictionary.dictionary as Record<string, { vr: string } | undefined>;
const hex4 = (n: number) => n.toString(16).toUpperCase().padStart(4, "0");

/** The VR Implicit VR leaves out, from the data dictionary (PS3.5 §7.1.3 for what it cannot know). */
function dictionaryVr(group: number, element: number, pixelRepresentation: number): string {
  if (element === 0x0000) return "UL"; // group length
  if (group & 1) return element >= 0x0010 && element <= 0x00ff ? "LO" : "UN"; // private creator, private data
  const repeating = (group & 0xff00) === 0x5000 || (group & 0xff00) === 0x6000 ? group & 0xff00 : group;
  const vr = dict[`(${hex4(repeating)},${hex4(element)})`]?.vr;
  if (!vr) return "UN";
  if (vr === "ox") return "OW"; // Implicit VR pixel and overlay data are OW (PS3.5 A.1)
  if (vr === "xs") return pixelRepresentation === 1 ? "SS" : "US";
  if (vr === "lt") return "OW";
  return vr;
}

class Reader {
  private at = 0;
  private pixelRepresentation = 0;

  constructor(
    private readonly b: Buffer,
    private readonly enc: Encoding,
  ) {}

  private u16(at: number): number {
    this.need(at + 2);
    return this.enc.little ? this.b.readUInt16LE(at) : this.b.readUInt16BE(at);
  }
  private u32(at: number): number {
    this.need(at + 4);
    return this.enc.little ? this.b.readUInt32LE(at) : this.b.readUInt32BE(at);
  }
  private need(end: number): void {
    if (end > this.b.length) throw new TranscodeError("data set is truncated");
  }

  readAll(): Element[] {
    return this.readUntil(this.b.length, false);
  }

  find(group: number, element: number): Element | undefined {
    const target = group * 0x10000 + element;
    while (this.at + 8 <= this.b.length) {
      const g = this.u16(this.at);
      const e = this.u16(this.at + 2);
      if (g * 0x10000 + e > target || g === 0xfffe) return undefined;
      const el = this.readElement(g, e);
      if (g === group && e === element) return el;
    }
    return undefined;
  }

  /** Elements up to `end`, or (`delimited`) up to an Item Delimitation Item. */
  private readUntil(end: number, delimited: boolean): Element[] {
    const out: Element[] = [];
    while (this.at < end) {
      const group = this.u16(this.at);
      const element = this.u16(this.at + 2);
      if (group === 0xfffe) {
        this.at += 8;
        if (element === 0xe00d && delimited) return out;
        throw new TranscodeError(`unexpected delimiter (FFFE,${hex4(element)}) at ${this.at - 8}`);
      }
      out.push(this.readElement(group, element));
    }
    if (delimited) throw new TranscodeError("item without its delimiter");
    return out;
  }

  private readElement(group: number, element: number): Element {
    let vr: string;
    let length: number;
    if (this.enc.explicit) {
      this.need(this.at + 6);
      vr = this.b.toString("latin1", this.at + 4, this.at + 6);
      if (LONG_VRS.has(vr)) {
        length = this.u32(this.at + 8);
        this.at += 12;
      } else {
        length = this.u16(this.at + 6);
        this.at += 8;
      }
    } else {
      length = this.u32(this.at + 4);
      this.at += 8;
      vr = dictionaryVr(group, element, this.pixelRepresentation);
    }
    // An undefined length outside Pixel Data is a sequence, even when the VR says UN (PS3.5 §6.2.2).
    if (vr === "SQ" || (length === UNDEFINED && !(group === 0x7fe0 && element === 0x0010))) {
      const items = this.readItems(length, vr === "UN");
      return { group, element, vr: "SQ", items, undefinedLength: length === UNDEFINED };
    }
    if (length === UNDEFINED) throw new TranscodeError("encapsulated pixel data in an uncompressed transfer syntax");
    this.need(this.at + length);
    let value = this.b.subarray(this.at, this.at + length);
    this.at += length;
    const width = SWAP[vr];
    if (!this.enc.little && width) value = swap(value, width);
    if (group === 0x0028 && element === 0x0103 && value.length >= 2) this.pixelRepresentation = value.readUInt16LE(0);
    return { group, element, vr, value, undefinedLength: false };
  }

  /** Sequence items; a UN sequence's items are Implicit VR Little Endian whatever the syntax (PS3.5 §6.2.2). */
  private depth = 0;

  private readItems(length: number, implicitItems: boolean): Element[][] {
    // Nesting is recursion here: a crafted data set must not exhaust the stack (real ones, SR
    // content trees included, stay far below this).
    if (++this.depth > MAX_DEPTH) throw new TranscodeError(`sequences nested deeper than ${MAX_DEPTH}`);
    const r = implicitItems ? new Reader(this.b, { explicit: false, little: true }) : this;
    r.at = this.at;
    r.pixelRepresentation = this.pixelRepresentation;
    r.depth = this.depth;
    const end = length === UNDEFINED ? this.b.length : this.at + length;
    this.need(end);
    const items: Element[][] = [];
    try {
      while (r.at < end) {
        const group = r.u16(r.at);
        const element = r.u16(r.at + 2);
        const itemLength = r.u32(r.at + 4);
        r.at += 8;
        if (group === 0xfffe && element === 0xe0dd) return items; // sequence delimitation
        if (group !== 0xfffe || element !== 0xe000)
          throw new TranscodeError("sequence holds something else than items");
        items.push(itemLength === UNDEFINED ? r.readUntil(this.b.length, true) : r.readUntil(r.at + itemLength, false));
      }
      if (length === UNDEFINED) throw new TranscodeError("sequence without its delimiter");
      return items;
    } finally {
      this.at = r.at;
      this.depth--;
    }
  }
}

function swap(value: Buffer, width: number): Buffer {
  const out = Buffer.from(value); // a copy: the source may be someone else's buffer
  const whole = out.length - (out.length % width);
  if (width === 2) out.subarray(0, whole).swap16();
  else if (width === 4) out.subarray(0, whole).swap32();
  else out.subarray(0, whole).swap64();
  return out;
}

class Writer {
  constructor(private readonly enc: Encoding) {}

  write(elements: Element[]): Buffer[] {
    const out: Buffer[] = [];
    for (const e of elements) this.element(e, out);
    return out;
  }

  private u16(n: number): Buffer {
    const b = Buffer.alloc(2);
    if (this.enc.little) b.writeUInt16LE(n);
    else b.writeUInt16BE(n);
    return b;
  }
  private u32(n: number): Buffer {
    const b = Buffer.alloc(4);
    if (this.enc.little) b.writeUInt32LE(n);
    else b.writeUInt32BE(n);
    return b;
  }

  private header(e: Element, vr: string, length: number): Buffer {
    const tag = Buffer.concat([this.u16(e.group), this.u16(e.element)]);
    if (!this.enc.explicit) return Buffer.concat([tag, this.u32(length)]);
    if (LONG_VRS.has(vr)) return Buffer.concat([tag, Buffer.from(vr, "latin1"), Buffer.alloc(2), this.u32(length)]);
    return Buffer.concat([tag, Buffer.from(vr, "latin1"), this.u16(length)]);
  }

  private element(e: Element, out: Buffer[]): void {
    if (e.items) {
      const body: Buffer[] = [];
      for (const item of e.items) {
        const content = this.write(item);
        const size = content.reduce((n, b) => n + b.length, 0);
        body.push(this.u16(0xfffe), this.u16(0xe000), this.u32(e.undefinedLength ? UNDEFINED : size), ...content);
        if (e.undefinedLength) body.push(this.u16(0xfffe), this.u16(0xe00d), this.u32(0));
      }
      if (e.undefinedLength) body.push(this.u16(0xfffe), this.u16(0xe0dd), this.u32(0));
      const size = body.reduce((n, b) => n + b.length, 0);
      out.push(this.header(e, "SQ", e.undefinedLength ? UNDEFINED : size), ...body);
      return;
    }
    let value = e.value!;
    // A value too long for a short header (a wrong dictionary guess) travels as UN, which has a long one.
    const vr = this.enc.explicit && !LONG_VRS.has(e.vr) && value.length > 0xffff ? "UN" : e.vr;
    const width = SWAP[vr];
    if (!this.enc.little && width) value = swap(value, width);
    out.push(this.header(e, vr, value.length), value);
  }
}

/** At most 128 presentation contexts per association (odd IDs 1–255, PS3.8 §9.3.2.2). */
export const MAX_CONTEXTS = 128;

/**
 * Presentation contexts for receiving instances of `sopClasses` in `syntaxes`: the uncompressed
 * syntaxes share one context per class (we transcode between them), each compressed syntax gets
 * a context of its own, since the peer accepts one syntax per context and sends each instance in
 * a context of its own syntax. Undefined when that would not fit in `room` contexts.
 */
export function storageContexts(
  sopClasses: string[],
  syntaxes: readonly string[],
  room: number,
): { sopClass: string; syntaxes: string[] }[] | undefined {
  const plain = syntaxes.filter(isUncompressed);
  const compressed = syntaxes.filter((t) => !isUncompressed(t));
  const out: { sopClass: string; syntaxes: string[] }[] = [];
  for (const sopClass of new Set(sopClasses)) {
    if (plain.length) out.push({ sopClass, syntaxes: plain });
    for (const t of compressed) out.push({ sopClass, syntaxes: [t] });
  }
  return out.length <= room ? out : undefined;
}
