/**
 * `transform`: a JOLT chain (transform/jolt.ts) over JSON bodies: the request body the backend
 * will get (left), the response body the client will get (right), or both. The spec is read and
 * checked when the config loads, so a missing or broken spec is a config error, never a 500.
 * With `inject_context`, the spec sees `{ data, context }` (method, uri, query, headers; the
 * status on the way back) and its `data` output is the new body.
 */
import { Type, type Static } from "@sinclair/typebox";
import type { MiddlewarePlugin } from "../plugins/types.js";
import type { RequestContext } from "../pipeline/context.js";
import { HttpError, problemType } from "../pipeline/errors.js";
import { readResponseJson, replaceResponseJson } from "../pipeline/response-body.js";
import { chainr } from "../transform/jolt-chain.js";
import type { Json } from "../transform/jolt.js";
import { loadSpec } from "../transform/spec-file.js";
import { parseBody } from "../pipeline/body-parse.js";

const Options = Type.Object(
  {
    spec_path: Type.String({
      minLength: 1,
      description: "JOLT spec (JSON list of { operation, spec }), relative to transforms_path.",
    }),
    apply: Type.Union([Type.Literal("left"), Type.Literal("right"), Type.Literal("both")], {
      default: "both",
      description: "left: request body; right: response body (the original's default is both).",
    }),
    fail_on_error: Type.Boolean({
      default: true,
      description: "A failing transform fails the request (500) instead of passing the body on.",
    }),
    inject_context: Type.Boolean({ default: false }),
    max_bytes: Type.Integer({
      minimum: 1,
      default: 16 * 1024 * 1024,
      description: "Largest response body transformed.",
    }),
    debug: Type.Optional(Type.Boolean({ description: "Accepted for original configs." })),
  },
  { additionalProperties: false },
);
type Options = Static<typeof Options>;

export const transform: MiddlewarePlugin<typeof Options> = {
  kind: "middleware",
  type: "transform",
  aliases: ["jolt"],
  options: Options,
  check: (o, ctx) => loadSpec(o, ctx).problems,
  create: (o, ctx) => {
    const { chain } = loadSpec(o, ctx);
    if (!chain) throw new Error("spec unavailable");
    const run = (rctx: RequestContext, data: Json, context: object): Json | undefined => {
      try {
        const input = o.inject_context ? { data, context } : data;
        const output = chainr(input as Json, chain);
        if (!o.inject_context) return output;
        const obj = output as { data?: Json } | null;
        return obj && typeof obj === "object" && "data" in obj ? (obj.data ?? null) : output;
      } catch (e) {
        ctx.logger.warn("transform failed", { request_id: rctx.id, spec: o.spec_path, error: (e as Error).message });
        if (o.fail_on_error)
          throw new HttpError(500, "the configured transform failed on this body", {
            type: problemType("transform-failed"),
          });
        return undefined;
      }
    };
    const requestContext = (rctx: RequestContext) => ({
      request_details: {
        method: rctx.method,
        uri: rctx.path + rctx.search,
        query_params: Object.fromEntries(new URLSearchParams(rctx.search)),
        headers: rctx.req.headers,
      },
    });
    return {
      ...(o.apply !== "right"
        ? {
            async onRequest(rctx: RequestContext) {
              // JSON as it is; XML, form, CSV and multipart read as data first (bounded by content_limits).
              const parsed = await parseBody(rctx.body, rctx.parseLimits);
              if (!parsed || parsed.format === "binary") return;
              const body = parsed.value as Json;
              const out = run(rctx, body, requestContext(rctx));
              if (out !== undefined) rctx.body.replaceJson(out);
            },
          }
        : {}),
      ...(o.apply !== "left"
        ? {
            async onResponse(rctx: RequestContext) {
              const body = (await readResponseJson(rctx, o.max_bytes)) as Json | undefined;
              if (body === undefined) return;
              const out = run(rctx, body, {
                ...requestContext(rctx),
                response_details: { status: rctx.response!.status, headers: rctx.response!.headers },
              });
              if (out !== undefined) replaceResponseJson(rctx, out);
            },
          }
        : {}),
    };
  },
};
