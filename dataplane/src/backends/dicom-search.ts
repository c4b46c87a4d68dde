/** QIDO-RS as C-FIND: the identifier built from the query, the matches paged and linked. */
import type { RequestContext } from "../pipeline/context.js";
import type { Peer } from "../protocols/dimse-client.js";
import { isSuccess } from "../protocols/dimse-status.js";
import { DEFAULT_KEYS, parseDicomwebRequest, type RetrieveOp, type SearchOp } from "../protocols/dicomweb-request.js";
import { first, toDicomJson } from "../protocols/dicom-json.js";
import { wantedSyntaxes } from "../protocols/accept-syntax.js";
import { scu } from "./dicom-scu.js";
import { dimseFailure, json } from "./dicom-reply.js";

/**
 * A study, series or instance asked for as DICOM JSON (`Accept: application/dicom+json`, nothing
 * DICOM) is answered as the QIDO search for it, as Harmony did: its attributes, not a 406.
 */
export function asSearch(op: RetrieveOp, accept: string | undefined, search: string): SearchOp | undefined {
  if (op.metadata || op.bulkdata || !accept || wantedSyntaxes(accept)) return undefined;
  if (!/application\/(dicom\+)?json/i.test(accept)) return undefined;
  const path =
    op.level === "STUDY"
      ? "/studies"
      : op.level === "SERIES"
        ? `/studies/${op.study}/series`
        : `/studies/${op.study}/series/${op.series}/instances`;
  const q = parseDicomwebRequest("GET", path, search);
  if (q.kind !== "search") return undefined;
  q.match.StudyInstanceUID = op.study;
  if (op.series) q.match.SeriesInstanceUID = op.series;
  if (op.sop) q.match.SOPInstanceUID = op.sop;
  return q;
}

export async function search(rctx: RequestContext, peer: Peer, op: SearchOp, base: string): Promise<void> {
  const keys =
    op.includefield === "all"
      ? op.level === "WORKLIST"
        ? DEFAULT_KEYS.WORKLIST
        : [...DEFAULT_KEYS.STUDY, ...DEFAULT_KEYS.SERIES, ...DEFAULT_KEYS.IMAGE]
      : [...DEFAULT_KEYS[op.level], ...op.includefield];
  const identifier: Record<string, unknown> = {};
  const uidKeys =
    op.level === "WORKLIST" ? [] : ["StudyInstanceUID", ...(op.level !== "STUDY" ? ["SeriesInstanceUID"] : [])];
  for (const k of [...keys, ...uidKeys]) setPath(identifier, k, "");
  for (const [k, v] of Object.entries(op.match)) setPath(identifier, k, v);
  const { status, matches } = await scu().cFind(peer, identifier, op.level);
  if (!isSuccess(status)) throw dimseFailure("C-FIND", status);
  const page = matches.slice(op.offset, op.limit === undefined ? undefined : op.offset + op.limit);
  if (page.length === 0) {
    rctx.response = { status: 204, headers: { "x-request-id": rctx.id }, body: null };
    return;
  }
  const out = page.map((m) => {
    const ds = toDicomJson(m);
    delete ds["00080052"]; // QueryRetrieveLevel is DIMSE plumbing, not a result
    delete ds["00080005"]; // DICOM JSON is UTF-8 whatever the archive's character set (PS3.18 F.2)
    const study = first(ds, "0020000D");
    const series = first(ds, "0020000E");
    const sop = first(ds, "00080018");
    if (op.level === "WORKLIST") return ds;
    const url =
      op.level === "STUDY"
        ? `${base}/studies/${study}`
        : op.level === "SERIES"
          ? `${base}/studies/${study}/series/${series}`
          : `${base}/studies/${study}/series/${series}/instances/${sop}`;
    if (study && (op.level === "STUDY" || series) && (op.level !== "IMAGE" || sop))
      ds["00081190"] = { vr: "UR", Value: [url] };
    return ds;
  });
  json(rctx, 200, out);
}

/** Sets `a.b` as a sequence with one item: `{a: [{b: value}]}` (C-FIND identifiers nest this way). */
function setPath(target: Record<string, unknown>, path: string, value: string): void {
  const [head, ...rest] = path.split(".");
  if (rest.length === 0) {
    target[head!] = value;
    return;
  }
  const items = Array.isArray(target[head!]) ? (target[head!] as Record<string, unknown>[]) : [{}];
  target[head!] = items;
  setPath(items[0]!, rest.join("."), value);
}
