/** STOW-RS as C-STORE: parts read as they arrive, stored in batches, answered per PS3.18 §10.5. */
import dcmjs from "dcmjs";
import type { RequestContext } from "../pipeline/context.js";
import { HttpError } from "../pipeline/errors.js";
import type { Peer, StoreItem } from "../protocols/dimse-client.js";
import { ERROR_COMMENT_HEADER, isSuccess, isWarning } from "../protocols/dimse-status.js";
import type { StoreOp } from "../protocols/dicomweb-request.js";
import type { DicomJsonDataset } from "../protocols/dicom-json.js";
import { boundaryOf, readParts } from "../protocols/multipart.js";
import { Part10Error, parsePart10 } from "../protocols/part10.js";
import { scu } from "./dicom-scu.js";
import { json } from "./dicom-reply.js";

/** PS3.7: the C-STORE failure a STOW response reports for an instance we could not even read. */
const CANNOT_UNDERSTAND = 0xc000;

/** The backend options a STOW reads. */
export interface StoreLimits {
  max_instance_bytes: number;
  store_batch_bytes: number;
}

interface StoreOutcome {
  sopClass: string;
  sopInstance: string;
  status: number;
  study?: string;
  /** The peer's Error Comment on a failure (a network policy names its rule there). */
  comment?: string;
}

export async function store(
  rctx: RequestContext,
  peer: Peer,
  op: StoreOp,
  o: StoreLimits,
  base: string,
): Promise<void> {
  const ct = rctx.req.headers["content-type"] ?? "";
  const boundary = boundaryOf(ct);
  if (!/^multipart\/related\b/i.test(ct) || !boundary)
    throw new HttpError(415, "STOW-RS to a DIMSE peer takes multipart/related with a boundary");
  const body = rctx.body.forUpstream();
  if (!body) throw new HttpError(400, "STOW-RS request has no body");
  const parts: AsyncIterable<Buffer> | Iterable<Buffer> = Buffer.isBuffer(body) ? [body] : body;

  const outcomes: StoreOutcome[] = [];
  let batch: (StoreItem & { study?: string })[] = [];
  let batchBytes = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const comments: (string | undefined)[] = [];
    const statuses = await scu().cStore(peer, batch, comments);
    batch.forEach((b, i) =>
      outcomes.push({
        sopClass: b.sopClass,
        sopInstance: b.sopInstance,
        status: statuses[i]!,
        study: b.study,
        ...(comments[i] ? { comment: comments[i] } : {}),
      }),
    );
    batch = [];
    batchBytes = 0;
  };
  for await (const part of readParts(parts, boundary, o.max_instance_bytes)) {
    let p10;
    let study: string | undefined;
    try {
      p10 = parsePart10(part.body);
      study = studyOf(part.body);
    } catch (e) {
      if (!(e instanceof Part10Error)) throw e;
      outcomes.push({ sopClass: "", sopInstance: "", status: CANNOT_UNDERSTAND });
      continue;
    }
    if (op.study && study !== op.study) {
      // PS3.18 10.5.3: instances of another study than the one in the URL are refused.
      outcomes.push({ sopClass: p10.sopClass, sopInstance: p10.sopInstance, status: 0xa900, study });
      continue;
    }
    batch.push({ ...p10, study });
    batchBytes += p10.dataset.length;
    if (batchBytes >= o.store_batch_bytes) await flush();
  }
  await flush();

  const ok = outcomes.filter((x) => isSuccess(x.status) || isWarning(x.status));
  const failed = outcomes.filter((x) => !(isSuccess(x.status) || isWarning(x.status)));
  const studies = [...new Set(ok.map((x) => x.study).filter(Boolean))];
  const res: DicomJsonDataset = {};
  if (studies.length === 1) res["00081190"] = { vr: "UR", Value: [`${base}/studies/${studies[0]}`] };
  const ref = (x: StoreOutcome) => ({
    "00081150": { vr: "UI", Value: [x.sopClass] },
    "00081155": { vr: "UI", Value: [x.sopInstance] },
  });
  if (ok.length)
    res["00081199"] = {
      vr: "SQ",
      Value: ok.map((x) => ({
        ...ref(x),
        "00081190": { vr: "UR", Value: [`${base}/studies/${x.study}/instances/${x.sopInstance}`] },
        // Stored with a warning (coerced, elements discarded, ...): WarningReason, PS3.18 §10.5.3.
        ...(isWarning(x.status) ? { "00081196": { vr: "US", Value: [x.status] } } : {}),
      })),
    };
  if (failed.length)
    res["00081198"] = {
      vr: "SQ",
      Value: failed.map((x) => ({ ...ref(x), "00081197": { vr: "US", Value: [x.status] } })),
    };
  if (outcomes.length === 0) throw new HttpError(400, "STOW-RS request carried no instance");
  const warned = ok.some((x) => isWarning(x.status));
  json(rctx, failed.length === 0 && !warned ? 200 : ok.length === 0 ? 409 : 202, res);
  // A STOW response has no place for the peer's Error Comment: the first one goes in a header, so
  // a DIMSE endpoint relaying a C-STORE passes it on (dimse-scp.ts) and an HTTP client reads why.
  const comment = failed.find((x) => x.comment)?.comment;
  if (comment) rctx.response!.headers[ERROR_COMMENT_HEADER] = headerSafe(comment);
}

/** Printable ASCII only (the peer chose it; a header takes nothing else), at most LO's 64 characters. */
const headerSafe = (s: string) => s.replace(/[^\x20-\x7e]/g, "?").slice(0, 64);

/** StudyInstanceUID of a Part 10 file, read without parsing past it. */
function studyOf(file: Buffer): string | undefined {
  const ab = file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength);
  const { dict } = dcmjs.data.DicomMessage.readFile(ab as ArrayBuffer, { untilTag: "0020000E" });
  const v = dict["0020000D"]?.Value?.[0];
  return typeof v === "string" ? v : undefined;
}
