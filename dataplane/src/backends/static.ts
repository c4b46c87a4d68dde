/**
 * `static` backend: answers every request itself with a configured status, headers and body, and
 * calls no upstream. What a Gateway API rule with no valid backend answers (500), and a plain
 * maintenance page or health stub otherwise.
 */
import { STATUS_CODES } from "node:http";
import { Type } from "@sinclair/typebox";
import type { BackendPlugin } from "../plugins/types.js";

const Options = Type.Object(
  {
    status: Type.Integer({ minimum: 100, maximum: 599, description: "The status every request is answered with." }),
    headers: Type.Optional(
      Type.Record(Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" }), Type.String({ pattern: "^[^\\r\\n]*$" }), {
        description: "Response headers (a content-type here wins over the default's).",
      }),
    ),
    body: Type.Optional(
      Type.String({
        maxLength: 1024 * 1024,
        description: "Response body (default: a problem+json body naming the status; none for 1xx, 204 and 304).",
      }),
    ),
  },
  { additionalProperties: false },
);

const FRAMING = new Set([
  "content-length",
  "transfer-encoding",
  "connection",
  "keep-alive",
  "upgrade",
  "trailer",
  "te",
]);
const NO_BODY = (s: number) => s < 200 || s === 204 || s === 304;

export const staticBackend: BackendPlugin<typeof Options> = {
  kind: "backend",
  type: "static",
  options: Options,
  create: (o) => {
    // Framing is ours to set from the body: a configured Content-Length could only contradict it.
    const custom: Record<string, string> = {};
    for (const [k, v] of Object.entries(o.headers ?? {}))
      if (!FRAMING.has(k.toLowerCase())) custom[k.toLowerCase()] = v;
    const title = STATUS_CODES[o.status] ?? "Status " + o.status;
    const fixed = o.body === undefined ? undefined : Buffer.from(o.body, "utf8");
    return {
      handle(ctx) {
        // The default body carries the request id, so it is built per request; a configured one is not.
        const body = NO_BODY(o.status)
          ? Buffer.alloc(0)
          : (fixed ??
            Buffer.from(
              JSON.stringify({
                type: "about:blank",
                title,
                status: o.status,
                detail: `answered by backend "${ctx.route.pipeline.backendName}"`,
                instance: `urn:request:${ctx.id}`,
              }),
            ));
        const headers: Record<string, string> = {
          ...(NO_BODY(o.status) || fixed ? {} : { "content-type": "application/problem+json" }),
          ...custom,
        };
        ctx.response = { status: o.status, headers, body };
        return Promise.resolve();
      },
    };
  },
};
