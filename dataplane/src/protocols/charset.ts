/**
 * Character sets of DICOM strings (PS3.5 §6.1) to Unicode, for DICOM JSON (always UTF-8, PS3.18
 * F.2). dcmjs decodes a data set with the first value of SpecificCharacterSet only, so with code
 * extensions (`\ISO 2022 IR 87`, `\ISO 2022 IR 149`, ...) the escape sequences and the bytes
 * after them come out as Latin-1 or Shift-JIS characters. Those decoders map bytes one to one in
 * the ranges ISO 2022 uses, so the bytes are recovered and decoded here: each escape sequence
 * designates the set that its segment is read in (PS3.5 §6.1.2.5, Annexes H, I, J).
 */

import dcmjs from "dcmjs";

/** SpecificCharacterSet defined term → WHATWG encoding label, for the single-byte and non-ISO 2022 sets. */
const SINGLE: Record<string, string> = {
  "": "windows-1252",
  ISO_IR_6: "windows-1252",
  ISO_IR_100: "windows-1252",
  ISO_IR_101: "iso-8859-2",
  ISO_IR_109: "iso-8859-3",
  ISO_IR_110: "iso-8859-4",
  ISO_IR_144: "iso-8859-5",
  ISO_IR_127: "iso-8859-6",
  ISO_IR_126: "iso-8859-7",
  ISO_IR_138: "iso-8859-8",
  ISO_IR_148: "windows-1254",
  ISO_IR_203: "iso-8859-15",
  ISO_IR_13: "shift_jis",
  ISO_IR_166: "windows-874",
  ISO_IR_192: "utf-8",
  GB18030: "gb18030",
  GBK: "gbk",
};

/** ISO 2022 escape sequences (after ESC) → how the bytes of the segment they open are read. */
const ESCAPES: Record<string, { label: string; twoByte?: "euc-jp" | "euc-jp-0212" | "gr" }> = {
  "(B": { label: "windows-1252" }, // ISO-IR 6 (ASCII) in G0
  "(J": { label: "windows-1252" }, // JIS X 0201 Romaji, ASCII but for two glyphs
  ")I": { label: "shift_jis" }, // JIS X 0201 Katakana in G1
  $B: { label: "euc-jp", twoByte: "euc-jp" }, // JIS X 0208 (ISO-IR 87)
  "$(D": { label: "euc-jp", twoByte: "euc-jp-0212" }, // JIS X 0212 (ISO-IR 159)
  "$)C": { label: "euc-kr", twoByte: "gr" }, // KS X 1001 (ISO-IR 149) in G1
  "$)A": { label: "gb18030", twoByte: "gr" }, // GB 2312 (ISO-IR 58) in G1
  "-A": { label: "windows-1252" },
  "-B": { label: "iso-8859-2" },
  "-C": { label: "iso-8859-3" },
  "-D": { label: "iso-8859-4" },
  "-L": { label: "iso-8859-5" },
  "-G": { label: "iso-8859-6" },
  "-F": { label: "iso-8859-7" },
  "-H": { label: "iso-8859-8" },
  "-M": { label: "windows-1254" },
  "-T": { label: "windows-874" },
  "-b": { label: "iso-8859-15" },
};

const norm = (term: string) =>
  term
    .trim()
    .replace(/^ISO 2022 /, "ISO_")
    .replace(/ /g, "_");

/** The defined terms of SpecificCharacterSet, as a list (dcmjs gives a string or an array). */
export function characterSets(value: unknown): string[] {
  if (Array.isArray(value)) return value.map((v) => String(v ?? ""));
  if (typeof value === "string") return value.split("\\");
  return [];
}

/** Whether strings under these character sets need decoding here (code extensions are in use). */
export const usesCodeExtensions = (sets: string[]): boolean => sets.length > 1;

/**
 * The bytes dcmjs read, from the string it made of them with the first character set: Latin-1
 * (the default repertoire, ISO_IR 100) or Shift-JIS (ISO_IR 13, whose half-width katakana sit at
 * U+FF61–FF9F). Undefined for other first sets, whose decoding cannot be undone exactly.
 */
export function bytesAsRead(s: string, first: string): Buffer | undefined {
  const set = norm(first);
  if (set === "" || set === "ISO_IR_6" || set === "ISO_IR_100") {
    for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0xff) return undefined;
    return Buffer.from(s, "latin1");
  }
  if (set === "ISO_IR_13") {
    const out: number[] = [];
    for (const ch of s) {
      const c = ch.codePointAt(0)!;
      if (c < 0x80) out.push(c);
      else if (c >= 0xff61 && c <= 0xff9f) out.push(c - 0xff61 + 0xa1);
      else return undefined;
    }
    return Buffer.from(out);
  }
  return undefined;
}

