/**
 * Harmony's JSON API on a `dicom` backend, for an `http` endpoint in front of it: `GET /echo`
 * (C-ECHO), and `POST /find`, `/get`, `/move` with a DICOM JSON identifier, answered with
 * `{operation, success, matches | instances, ...}` as the original did (reference §4.3). The
 * original wrote retrieved files to disk and answered with their folder; here instances are read
 * as they arrive and answered as DICOM JSON (bulk data as BulkDataURIs on the gateway), nothing is
 * kept. Bad requests are 4xx problem+json; what the peer says (no match, a DIMSE failure) is the
 * JSON body with `success: false`, as clients of the original parse it.
 */
import { Type } from "@sinclair/typebox";
import type { RequestContext } from "../pipeline/context.js";
import { HttpError, problemType } from "../pipeline/errors.js";
import { jsonDepth } from "../pipeline/body.js";
import type { Peer, Received } from "../protocols/dimse-client.js";
import { lazyModule } from "../lazy-module.js";
import { attribute, toDicomJson, type DicomJsonDataset } from "../protocols/dicom-json.js";
import { hex, isSuccess, isWarning } from "../protocols/dimse-status.js";
import type { Level } from "../protocols/dicomweb-request.js";
import { instanceJson } from "./dicom-metadata.js";

// dcmjs-dimse is about 11 MiB of heap (bench/README.md, issue 18): the DIMSE client loads with the
// first dicom backend built, not when the data plane starts.
const scu = lazyModule<typeof import("../protocols/dimse-client.js")>("../protocols/dimse-client.js", import.meta.url);

export const jsonApiOptions = {
  json_api_max_body_bytes: Type.Integer({
    minimum: 2,
    default: 64 * 1024,
    description: "HTTP JSON API (POST /find, /get, /move): largest request body (else 413).",
  }),
  json_api_max_results: Type.Integer({
    minimum: 1,
    default: 1000,
    description:
      "HTTP JSON API: most matches (/find) or instances (/get, /move) in one answer; beyond it the answer says `truncated: true`.",
  }),
  json_api_move_destinations: Type.Array(Type.String({ minLength: 1, maxLength: 16 }), {
    default: [],
    description:
      "HTTP JSON API: AE titles a POST /move may name as `destination` (the peer sends the instances there); none by default, so /move retrieves to the gateway itself.",
  }),
};

export interface JsonApiLimits {
  json_api_max_body_bytes: number;
  json_api_max_results: number;
  json_api_move_destinations: string[];
}

export type JsonApiOp = "echo" | "find" | "get" | "move";

/** Retrieves instances the way the backend is configured to (C-GET, or C-MOVE to its receiver). */
export type JsonApiFetch = (
  level: Level,
  uids: { study: string; series?: string; sop?: string },
  onInstance: (r: Received) => Promise<void>,
) => Promise<{ status: number; completed: number; failed: number; warnings: number }>;

const OPS = /^\/(echo|find|get|move)\/?$/;

/** The JSON API operation a path names, if any (DICOMweb paths never match). */
export function jsonApiOp(path: string): JsonApiOp | undefined {
  return OPS.exec(path)?.[1] as JsonApiOp | undefined;
}

type Level4 = "PATIENT" | Level;

interface Parsed {
  /** Naturalized identifier: keyword → DICOM-encoded string ("" is a return key). */
  keys: Record<string, string>;
  destination?: string;
}

export async function jsonApi(
  rctx: RequestContext,
  op: JsonApiOp,
  peer: Peer,
  fetch: JsonApiFetch,
  base: string,
  limits: JsonApiLimits,
): Promise<void> {
  const method = rctx.target.method ?? rctx.method;
  const allowed = op === "echo" ? ["GET", "POST"] : ["POST"];
  if (!allowed.includes(method))
    throw new HttpError(405, `${method} is not allowed on /${op}`, { headers: { allow: allowed.join(", ") } });
  if (op === "echo") return echo(rctx, peer);
  const req = parse(await readBody(rctx, limits.json_api_max_body_bytes));
  try {
    if (op === "find") return await find(rctx, peer, req.keys, limits.json_api_max_results);
    return await retrieve(rctx, op, peer, fetch, base, req, limits);
  } catch (e) {
    // A request the gateway refuses stays a problem, and so does a fault of our own (a 500 with
    // nothing leaked); what went wrong with the peer (502, 504) is the API's answer.
    if (!(e instanceof HttpError) || e.status < 500) throw e;
    answer(rctx, e.status, { operation: op, success: false, error: e.message });
  }
}

