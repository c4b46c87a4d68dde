/**
 * `metadata_transform`: a JOLT chain over what surrounds a body rather than the body.
 *
 * Left, `transform_target = "target_details"` (the default): the spec sees
 * `{ method, uri, headers, query_params, cookies, metadata }` of the request and its output says
 * what the backend sends instead: `method`, `uri` (path and query below the backend's base),
 * `query_params`, `headers` ("" removes one) and `metadata`. Keys it leaves out keep their value.
 * `base_url` in the output is refused: the origin a request may reach is backend configuration,
 * not something derived from request data.
 * Left, `transform_target = "metadata"`: the spec maps the request metadata to new metadata.
 * Right: the spec sees `{ status, headers, metadata }` of the response; `headers` and `metadata`
 * in its output are applied to the response the client gets.
 * Only string values are taken from the output (a number or object where a string belongs is an
 * error), so a spec cannot smuggle structured data into a header. An output `method` must be one of
 * `allowed_methods`: CONNECT (or any other verb an HTTP client library treats as a tunnel or
 * upgrade) would leave the request hanging and the upstream socket leaked. An output `uri` is
 * refused when it holds a dot segment in any spelling (`..`, `%2e%2e`, `%252e%252e`, `..;/`).
 */
import { Type, type Static } from "@sinclair/typebox";
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import type { MiddlewarePlugin } from "../plugins/types.js";
import type { RequestContext } from "../pipeline/context.js";
import { HttpError, problemType } from "../pipeline/errors.js";
import { chainr, type ChainStep } from "../transform/jolt-chain.js";
import type { Json } from "../transform/jolt.js";
import { loadSpec } from "../transform/spec-file.js";
import { PathError, canonicalPath } from "../pipeline/canonical-path.js";

const Options = Type.Object(
  {
    spec_path: Type.String({ minLength: 1, description: "JOLT spec, relative to transforms_path." }),
    apply: Type.Union([Type.Literal("left"), Type.Literal("right"), Type.Literal("both")], { default: "left" }),
    fail_on_error: Type.Boolean({
      default: true,
      description: "A failing transform fails the request (500) instead of leaving things as they were.",
    }),
    transform_target: Type.Union([Type.Literal("target_details"), Type.Literal("metadata")], {
      default: "target_details",
      description: "Left side: rewrite the upstream request (target_details) or only the request metadata.",
    }),
    allowed_methods: Type.Array(Type.String({ pattern: "^[A-Za-z]+$" }), {
      minItems: 1,
      default: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
      description:
        "Methods an output `method` may name (case-insensitive); any other fails the request with a 500 before anything is sent upstream.",
    }),
  },
  { additionalProperties: false },
);
type Options = Static<typeof Options>;

class OutputError extends Error {}

type Strings = Record<string, string>;

function flatHeaders(h: IncomingHttpHeaders | OutgoingHttpHeaders): Strings {
  const out: Strings = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || k.startsWith(":")) continue;
    out[k] = Array.isArray(v) ? v.join(", ") : String(v);
  }
  return out;
}

function cookies(header: string | undefined): Strings {
  const out: Strings = {};
  for (const part of header?.split(";") ?? []) {
    const i = part.indexOf("=");
    if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

/** Query parameters as strings, or lists of strings when repeated. */
function queryParams(search: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of new URLSearchParams(search)) {
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

function stringMap(v: Json | undefined, key: string): Strings | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "object" || Array.isArray(v)) throw new OutputError(`${key} must be an object of strings`);
  const out: Strings = {};
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== "string") throw new OutputError(`${key}.${k} must be a string`);
    out[k] = x;
  }
  return out;
}

function optString(v: Json | undefined, key: string): string | undefined {
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string") throw new OutputError(`${key} must be a string`);
  return v;
}

/** A spec that matched nothing yields null: nothing to change. */
function asObject(v: Json): Record<string, Json> {
  if (v === null) return {};
  if (typeof v !== "object" || Array.isArray(v)) throw new OutputError("the output must be an object");
  return v;
}

const hasControl = (s: string) => [...s].some((c) => c.charCodeAt(0) < 0x20 || c === "\x7f");

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Percent-decodings tried before a path that still changes is refused outright. */
const MAX_DECODES = 3;

/**
 * True when `path` holds a `.` or `..` segment in any spelling an upstream might decode it to:
 * percent-encoded (`%2e%2e`), encoded twice (`%252e%252e`), with a path parameter after it
 * (`..;/`, which Tomcat and Spring treat as `..`), or with a backslash for a slash. A path that
 * does not percent-decode cleanly is refused too: an upstream's decoder might read it differently.
 */
export function hasDotSegment(path: string): boolean {
  let p = path;
  for (let i = 0; ; i++) {
    if (p.includes("\\")) return true;
    for (const seg of p.split("/")) {
      const name = seg.split(";")[0]!;
      if (name === "." || name === "..") return true;
    }
    let next: string;
    try {
      next = decodeURIComponent(p);
    } catch {
      return true;
    }
    if (next === p) return false;
    if (i === MAX_DECODES) return true;
    p = next;
  }
}