/**
 * Decodes one value (a PN component group, or one value of a string element) of a data set whose
 * SpecificCharacterSet is `sets`. It starts in the first set; escape sequences switch. Encoders
 * switch back before each delimiter (PS3.5 §6.1.2.5.3), so a value needs no reset within it.
 */
export function decodeValue(bytes: Buffer, sets: string[]): string {
  const initial = SINGLE[norm(sets[0] ?? "")] ?? "windows-1252";
  let out = "";
  let current: { label: string; twoByte?: string } = { label: initial };
  let start = 0;
  const flush = (end: number) => {
    if (end > start) out += decodeSegment(bytes.subarray(start, end), current);
  };
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] !== 0x1b) continue;
    const seq = escapeAt(bytes, i + 1);
    if (!seq) continue;
    flush(i);
    current = ESCAPES[seq]!;
    i += seq.length;
    start = i + 1;
  }
  flush(bytes.length);
  return out;
}

function escapeAt(bytes: Buffer, at: number): string | undefined {
  for (const len of [3, 2]) {
    const s = bytes.toString("latin1", at, at + len);
    if (ESCAPES[s]) return s;
  }
  return undefined;
}

function decodeSegment(seg: Buffer, how: { label: string; twoByte?: string }): string {
  if (how.twoByte === "euc-jp") {
    // JIS X 0208 in G0 (7-bit pairs) is EUC-JP with the high bits set.
    return new TextDecoder("euc-jp").decode(Buffer.from(seg.map((b) => b | 0x80)));
  }
  if (how.twoByte === "euc-jp-0212") {
    const out: number[] = [];
    for (let i = 0; i + 1 < seg.length; i += 2) out.push(0x8f, seg[i]! | 0x80, seg[i + 1]! | 0x80);
    return new TextDecoder("euc-jp").decode(Buffer.from(out));
  }
  // G1 sets (GR bytes) and single-byte sets: the WHATWG decoder reads ASCII as ASCII and GR as the set.
  return new TextDecoder(how.label).decode(seg);
}

const STRING_VRS = new Set(["SH", "LO", "ST", "LT", "UT", "UC", "PN"]);
const nameMap = dcmjs.data.DicomMetaDictionary.nameMap as Record<string, { vr: string } | undefined>;

/**
 * Re-decodes, in place, the strings of naturalized elements that dcmjs decoded with the first
 * character set only; sequence items inherit the data set's sets. Values whose bytes cannot be
 * recovered are left as they are.
 */
export function redecode(elements: Record<string, unknown>, sets: string[]): void {
  const text = (v: unknown) => {
    if (typeof v !== "string" || !v.includes("\x1b")) return v;
    const bytes = bytesAsRead(v, sets[0] ?? "");
    return bytes ? decodeValue(bytes, sets) : v;
  };
  for (const [key, value] of Object.entries(elements)) {
    const vr = nameMap[key]?.vr;
    if (vr === "SQ" && Array.isArray(value)) {
      for (const item of value) if (item && typeof item === "object") redecode(item as Record<string, unknown>, sets);
    } else if (vr === "PN") {
      const names = Array.isArray(value) ? value : [value];
      for (const n of names)
        if (n && typeof n === "object")
          for (const [k, c] of Object.entries(n as Record<string, unknown>))
            (n as Record<string, unknown>)[k] = text(c);
    } else if (vr && STRING_VRS.has(vr)) {
      elements[key] = Array.isArray(value) ? value.map(text) : text(value);
    }
  }
}

/** The same for DICOM JSON as dcmjs's reader gives it (keys are tags, VRs are known). */
export function redecodeJson(ds: Record<string, { vr: string; Value?: unknown[] }>, sets: string[]): void {
  const text = (v: unknown) => {
    if (typeof v !== "string" || !v.includes("\x1b")) return v;
    const bytes = bytesAsRead(v, sets[0] ?? "");
    return bytes ? decodeValue(bytes, sets) : v;
  };
  for (const el of Object.values(ds)) {
    if (!el.Value) continue;
    if (el.vr === "SQ") {
      for (const item of el.Value) if (item && typeof item === "object") redecodeJson(item as typeof ds, sets);
    } else if (el.vr === "PN") {
      for (const n of el.Value)
        if (n && typeof n === "object")
          for (const [k, c] of Object.entries(n as Record<string, unknown>))
            (n as Record<string, unknown>)[k] = text(c);
    } else if (STRING_VRS.has(el.vr)) {
      el.Value = el.Value.map(text);
    }
  }
}
