/**
 * `storage` backend (Harmony 0.13): files on a filesystem `root`, or objects under
 * `s3://bucket/prefix`. GET/HEAD read the object `read_pattern` names (streamed, one byte range
 * if asked); POST/PUT write the request body where `write_pattern` says (streamed, bounded by
 * `max_object_bytes`) and answer 201 with a Location. A STOW-RS body — and so a C-STORE from a
 * `dicom` endpoint — is written instance by instance (storage-dicom.ts). Patterns and the paths
 * they expand to: storage-pattern.ts; keeping every path inside the root: there and in
 * storage-objects.ts.
 */
import { createHash } from "node:crypto";
import { Type, type Static } from "@sinclair/typebox";
import parseRange from "range-parser";
import type { OutgoingHttpHeaders } from "node:http";
import type { BackendPlugin, BuildContext, OptionProblem } from "../plugins/types.js";
import type { RequestContext } from "../pipeline/context.js";
import { ClientGoneError, HttpError, problemType } from "../pipeline/errors.js";
import { jsonResponse } from "../pipeline/json-response.js";
import { readSecret, secretProps } from "../plugins/secret.js";
import type { S3Settings } from "../jmix/storage-s3.js";
import { compilePattern, expandPattern, pathProblem, requestPath, urlOf, type Part } from "./storage-pattern.js";
import { FilesystemObjects, limited, tooLarge, type ObjectStore } from "./storage-objects.js";
import { S3Objects } from "./storage-s3-objects.js";
import {
  CANNOT_UNDERSTAND,
  IDENTIFIER_MISMATCH,
  OUT_OF_RESOURCES,
  instances,
  isDicomUpload,
  stowResponse,
  type StowResult,
} from "./storage-dicom.js";

const Options = Type.Object(
  {
    root: Type.String({
      minLength: 1,
      description:
        "A directory (relative to the config file; created at start) or s3://bucket/prefix. Every path a pattern expands to stays below it.",
    }),
    read_pattern: Type.String({
      minLength: 1,
      default: "{path}",
      description:
        "Where GET/HEAD read, below root: text with {uuid}, {timestamp}, {path} (the request path below the endpoint), {file} (= {path}), metadata keys and JSON body fields.",
    }),
    write_pattern: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          "Where POST/PUT write, below root (without it writes are 405): the same placeholders; for DICOM (STOW-RS, C-STORE) each instance's attribute keywords, and {file} = {StudyInstanceUID}/{SOPInstanceUID}.dcm.",
      }),
    ),
    max_object_bytes: Type.Integer({
      minimum: 1,
      default: 1024 * 1024 * 1024,
      description: "Largest object (or DICOM instance) one write may carry; beyond it 413.",
    }),
    region: Type.String({ default: "us-east-1", description: "S3 region." }),
    endpoint: Type.Optional(Type.String({ description: "S3-compatible endpoint URL (MinIO, Ceph RGW...)." })),
    force_path_style: Type.Optional(
      Type.Boolean({ description: "Path-style S3 URLs (default: true when endpoint is given)." }),
    ),
    ...secretProps("access_key_id", "S3 access key id"),
    ...secretProps("secret_access_key", "S3 secret access key"),
  },
  { additionalProperties: false },
);
type Options = Static<typeof Options>;

const S3_ROOT = /^s3:\/\/([^/]+)\/?(.*)$/;