async function echo(rctx: RequestContext, peer: Peer): Promise<void> {
  const who = { remote_aet: peer.calledAet, host: peer.host, port: peer.port };
  try {
    const status = await scu().cEcho(peer);
    if (isSuccess(status)) return answer(rctx, 200, { operation: "echo", success: true, ...who });
    answer(rctx, 502, { operation: "echo", success: false, ...who, error: `C-ECHO status ${hex(status)}` });
  } catch (e) {
    if (!(e instanceof HttpError)) throw e;
    answer(rctx, e.status, { operation: "echo", success: false, ...who, error: e.message });
  }
}

async function find(rctx: RequestContext, peer: Peer, keys: Record<string, string>, max: number): Promise<void> {
  const level = levelOf(keys);
  const { QueryRetrieveLevel: _, ...identifier } = keys;
  const { status, matches, truncated } = await scu().cFind(peer, identifier, level, max);
  if (!isSuccess(status)) throw dimseFailure("C-FIND", status);
  const out = matches.map((m) => {
    const ds = toDicomJson(m);
    delete ds["00080052"]; // QueryRetrieveLevel is DIMSE plumbing
    delete ds["00080005"]; // DICOM JSON is UTF-8 whatever the archive's character set
    return ds;
  });
  answer(rctx, 200, { operation: "find", success: true, level, matches: out, ...(truncated ? { truncated } : {}) });
}

async function retrieve(
  rctx: RequestContext,
  op: "get" | "move",
  peer: Peer,
  fetch: JsonApiFetch,
  base: string,
  req: Parsed,
  limits: JsonApiLimits,
): Promise<void> {
  const study = req.keys.StudyInstanceUID;
  const series = req.keys.SeriesInstanceUID || undefined;
  const sop = req.keys.SOPInstanceUID || undefined;
  if (!study || study.includes("\\") || study.includes("*"))
    throw new HttpError(400, `/${op} needs one StudyInstanceUID (0020000D) value in the identifier`);
  if (sop && !series) throw new HttpError(400, "SOPInstanceUID needs SeriesInstanceUID (0020000E) too");
  const level: Level = sop ? "IMAGE" : series ? "SERIES" : "STUDY";
  const uids = { study, series, sop };

  if (req.destination !== undefined) {
    if (op !== "move") throw new HttpError(400, "`destination` applies to /move only");
    if (!limits.json_api_move_destinations.includes(req.destination))
      throw new HttpError(403, `move destination ${req.destination} is not in json_api_move_destinations`, {
        type: problemType("move-destination-not-allowed"),
      });
    const r = await scu().cMove(peer, level, uids, req.destination);
    const counts = { completed: r.completed, failed: r.failed, warnings: r.warnings };
    if (r.completed + r.failed + r.warnings === 0 && isSuccess(r.status))
      return answer(rctx, 404, { operation: "move", success: false, error: "Study not found", ...counts });
    if (!isSuccess(r.status) && !isWarning(r.status) && r.completed === 0) throw dimseFailure("C-MOVE", r.status);
    return answer(rctx, 200, {
      operation: "move",
      success: r.failed === 0,
      destination: req.destination,
      ...counts,
    });
  }

  const instances: DicomJsonDataset[] = [];
  let count = 0;
  const r = await fetch(level, uids, (inst) => {
    count++;
    if (instances.length < limits.json_api_max_results) instances.push(instanceJson(inst, base));
    return Promise.resolve();
  });
  if (count === 0) {
    if (r.failed > 0) throw dimseFailure(op === "get" ? "C-GET" : "C-MOVE", r.status);
    return answer(rctx, 404, { operation: op, success: false, error: "Study not found" });
  }
  answer(rctx, 200, {
    operation: op,
    success: r.failed === 0,
    instances,
    file_count: count,
    completed: r.completed,
    failed: r.failed,
    warnings: r.warnings,
    ...(count > instances.length ? { truncated: true } : {}),
  });
}

/**
 * Query level as Harmony chose it from the identifier (an explicit QueryRetrieveLevel wins): IMAGE
 * when a SOP Instance UID is matched, or asked for under a study or series match; SERIES likewise
 * one level up; STUDY when a Study Instance UID is matched or asked for; else PATIENT.
 */
