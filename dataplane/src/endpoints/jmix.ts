/**
 * `jmix` endpoint: the JMIX HTTP API under `path_prefix` (spec docs/spec/api.md):
 *   GET|HEAD {p}/api/jmix/{id}                  the package as a zip, or a tar.gz for
 *                                               `Accept: application/gzip` (406 for another Accept)
 *   GET|HEAD {p}/api/jmix/{id}/manifest         its manifest.json
 *   GET|HEAD {p}/api/jmix/{id}/metadata         its payload/metadata.json (not for encrypted
 *                                               packages); an extension, for FHIR ImagingStudy
 *   GET|HEAD {p}/api/jmix?studyInstanceUid=…    the study's package, built on a miss
 *   GET|POST {p}/api/jmix/prime/{studyUid}      build (201) without downloading
 *   POST     {p}/api/jmix                       upload a zip or tar.gz (201, 400, 409, 415)
 * The endpoint only reads the request (ids must be UUIDs, UIDs DICOM UIDs: 400 otherwise) and
 * leaves a JmixRequest in ctx.locals; the pipeline's `jmix_builder` middleware does the work, after
 * any authentication middleware listed before it.
 */
import { Type } from "@sinclair/typebox";
import type { EndpointPlugin } from "../plugins/types.js";
import type { RequestContext } from "../pipeline/context.js";
import { HttpError } from "../pipeline/errors.js";
import { DICOM_UID, UUID } from "../jmix/store.js";

const Options = Type.Object(
  {
    path_prefix: Type.String({
      minLength: 1,
      description: "Where the API lives; requests go to {path_prefix}/api/jmix.",
    }),
  },
  { additionalProperties: false },
);

/** How a package is downloaded: zip (the JMIX default), or tar.gz as Harmony also served. */
export type PackageFormat = "zip" | "tar.gz";

export type JmixRequest =
  | { op: "get"; id: string; head: boolean; format: PackageFormat }
  | { op: "manifest"; id: string; head: boolean }
  | { op: "metadata"; id: string; head: boolean }
  | {
      op: "study";
      studyUid: string;
      head: boolean;
      format: PackageFormat;
      skipHashing?: boolean;
      skipListing?: boolean;
    }
  | { op: "prime"; studyUid: string; skipHashing?: boolean; skipListing?: boolean }
  | { op: "upload"; format: "zip" | "tar.gz" };

export const JMIX_LOCAL = "jmix";

const ZIP_TYPES = /^application\/(zip|x-zip-compressed)\b/i;
const TGZ_TYPES = /^application\/(gzip|x-gzip|x-tar\+gzip|tar\+gzip)\b/i;

/** True when `accept` admits `type` (absent, wildcards, or the type itself with q > 0). */
export function accepts(accept: string | undefined, type: string): boolean {
  if (!accept) return true;
  const [major] = type.split("/");
  return accept.split(",").some((part) => {
    const [range, ...params] = part.trim().toLowerCase().split(";");
    const q = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    if (q && Number(q.slice(2)) === 0) return false;
    return range === "*/*" || range === `${major}/*` || range === type;
  });
}

/** zip when the client takes it (or says nothing), else tar.gz when it takes gzip; 406 otherwise. */
function packageFormat(accept: string | undefined): PackageFormat {
  if (accepts(accept, "application/zip")) return "zip";
  if (["application/gzip", "application/x-gzip", "application/x-tar+gzip"].some((t) => accepts(accept, t)))
    return "tar.gz";
  throw new HttpError(406, "packages are served as application/zip or application/gzip (tar.gz)");
}

function flag(sp: URLSearchParams, name: string): boolean | undefined {
  const v = sp.get(name);
  if (v === null) return undefined;
  if (v === "true" || v === "1") return true;
  if (v === "false" || v === "0") return false;
  throw new HttpError(400, `${name} must be true or false, not "${v}"`);
}

/** The API resource a path names, and the methods it takes; 404 outside the API. */
function resource(subpath: string): { a?: string; b?: string; allow: string[] } {
  const m = /^\/api\/jmix(?:\/([^/]+)(?:\/([^/]+))?)?\/?$/.exec(subpath);
  if (!m) throw new HttpError(404, `${subpath} is not part of the JMIX API (it lives under /api/jmix)`);
  const [, a, b] = m;
  if (a === undefined) return { allow: ["GET", "HEAD", "POST", "OPTIONS"] };
  if (a === "prime") {
    if (b === undefined) throw new HttpError(404, "prime takes a StudyInstanceUID: /api/jmix/prime/{studyInstanceUid}");
    return { a, b, allow: ["GET", "POST", "OPTIONS"] };
  }
  if (b !== undefined && b !== "manifest" && b !== "metadata")
    throw new HttpError(404, `/api/jmix/{id}/${b} is not part of the JMIX API`);
  return { a, b, allow: ["GET", "HEAD", "OPTIONS"] };
}

function checkUid(uid: string): string {
  if (!DICOM_UID.test(uid) || uid.length > 64) throw new HttpError(400, `"${uid}" is not a DICOM UID`);
  return uid;
}

function parse(ctx: RequestContext): JmixRequest {
  const { a, b, allow } = resource(ctx.subpath);
  const method = ctx.method;
  if (!allow.includes(method))
    throw new HttpError(405, `${method} is not allowed on ${ctx.subpath}`, { headers: { allow: allow.join(", ") } });
  const head = method === "HEAD";
  const sp = new URLSearchParams(ctx.search);
  const skip = { skipHashing: flag(sp, "skip_hashing"), skipListing: flag(sp, "skip_listing") };
  const accept = ctx.req.headers.accept;
  if (a === undefined) {
    if (method === "POST") {
      const ct = ctx.req.headers["content-type"] ?? "";
      if (ZIP_TYPES.test(ct)) return { op: "upload", format: "zip" };
      if (TGZ_TYPES.test(ct)) return { op: "upload", format: "tar.gz" };
      throw new HttpError(
        415,
        `a JMIX upload is application/zip or application/gzip (tar.gz), not "${ct || "(none)"}"`,
      );
    }
    const uid = sp.get("studyInstanceUid");
    if (!uid) throw new HttpError(400, "studyInstanceUid is required (GET /api/jmix?studyInstanceUid=…)");
    checkUid(uid);
    return { op: "study", studyUid: uid, head, format: packageFormat(accept), ...skip };
  }
  if (a === "prime") return { op: "prime", studyUid: checkUid(b!), ...skip };
  if (!UUID.test(a)) throw new HttpError(400, `"${a}" is not a package id (a UUID)`);
  if (b === "manifest" || b === "metadata") {
    if (!accepts(accept, "application/json")) throw new HttpError(406, `${b} is served as application/json`);
    return { op: b, id: a.toLowerCase(), head };
  }
  return { op: "get", id: a.toLowerCase(), head, format: packageFormat(accept) };
}

export const jmixEndpoint: EndpointPlugin<typeof Options> = {
  kind: "endpoint",
  type: "jmix",
  options: Options,
  requiresMiddleware: "jmix_builder",
  create: (o) => ({
    routes: [{ prefix: o.path_prefix, methods: "*" }],
    onRequest(ctx) {
      if (ctx.method === "OPTIONS") {
        const { allow } = resource(ctx.subpath);
        ctx.response = { status: 204, headers: { allow: allow.join(", "), "content-length": "0" }, body: null };
        return;
      }
      ctx.locals[JMIX_LOCAL] = parse(ctx);
    },
  }),
};
