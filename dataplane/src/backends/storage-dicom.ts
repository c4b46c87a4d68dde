/**
 * DICOM instances written through the `storage` backend: a STOW-RS body (multipart/related of
 * application/dicom parts, or one application/dicom body) — which is also what a C-STORE on a
 * `dicom` endpoint arrives as — is split into its instances, one in memory at a time, and each is
 * written under the write pattern expanded with its own header: `{file}` is
 * `{StudyInstanceUID}/{SOPInstanceUID}.dcm` (a folder per study), and any top-level attribute
 * keyword (`{SeriesInstanceUID}`, `{Modality}`, ...) is available. The answer is PS3.18's STOW
 * response: 200 all stored, 202 some, 409 none, with ReferencedSOPSequence / FailedSOPSequence
 * (a C-STORE reads its status from the FailureReason).
 */
import dcmjs from "dcmjs";
import type { Readable } from "node:stream";
import { boundaryOf, readParts } from "../protocols/multipart.js";
import type { DicomJsonDataset } from "../protocols/dicom-json.js";
import { HttpError } from "../pipeline/errors.js";
import { tooLarge } from "./storage-objects.js";

/** PS3.5 9.1: numeric components joined by single dots, at most 64 characters. */
const PLAIN_UID = /^[0-9]+(\.[0-9]+)*$/;
const plain = (uid: string | undefined): uid is string => !!uid && uid.length <= 64 && PLAIN_UID.test(uid);

/** PS3.4 B.2.3 FailureReason values. */
export const CANNOT_UNDERSTAND = 0xc000;
export const OUT_OF_RESOURCES = 0xa700;
/** "Data set does not match SOP class" family; used, as the `dicom` backend does, for a study mismatch. */
export const IDENTIFIER_MISMATCH = 0xa900;

/** True for a body this module splits: STOW-RS multipart/related of DICOM, or one DICOM file. */
export function isDicomUpload(contentType: string | undefined): boolean {
  const ct = contentType ?? "";
  if (/^application\/dicom\s*(;|$)/i.test(ct)) return true;
  if (!/^multipart\/related\b/i.test(ct)) return false;
  const type = /;\s*type="?([^";]+)"?/i.exec(ct)?.[1];
  return type === undefined || type.toLowerCase() === "application/dicom";
}

export interface Instance {
  bytes: Buffer;
  /** Top-level attributes as text, by keyword, plus `file`. */
  fields: Map<string, string>;
  sopClass: string | undefined;
  sop: string | undefined;
  /** Why it cannot be stored (nothing names patient data), when it cannot. */
  problem?: string;
}

function text(v: unknown): string | undefined {
  const x: unknown = Array.isArray(v) ? (v as unknown[])[0] : v;
  if (typeof x === "string") return x.replace(/\0+$/, "").trim();
  if (typeof x === "number" && Number.isFinite(x)) return String(x);
  if (x && typeof x === "object" && typeof (x as { Alphabetic?: unknown }).Alphabetic === "string")
    return (x as { Alphabetic: string }).Alphabetic;
  return undefined;
}

/** The instance's header read as fields (pixel data is not parsed). */
export function describe(bytes: Buffer): Instance {
  const out: Instance = { bytes, fields: new Map(), sopClass: undefined, sop: undefined };
  try {
    const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    const { dict } = dcmjs.data.DicomMessage.readFile(ab, { untilTag: "7FE00010" });
    const nat = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dict);
    for (const [k, v] of Object.entries(nat)) {
      const t = text(v);
      if (t !== undefined && /^[A-Za-z][A-Za-z0-9]*$/.test(k)) out.fields.set(k, t);
    }
  } catch {
    return { ...out, problem: "not a readable DICOM Part 10 file" };
  }
  out.sop = out.fields.get("SOPInstanceUID");
  out.sopClass = out.fields.get("SOPClassUID");
  const study = out.fields.get("StudyInstanceUID");
  if (!plain(out.sop)) return { ...out, problem: "SOPInstanceUID missing or not a plain UID" };
  if (!plain(study)) return { ...out, problem: "StudyInstanceUID missing or not a plain UID" };
  out.fields.set("file", `${study}/${out.sop}.dcm`);
  return out;
}

/** The instances of a STOW body, one at a time; 400 (malformed) and 413 (too big) come from the reader. */
export async function* instances(
  body: Readable | Buffer,
  contentType: string | undefined,
  maxBytes: number,
): AsyncGenerator<Instance> {
  const source: AsyncIterable<Buffer> | Iterable<Buffer> = Buffer.isBuffer(body) ? [body] : body;
  const boundary = boundaryOf(contentType);
  if (!/^multipart\//i.test(contentType ?? "")) {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of source) {
      size += c.length;
      if (size > maxBytes) throw tooLarge(maxBytes);
      chunks.push(c);
    }
    yield describe(Buffer.concat(chunks));
    return;
  }
  if (!boundary) throw new HttpError(400, "multipart/related without a boundary");
  for await (const part of readParts(source, boundary, maxBytes)) {
    const ct = part.headers["content-type"];
    if (ct !== undefined && !/^application\/dicom\s*(;|$)/i.test(ct)) {
      yield {
        bytes: part.body,
        fields: new Map(),
        sopClass: undefined,
        sop: undefined,
        problem: "part is not application/dicom",
      };
      continue;
    }
    yield describe(part.body);
  }
}

export interface StowResult {
  stored: { sopClass: string; sop: string; url: string }[];
  failed: { sopClass: string | undefined; sop: string | undefined; reason: number }[];
}

const ui = (v: string | undefined) => ({ vr: "UI", ...(v ? { Value: [v] } : {}) });

/** PS3.18 10.5.3 response: status and DICOM JSON body. */
export function stowResponse(r: StowResult): { status: number; body: DicomJsonDataset } {
  const body: DicomJsonDataset = {};
  if (r.stored.length)
    body["00081199"] = {
      vr: "SQ",
      Value: r.stored.map((s) => ({
        "00081150": ui(s.sopClass),
        "00081155": ui(s.sop),
        "00081190": { vr: "UR", Value: [s.url] },
      })),
    };
  if (r.failed.length)
    body["00081198"] = {
      vr: "SQ",
      Value: r.failed.map((f) => ({
        "00081150": ui(f.sopClass),
        "00081155": ui(f.sop),
        "00081197": { vr: "US", Value: [f.reason] },
      })),
    };
  const status = r.failed.length === 0 ? 200 : r.stored.length === 0 ? 409 : 202;
  return { status, body };
}