/** Applies a target_details output to the request's upstream overrides. */
function applyTarget(rctx: RequestContext, out: Record<string, Json>, methods: ReadonlySet<string>): void {
  if (optString(out.base_url, "base_url") !== undefined)
    throw new OutputError("base_url cannot be set by a transform (the backend's configuration decides the origin)");
  const method = optString(out.method, "method");
  if (method !== undefined) {
    if (!TOKEN.test(method)) throw new OutputError(`method "${method}" is not an HTTP method`);
    const upper = method.toUpperCase();
    if (!methods.has(upper)) throw new OutputError(`method "${method}" is not in allowed_methods`);
    rctx.target.method = upper;
  }
  const uri = optString(out.uri, "uri");
  if (uri !== undefined) {
    // Same rules as a client's path: no authority, no dot segments, no control characters.
    if (!uri.startsWith("/") || uri.startsWith("//") || /[\s#]/.test(uri) || hasControl(uri))
      throw new OutputError(`uri "${uri}" must be a path starting with a single /`);
    if (hasDotSegment(uri.split("?")[0]!)) throw new OutputError(`uri "${uri}" has dot segments`);
    // A uri is often built from request data (a query parameter): its path gets the client path's
    // canonical form, or `%2e%2e` could reach an upstream that decodes it into `..`.
    const q = uri.indexOf("?");
    let path: string;
    try {
      path = canonicalPath(q < 0 ? uri : uri.slice(0, q), rctx.pathNormalization);
    } catch (e) {
      if (!(e instanceof PathError)) throw e;
      throw new OutputError(`uri "${uri}": ${e.message}`);
    }
    rctx.target.uri = q < 0 ? path : path + uri.slice(q);
  }
  if (out.query_params !== undefined && out.query_params !== null) {
    const q = out.query_params;
    if (typeof q !== "object" || Array.isArray(q)) throw new OutputError("query_params must be an object");
    const sp = new URLSearchParams();
    for (const [k, v] of Object.entries(q)) {
      for (const one of Array.isArray(v) ? v : [v]) {
        if (typeof one !== "string") throw new OutputError(`query_params.${k} must be a string or a list of strings`);
        sp.append(k, one);
      }
    }
    const s = sp.toString();
    rctx.target.query = s ? `?${s}` : "";
  }
  const headers = stringMap(out.headers, "headers");
  if (headers) {
    for (const [k, v] of Object.entries(headers)) {
      if (!TOKEN.test(k) || /[\r\n\0]/.test(v)) throw new OutputError(`headers.${k} is not a valid header`);
    }
    rctx.target.headers = { ...rctx.target.headers, ...headers };
  }
  Object.assign(rctx.metadata, stringMap(out.metadata, "metadata"));
}

export const metadataTransform: MiddlewarePlugin<typeof Options> = {
  kind: "middleware",
  type: "metadata_transform",
  options: Options,
  check: (o, ctx) => loadSpec(o, ctx).problems,
  create: (o, ctx) => {
    const chain: ChainStep[] | undefined = loadSpec(o, ctx).chain;
    if (!chain) throw new Error("spec unavailable");
    const methods = new Set(o.allowed_methods.map((m) => m.toUpperCase()));

    /** Runs the spec and applies its output; errors become a 500 or a logged no-op, as configured. */
    const run = (rctx: RequestContext, input: Json, apply: (out: Json) => void): void => {
      try {
        apply(chainr(input, chain));
      } catch (e) {
        ctx.logger.warn("metadata_transform failed", {
          request_id: rctx.id,
          spec: o.spec_path,
          error: (e as Error).message,
        });
        if (o.fail_on_error)
          throw new HttpError(500, "the configured metadata transform failed on this request", {
            type: problemType("transform-failed"),
          });
      }
    };

    const onRequest = (rctx: RequestContext): void => {
      if (o.transform_target === "metadata") {
        run(rctx, { ...rctx.metadata }, (out) => Object.assign(rctx.metadata, stringMap(asObject(out), "metadata")));
        return;
      }
      const input = {
        method: rctx.method,
        uri: rctx.subpath + rctx.search,
        headers: flatHeaders(rctx.req.headers),
        query_params: queryParams(rctx.search),
        cookies: cookies(rctx.req.headers.cookie),
        metadata: { ...rctx.metadata },
      };
      run(rctx, input, (out) => applyTarget(rctx, asObject(out), methods));
    };

    const onResponse = (rctx: RequestContext): void => {
      const res = rctx.response;
      if (!res) return;
      const input = { status: res.status, headers: flatHeaders(res.headers), metadata: { ...rctx.metadata } };
      run(rctx, input, (out) => {
        const obj = asObject(out);
        const headers = stringMap(obj.headers, "headers");
        for (const [k, v] of Object.entries(headers ?? {})) {
          const name = k.toLowerCase();
          if (!TOKEN.test(name) || /[\r\n\0]/.test(v) || name === "content-length" || name === "transfer-encoding")
            throw new OutputError(`headers.${k} cannot be set on a response`);
          if (v === "") delete res.headers[name];
          else res.headers[name] = v;
        }
        Object.assign(rctx.metadata, stringMap(obj.metadata, "metadata"));
      });
    };

    return {
      ...(o.apply !== "right" ? { onRequest } : {}),
      ...(o.apply !== "left" ? { onResponse } : {}),
    };
  },
};
