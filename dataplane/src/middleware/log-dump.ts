/**
 * `log_dump`: writes what passes through to the log (target `harmony.dump`), for debugging a
 * pipeline: method, path, query, headers, body (up to `max_bytes`) and, on the way back, status
 * and headers. Authorization, cookies and any header in `redact_headers` are replaced; fields
 * named in `redact_data_fields` (dot paths) are replaced in JSON bodies.
 */
import { Type, type Static } from "@sinclair/typebox";
import type { MiddlewarePlugin } from "../plugins/types.js";
import type { RequestContext } from "../pipeline/context.js";
import { readResponseBody, responseIsJson } from "../pipeline/response-body.js";

const Options = Type.Object(
  {
    apply: Type.Union([Type.Literal("left"), Type.Literal("right"), Type.Literal("both")], { default: "both" }),
    pretty: Type.Boolean({ default: true, description: "Accepted for original configs (logs are JSON lines)." }),
    max_bytes: Type.Integer({ minimum: 0, default: 65536, description: "Body bytes logged at most." }),
    redact_headers: Type.Array(Type.String(), { default: [] }),
    redact_metadata: Type.Array(Type.String(), { default: [], description: "Accepted for original configs." }),
    redact_data_fields: Type.Array(Type.String(), { default: [], description: "Dot paths in JSON bodies to hide." }),
    label: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
type Options = Static<typeof Options>;

const ALWAYS = ["authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-harmony-mesh"];
const REDACTED = "<redacted>";

function redactPaths(value: unknown, paths: string[][]): unknown {
  if (!paths.length || typeof value !== "object" || value === null) return value;
  const copy = JSON.parse(JSON.stringify(value)) as Record<string, unknown>;
  for (const p of paths) {
    let node: unknown = copy;
    for (let i = 0; i < p.length - 1 && node && typeof node === "object"; i++)
      node = (node as Record<string, unknown>)[p[i]!];
    if (node && typeof node === "object" && p[p.length - 1]! in node)
      (node as Record<string, unknown>)[p[p.length - 1]!] = REDACTED;
  }
  return copy;
}

export const logDump: MiddlewarePlugin<typeof Options> = {
  kind: "middleware",
  type: "log_dump",
  options: Options,
  create: (o: Options, ctx) => {
    const hidden = new Set([...ALWAYS, ...o.redact_headers.map((h) => h.toLowerCase())]);
    const fields = o.redact_data_fields.map((f) => f.split("."));
    const headers = (h: Record<string, unknown>) =>
      Object.fromEntries(Object.entries(h).map(([k, v]) => [k, hidden.has(k.toLowerCase()) ? REDACTED : v]));
    const body = (buf: Buffer, json: boolean) => {
      const text = buf.subarray(0, o.max_bytes).toString("utf8");
      if (json && buf.length <= o.max_bytes) {
        try {
          return redactPaths(JSON.parse(text), fields);
        } catch {
          /* logged as text */
        }
      }
      return buf.length > o.max_bytes ? `${text}… (${buf.length} bytes)` : text;
    };
    const log = (side: "left" | "right", rctx: RequestContext, extra: object) =>
      ctx.logger.info("log_dump", {
        target: "harmony.dump",
        label: o.label,
        side,
        request_id: rctx.id,
        pipeline: rctx.route.pipeline.name,
        ...extra,
      });
    return {
      ...(o.apply !== "right"
        ? {
            async onRequest(rctx: RequestContext) {
              const buf = rctx.body.present ? await rctx.body.buffer() : Buffer.alloc(0);
              log("left", rctx, {
                method: rctx.method,
                path: rctx.path,
                query: Object.fromEntries(new URLSearchParams(rctx.search)),
                headers: headers(rctx.req.headers),
                body: body(buf, rctx.body.isJson),
              });
            },
          }
        : {}),
      ...(o.apply !== "left"
        ? {
            async onResponse(rctx: RequestContext) {
              const r = rctx.response!;
              const buf = await readResponseBody(rctx, 64 * 1024 * 1024);
              log("right", rctx, {
                status: r.status,
                headers: headers(r.headers),
                body: body(buf, responseIsJson(rctx)),
              });
            },
          }
        : {}),
    };
  },
};
