/**
 * WADO-RS metadata and bulk data through a `dicom` backend: each instance is retrieved (C-GET or
 * C-MOVE) and read whole, private elements included (dcmjs's reader keeps them with their VR;
 * its naturalized form, which knows only the public dictionary, would drop them). Binary values
 * larger than MAX_INLINE, and pixel data, become BulkDataURIs on the gateway, which this module
 * also serves: the instance is retrieved again and the element's value returned as
 * `application/octet-stream`, little endian (PS3.18 §8.7.3.3, §F.2.6).
 */
import dcmjs from "dcmjs";
import type { RequestContext } from "../pipeline/context.js";
import { HttpError } from "../pipeline/errors.js";
import type { Received } from "../protocols/dimse-client.js";
import type { Level, RetrieveOp } from "../protocols/dicomweb-request.js";
import { cleanJson, first, type DicomJsonDataset } from "../protocols/dicom-json.js";
import { characterSets, redecodeJson, usesCodeExtensions } from "../protocols/charset.js";
import { MultipartWriter } from "../protocols/multipart.js";
import { toPart10 } from "../protocols/part10.js";
import { EXPLICIT_LE, isUncompressed, topLevelValue, transcode } from "../protocols/transfer-syntax.js";

type Fetch = (
  level: Level,
  uids: { study: string; series?: string; sop?: string },
  onInstance: (r: Received) => Promise<void>,
) => Promise<{ status: number; completed: number; failed: number; warnings: number }>;

/** Binary values up to this size are inlined (InlineBinary); larger ones are bulk data. */
const MAX_INLINE = 8 * 1024;
const BINARY = new Set(["OB", "OD", "OF", "OL", "OV", "OW", "UN"]);

/** The data set in Explicit VR Little Endian when it is uncompressed (what readers and bulk data want). */
function explicitLe(inst: Received): { ts: string; dataset: Buffer } {
  const raw = inst.dataset.bytes ?? inst.dataset.getDenaturalizedDataset();
  return isUncompressed(inst.transferSyntax)
    ? { ts: EXPLICIT_LE, dataset: transcode(raw, inst.transferSyntax, EXPLICIT_LE) }
    : { ts: inst.transferSyntax, dataset: raw };
}

/** One instance as DICOM JSON, with its RetrieveURL and BulkDataURIs on the gateway. */
export function instanceJson(inst: Received, base: string): DicomJsonDataset {
  const { ts, dataset } = explicitLe(inst);
  const file = toPart10({ ...inst, transferSyntax: ts, dataset });
  const { dict } = dcmjs.data.DicomMessage.readFile(
    file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength) as ArrayBuffer,
    // Several character sets: dcmjs reads with the first (and would throw); charset.ts does the rest.
    { ignoreErrors: true },
  );
  const ds = dict;
  const declared = topLevelValue(dataset, ts, 0x0008, 0x0005);
  const sets = declared ? characterSets(declared.toString("latin1").replace(/[\0 ]+$/, "")) : [];
  if (usesCodeExtensions(sets)) redecodeJson(ds, sets);
  // What dcmjs decoded (and this module re-decoded) is Unicode now; DICOM JSON is UTF-8 (F.2).
  if (ds["00080005"]) ds["00080005"] = { vr: "CS", Value: ["ISO_IR 192"] };
  const url = `${base}/studies/${first(ds, "0020000D")}/series/${first(ds, "0020000E")}/instances/${inst.sopInstance}`;
  for (const [tag, el] of Object.entries(ds)) {
    const buffers = el.Value?.filter((v): v is ArrayBuffer => v instanceof ArrayBuffer);
    if (!BINARY.has(el.vr) || !buffers?.length) continue;
    const size = buffers.reduce((n, b) => n + b.byteLength, 0);
    // Encapsulated (compressed) pixel data has no single value to serve: it stays out, as frames are
    // not served through a DIMSE peer.
    if (tag === "7FE00010" && !isUncompressed(inst.transferSyntax)) delete ds[tag];
    else if (tag === "7FE00010" || size > MAX_INLINE) ds[tag] = { vr: el.vr, BulkDataURI: `${url}/bulkdata/${tag}` };
  }
  cleanJson(ds);
  ds["00081190"] = { vr: "UR", Value: [url] };
  return ds;
}

export async function metadata(
  rctx: RequestContext,
  fetch: Fetch,
  op: RetrieveOp,
  base: string,
  failure: (status: number) => Error,
  json: (rctx: RequestContext, status: number, body: unknown) => void,
): Promise<void> {
  const out: DicomJsonDataset[] = [];
  const r = await fetch(op.level, op, (inst) => {
    out.push(instanceJson(inst, base));
    return Promise.resolve();
  });
  if (out.length === 0) {
    if (r.completed === 0 && r.failed > 0) throw failure(r.status);
    throw new HttpError(404, "no instance matches");
  }
  json(rctx, 200, out);
}

/** GET …/instances/{sop}/bulkdata/{tag}: one top-level binary value of the instance. */
export async function bulkdata(
  rctx: RequestContext,
  fetch: Fetch,
  op: RetrieveOp & { bulkdata: string },
): Promise<void> {
  const tag = op.bulkdata.toUpperCase();
  let value: Buffer | undefined;
  let found = false;
  await fetch("IMAGE", op, (inst) => {
    found = true;
    if (!isUncompressed(inst.transferSyntax) && tag === "7FE00010") return Promise.resolve();
    const { ts, dataset } = explicitLe(inst);
    value = topLevelValue(dataset, ts, parseInt(tag.slice(0, 4), 16), parseInt(tag.slice(4), 16));
    return Promise.resolve();
  });
  if (!found) throw new HttpError(404, "no instance matches");
  if (!value) throw new HttpError(404, `the instance has no bulk data at ${tag}`);
  const writer = new MultipartWriter("application/octet-stream");
  rctx.response = {
    status: 200,
    headers: { "content-type": writer.contentType, "x-request-id": rctx.id },
    body: Buffer.concat([...writer.part(value), writer.end()]),
  };
}