function s3Settings(o: Options, ctx: BuildContext): { settings?: S3Settings; problems: OptionProblem[] } {
  const m = S3_ROOT.exec(o.root);
  if (!m) return { problems: [{ path: ["root"], message: "s3:// roots are s3://bucket or s3://bucket/prefix" }] };
  const id = readSecret(o, "access_key_id", ctx);
  const secret = readSecret(o, "secret_access_key", ctx);
  const problems = [...id.problems, ...secret.problems];
  if ((id.value === undefined) !== (secret.value === undefined))
    problems.push({ path: ["access_key_id"], message: "give both access_key_id and secret_access_key, or neither" });
  if (o.endpoint !== undefined && !/^https?:\/\//.test(o.endpoint))
    problems.push({ path: ["endpoint"], message: "must be an http:// or https:// URL" });
  const prefix = m[2]!;
  const why = prefix && pathProblem(prefix.replace(/\/$/, ""));
  if (why) problems.push({ path: ["root"], message: `the S3 prefix is refused: ${why}` });
  return {
    problems,
    settings: {
      bucket: m[1]!,
      prefix,
      region: o.region,
      ...(o.endpoint ? { endpoint: o.endpoint } : {}),
      forcePathStyle: o.force_path_style ?? o.endpoint !== undefined,
      ...(id.value !== undefined ? { accessKeyId: id.value } : {}),
      ...(secret.value !== undefined ? { secretAccessKey: secret.value } : {}),
    },
  };
}

function check(o: Options, ctx: BuildContext): OptionProblem[] {
  const problems: OptionProblem[] = [];
  for (const key of ["read_pattern", "write_pattern"] as const) {
    const p = o[key];
    if (p === undefined) continue;
    const c = compilePattern(p);
    if (typeof c === "string") problems.push({ path: [key], message: c });
  }
  if (o.root.startsWith("s3://")) problems.push(...s3Settings(o, ctx).problems);
  else if (o.endpoint !== undefined || o.access_key_id !== undefined)
    problems.push({
      path: ["root"],
      message: "S3 settings are given but root is not an s3:// URI",
      severity: "warning",
    });
  return problems;
}

/** What a read answers with, by extension (the original's map, plus a few common ones). */
const TYPES: Record<string, string> = {
  json: "application/json",
  xml: "application/xml",
  dcm: "application/dicom",
  txt: "text/plain; charset=utf-8",
  pdf: "application/pdf",
  zip: "application/zip",
};
const typeOf = (rel: string) =>
  TYPES[/\.([A-Za-z0-9]+)$/.exec(rel)?.[1]?.toLowerCase() ?? ""] ?? "application/octet-stream";

const BUILT_IN = new Set(["uuid", "timestamp", "path", "file"]);

export const storageBackend: BackendPlugin<typeof Options> = {
  kind: "backend",
  type: "storage",
  options: Options,
  check,
  create(o, ctx) {
    const readParts = compilePattern(o.read_pattern) as Part[];
    const writeParts = o.write_pattern === undefined ? undefined : (compilePattern(o.write_pattern) as Part[]);
    // Backends with the same root and settings share one store (and a reload keeps its client).
    let store: ObjectStore;
    if (o.root.startsWith("s3://")) {
      const settings = s3Settings(o, ctx).settings!;
      const key = createHash("sha256").update(JSON.stringify(settings)).digest("hex");
      store = ctx.resources.acquire(`storage-s3:${key}`, () => new S3Objects(settings));
    } else {
      const dir = ctx.resolvePath(o.root);
      store = ctx.resources.acquire(`storage-fs:${dir}`, () => new FilesystemObjects(dir));
    }

    /** Placeholder values: built-ins, then middleware metadata, then the given fields (DICOM header or JSON body). */
    const lookup = (rctx: RequestContext, fields?: Map<string, string> | Record<string, unknown>) => {
      const path = () => requestPath(rctx.resource.path);
      return (name: string): string | undefined => {
        if (name === "path") return path();
        if (name === "file") return fields instanceof Map ? (fields.get("file") ?? path()) : path();
        const m = rctx.metadata[name];
        if (m !== undefined) return m;
        const f = fields instanceof Map ? fields.get(name) : fields?.[name];
        return typeof f === "string" ? f : typeof f === "number" && Number.isFinite(f) ? String(f) : undefined;
      };
    };

    /** JSON body fields, read only when the pattern names something nothing else supplies. */
    async function bodyFields(rctx: RequestContext, parts: Part[]): Promise<Record<string, unknown> | undefined> {
      const wanted = parts.some((p) => "name" in p && !BUILT_IN.has(p.name) && rctx.metadata[p.name] === undefined);
      if (!wanted || !rctx.body.present || !rctx.body.isJson) return undefined;
      const v = await rctx.body.json();
      return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
    }

    async function read(rctx: RequestContext, head: boolean): Promise<void> {
      const rel = expandPattern(readParts, lookup(rctx, await bodyFields(rctx, readParts)));
      const obj = await store.stat(rel);
      if (!obj) throw new HttpError(404, "no such object", { type: problemType("not-found") });
      const headers: OutgoingHttpHeaders = {
        "content-type": typeOf(rel),
        "accept-ranges": "bytes",
        ...(obj.modified ? { "last-modified": obj.modified.toUTCString() } : {}),
      };
      let start = 0;
      let end = obj.size - 1;
      let status = 200;
      const asked = rctx.req.headers.range;
      // One range is served; several (multipart/byteranges), a malformed header, or an If-Range
      // (validators are not kept) get the whole object, as RFC 9110 allows.
      if (asked && !rctx.req.headers["if-range"] && !rctx.internal) {
        const r = parseRange(obj.size, asked, { combine: true });
        if (r === -1) {
          obj.close();
          throw new HttpError(416, "the range is outside the object", {
            headers: { "content-range": `bytes */${obj.size}` },
            type: problemType("range-not-satisfiable"),
          });
        }
        if (r !== -2 && r.type === "bytes" && r.length === 1) {
          start = r[0]!.start;
          end = r[0]!.end;
          status = 206;
          headers["content-range"] = `bytes ${start}-${end}/${obj.size}`;
        }
      }
      headers["content-length"] = obj.size === 0 ? 0 : end - start + 1;
      if (head || obj.size === 0) {
        obj.close();
        rctx.response = { status, headers, body: head ? null : Buffer.alloc(0) };
        return;
      }
      rctx.response = { status, headers, body: obj.read(start, end) };
    }

    async function writeOne(rctx: RequestContext): Promise<void> {
      const declared = Number(rctx.req.headers["content-length"]);
      if (Number.isFinite(declared) && declared > o.max_object_bytes) throw tooLarge(o.max_object_bytes);
      const rel = expandPattern(writeParts!, lookup(rctx, await bodyFields(rctx, writeParts!)));
      const body = limited(rctx.body.forUpstream(), o.max_object_bytes);
      await store.write(rel, body, rctx.body.contentType);
      const location = urlOf(rctx.route.prefix, rel);
      rctx.response = jsonResponse(201, { status: "stored", path: rel, location, bytes: body.bytes });
      rctx.response.headers.location = location;
    }

    async function writeDicom(rctx: RequestContext): Promise<void> {
      const result: StowResult = { stored: [], failed: [] };
      const source = rctx.body.forUpstream() ?? Buffer.alloc(0);
      // POST /studies/{study}: PS3.18 10.5.3 refuses instances of any other study.
      const onlyStudy = /^\/studies\/([^/]+)\/?$/.exec(rctx.resource.path)?.[1];
      for await (const inst of instances(source, rctx.body.contentType, o.max_object_bytes)) {
        if (inst.problem) {
          ctx.logger.warn("storage: DICOM instance refused", { request_id: rctx.id, reason: inst.problem });
          result.failed.push({ sopClass: inst.sopClass, sop: inst.sop, reason: CANNOT_UNDERSTAND });
          continue;
        }
        if (onlyStudy !== undefined && inst.fields.get("StudyInstanceUID") !== onlyStudy) {
          result.failed.push({ sopClass: inst.sopClass, sop: inst.sop, reason: IDENTIFIER_MISMATCH });
          continue;
        }
        let rel: string;
        try {
          rel = expandPattern(writeParts!, lookup(rctx, inst.fields));
        } catch (e) {
          ctx.logger.warn("storage: DICOM instance refused", { request_id: rctx.id, reason: (e as Error).message });
          result.failed.push({ sopClass: inst.sopClass, sop: inst.sop, reason: CANNOT_UNDERSTAND });
          continue;
        }
        try {
          await store.write(rel, limited(inst.bytes, o.max_object_bytes), "application/dicom");
          result.stored.push({ sopClass: inst.sopClass!, sop: inst.sop!, url: urlOf(rctx.route.prefix, rel) });
        } catch (e) {
          ctx.logger.warn("storage: DICOM instance not written", { request_id: rctx.id, error: (e as Error).message });
          result.failed.push({ sopClass: inst.sopClass, sop: inst.sop, reason: OUT_OF_RESOURCES });
        }
      }
      if (result.stored.length + result.failed.length === 0)
        throw new HttpError(400, "the STOW-RS body holds no instance", { type: problemType("empty-stow") });
      const { status, body } = stowResponse(result);
      rctx.response = jsonResponse(status, body);
      rctx.response.headers["content-type"] = "application/dicom+json";
    }

    /**
     * Store failures the client cannot fix (a bucket unreachable, a full disk, permissions) as
     * problems that say so without internals; the cause goes to the log (executor.ts).
     */
    const storeFailure = (e: unknown): unknown => {
      const code = (e as NodeJS.ErrnoException).code;
      // The client's own failures (gone mid-body) stay what they are: there is nobody to answer.
      if (e instanceof HttpError || e instanceof ClientGoneError || code === "ERR_STREAM_PREMATURE_CLOSE") return e;
      if (code === "ENOSPC" || code === "EDQUOT")
        return new HttpError(507, "the storage backend is out of space", { cause: e });
      return new HttpError(502, `storage backend "${ctx.name}" failed; see the gateway log`, {
        type: problemType("storage-unavailable"),
        cause: e,
      });
    };

    return {
      async handle(rctx) {
        try {
          await serve(rctx);
        } catch (e) {
          throw storeFailure(e);
        }
      },
    };

    async function serve(rctx: RequestContext): Promise<void> {
      const m = rctx.method;
      if (m === "GET" || m === "HEAD") return read(rctx, m === "HEAD");
      if (m === "POST" || m === "PUT") {
        if (!writeParts)
          throw new HttpError(405, "this storage backend has no write_pattern", {
            headers: { allow: "GET, HEAD" },
          });
        return isDicomUpload(rctx.body.contentType) ? writeDicom(rctx) : writeOne(rctx);
      }
      throw new HttpError(405, `${m} is not served by a storage backend`, {
        headers: { allow: writeParts ? "GET, HEAD, POST, PUT" : "GET, HEAD" },
      });
    }
  },
};