function levelOf(k: Record<string, string>): Level4 {
  const explicit = k.QueryRetrieveLevel?.trim().toUpperCase();
  if (explicit) {
    if (["PATIENT", "STUDY", "SERIES", "IMAGE"].includes(explicit)) return explicit as Level4;
    throw new HttpError(400, `QueryRetrieveLevel "${explicit}" is not PATIENT, STUDY, SERIES or IMAGE`);
  }
  const has = (key: string) => Boolean(k[key]);
  const asks = (key: string) => key in k;
  if (has("SOPInstanceUID") || (asks("SOPInstanceUID") && (has("StudyInstanceUID") || has("SeriesInstanceUID"))))
    return "IMAGE";
  if (has("SeriesInstanceUID") || (asks("SeriesInstanceUID") && has("StudyInstanceUID"))) return "SERIES";
  if (asks("StudyInstanceUID")) return "STUDY";
  return "PATIENT";
}

async function readBody(rctx: RequestContext, max: number): Promise<Buffer> {
  const declared = Number(rctx.req.headers["content-length"]);
  const tooLarge = () =>
    new HttpError(413, `the JSON API takes request bodies up to ${max} bytes`, {
      type: problemType("body-too-large"),
    });
  if (Number.isFinite(declared) && declared > max) throw tooLarge();
  const buf = await rctx.body.buffer(max); // a chunked body is cut off at `max`, not read on
  if (buf.length > max) throw tooLarge(); // a middleware had read it already, under the proxy-wide limit
  return buf;
}

const MAX_KEYS = 256;
const bad = (detail: string) => new HttpError(400, detail, { type: problemType("invalid-identifier") });

/**
 * The body: a DICOM JSON identifier, or Harmony's wrapper `{identifier, command?, query_metadata?}`
 * (plus `destination` for /move). Any content type, as the original parsed whatever it got.
 */
function parse(buf: Buffer): Parsed {
  if (buf.length === 0) return { keys: {} };
  if (jsonDepth(buf) > 16) throw bad("the identifier nests too deep");
  let body: unknown;
  try {
    body = JSON.parse(buf.toString("utf8"));
  } catch (e) {
    throw new HttpError(400, `request body is not valid JSON: ${(e as Error).message}`, {
      type: problemType("invalid-json"),
    });
  }
  if (!isObject(body)) throw bad("the body is a JSON object: a DICOM JSON identifier or {identifier: ...}");
  const wrapped = "identifier" in body;
  const ident = wrapped ? body.identifier : body;
  if (!isObject(ident)) throw bad("identifier is a JSON object (DICOM JSON)");
  const destination = wrapped ? body.destination : undefined;
  if (
    destination !== undefined &&
    (typeof destination !== "string" || !/^[\x20-\x5b\x5d-\x7e]{1,16}$/.test(destination))
  )
    throw bad("destination is an AE title (1 to 16 characters)");
  const entries = Object.entries(ident);
  if (entries.length > MAX_KEYS) throw bad(`the identifier has more than ${MAX_KEYS} attributes`);
  const keys: Record<string, string> = {};
  for (const [tag, el] of entries) {
    const a = attribute(tag);
    if (!a) throw bad(`${tag} is not a DICOM tag or keyword this gateway knows`);
    if (!isObject(el)) throw bad(`${tag}: an attribute is {"vr": ..., "Value": [...]}`);
    const vr = el.vr ?? a.vr;
    if (vr === "SQ" || a.vr === "SQ") throw bad(`${tag}: sequence matching is not supported by the JSON API`);
    const values = el.Value ?? [];
    if (!Array.isArray(values)) throw bad(`${tag}: Value is an array`);
    keys[a.keyword] = values.map((v) => value(tag, v)).join("\\");
  }
  return { keys, destination: destination };
}

function value(tag: string, v: unknown): string {
  if (typeof v === "string") {
    if (v.length > 1024) throw bad(`${tag}: value longer than 1024 characters`);
    return v;
  }
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  if (v === null) return "";
  if (isObject(v) && typeof v.Alphabetic === "string") return v.Alphabetic; // PN
  throw bad(`${tag}: values are strings, numbers or {"Alphabetic": ...}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function dimseFailure(what: string, status: number): HttpError {
  const clientFault = status === 0xa900 || (status & 0xff00) === 0xc000;
  return new HttpError(clientFault ? 400 : 502, `${what} failed with DIMSE status ${hex(status)}`, {
    type: problemType("dimse-failure"),
  });
}

function answer(rctx: RequestContext, status: number, body: unknown): void {
  const buf = Buffer.from(JSON.stringify(body));
  rctx.response = {
    status,
    headers: { "content-type": "application/json", "content-length": String(buf.length), "x-request-id": rctx.id },
    body: buf,
  };
}
