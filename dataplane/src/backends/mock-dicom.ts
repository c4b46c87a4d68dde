/**
 * `mock_dicom` backend: Harmony's fixed test PACS (mock-dicom-data.ts), so its example configs
 * run as written. It answers the two ways Harmony's configs reach it:
 * - the original's JSON API (an `http` endpoint; the operation from `metadata.dimse_op` or the
 *   last path segment): `echo` → {operation, success, remote_aet, host, port}; `find` with a
 *   DICOM JSON identifier (or `{identifier}` wrapper) → {operation, success, matches}; `get` →
 *   {operation, success, instances} (frame ≥ 9999: the mock's error, 500);
 * - DICOMweb as this build carries it (a `dicomweb` endpoint, or a `dicom` endpoint's C-FIND):
 *   QIDO-RS searches (200, or 204 for none; limit/offset) and WADO-RS metadata.
 * It holds no pixel data: instance and frame retrieval is 404, and stores are refused (405).
 */
import { Type } from "@sinclair/typebox";
import type { BackendPlugin } from "../plugins/types.js";
import type { RequestContext } from "../pipeline/context.js";
import { HttpError, problemType } from "../pipeline/errors.js";
import { jsonResponse } from "../pipeline/json-response.js";
import { parseDicomwebRequest } from "../protocols/dicomweb-request.js";
import type { DicomJsonDataset } from "../protocols/dicom-json.js";
import { MOCK_SERIES, findByIdentifier, findInstances, findSeries, findStudies } from "./mock-dicom-data.js";

const Options = Type.Object({}, { additionalProperties: false, description: "No options." });

const OPS = new Set(["echo", "find", "get", "move", "store"]);

/** Harmony's flattening of an identifier: tag → first value (PN: Alphabetic), "" for a return key. */
function flatten(identifier: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!identifier || typeof identifier !== "object") return out;
  for (const [tag, e] of Object.entries(identifier as Record<string, unknown>)) {
    const values = (e as { Value?: unknown } | null)?.Value;
    if (!Array.isArray(values)) continue;
    const v: unknown = values[0];
    if (values.length === 0) out[tag.toUpperCase()] = "";
    else if (typeof v === "string" || typeof v === "number") out[tag.toUpperCase()] = String(v);
    else if (v && typeof v === "object" && typeof (v as { Alphabetic?: unknown }).Alphabetic === "string")
      out[tag.toUpperCase()] = (v as { Alphabetic: string }).Alphabetic;
  }
  return out;
}

async function jsonApi(ctx: RequestContext, op: string): Promise<void> {
  if (op === "echo") {
    ctx.response = jsonResponse(200, {
      operation: "echo",
      success: true,
      remote_aet: "MOCK_DICOM",
      host: "mock",
      port: 11112,
    });
    return;
  }
  if (op === "find") {
    const body = await ctx.body.json();
    const wrapped = body && typeof body === "object" && "identifier" in body;
    const identifier = wrapped ? body.identifier : body;
    ctx.response = jsonResponse(200, {
      operation: "find",
      success: true,
      matches: findByIdentifier(flatten(identifier)),
    });
    return;
  }
  if (op === "get") {
    const frame = /\/frames\/(\d+)\/?$/.exec(ctx.subpath)?.[1];
    if (frame !== undefined && Number(frame) >= 9999) {
      ctx.response = jsonResponse(500, { operation: "get", success: false, error: "Frame number out of range" });
      return;
    }
    ctx.response = jsonResponse(200, {
      operation: "get",
      success: true,
      instances: [{ sop_instance_uid: MOCK_SERIES[0]!.instances[0] }],
    });
    return;
  }
  throw new HttpError(400, `Mock DICOM: Unsupported operation: ${op}`, { type: problemType("unsupported-operation") });
}

function dicomJson(status: number, value: DicomJsonDataset[]): ReturnType<typeof jsonResponse> {
  return jsonResponse(status, value, { "content-type": "application/dicom+json" });
}

function dicomweb(ctx: RequestContext): void {
  const op = parseDicomwebRequest(ctx.method, ctx.resource.path, ctx.resource.search);
  if (op.kind === "store") throw new HttpError(405, "mock_dicom is read-only", { headers: { allow: "GET, HEAD" } });
  if (op.kind === "search") {
    const find = { STUDY: findStudies, SERIES: findSeries, IMAGE: findInstances, WORKLIST: () => [] }[op.level];
    const all = find(op.match);
    const page = all.slice(op.offset, op.limit === undefined ? undefined : op.offset + op.limit);
    ctx.response = page.length ? dicomJson(200, page) : { status: 204, headers: {}, body: null };
    return;
  }
  const found = findInstances({
    StudyInstanceUID: op.study,
    SeriesInstanceUID: op.series ?? "",
    SOPInstanceUID: op.sop ?? "",
  });
  if (found.length === 0)
    throw new HttpError(404, "no such study, series or instance", { type: problemType("not-found") });
  if (!op.metadata || op.bulkdata)
    throw new HttpError(404, "mock_dicom holds metadata only, no pixel data", { type: problemType("not-found") });
  ctx.response = dicomJson(200, found);
}

export const mockDicomBackend: BackendPlugin<typeof Options> = {
  kind: "backend",
  type: "mock_dicom",
  options: Options,
  create: () => ({
    async handle(ctx) {
      const first = ctx.subpath.split("/").filter(Boolean)[0]?.toLowerCase() ?? "";
      const op = ctx.metadata.dimse_op?.toLowerCase() ?? (OPS.has(first) ? first : undefined);
      if (op !== undefined) return jsonApi(ctx, op);
      dicomweb(ctx);
    },
  }),
};
