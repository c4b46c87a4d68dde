/**
 * `webhook`: tells another service that a request passed, without waiting for it: a POST of
 * `{ middleware, name, side, request: { method, uri, headers, query_params, content_metadata } }`
 * sent in the background with a timeout; failures are logged and never affect the request.
 * Headers in `redact_headers` (and credentials always) are replaced; basic or bearer auth for the
 * webhook itself comes from secrets (inline, file or env).
 */
import { Type, type Static } from "@sinclair/typebox";
import type { BuildContext, MiddlewarePlugin, OptionProblem } from "../plugins/types.js";
import type { RequestContext } from "../pipeline/context.js";
import { readSecret, secretProps } from "../plugins/secret.js";

const Options = Type.Object(
  {
    endpoint: Type.String({ description: "Where to POST (http or https URL)." }),
    apply: Type.Union([Type.Literal("left"), Type.Literal("right"), Type.Literal("both")], { default: "left" }),
    timeout_secs: Type.Number({ minimum: 0.1, default: 5 }),
    redact_headers: Type.Array(Type.String(), { default: [] }),
    redact_metadata: Type.Array(Type.String(), { default: [], description: "Accepted for original configs." }),
    auth_type: Type.Optional(Type.Union([Type.Literal("basic"), Type.Literal("bearer")])),
    username: Type.Optional(Type.String()),
    ...secretProps("password", "Basic auth password for the webhook"),
    ...secretProps("token", "Bearer token for the webhook"),
  },
  { additionalProperties: false },
);
type Options = Static<typeof Options>;

const ALWAYS = ["authorization", "proxy-authorization", "cookie", "x-api-key", "x-harmony-mesh"];

function auth(o: Options, ctx: BuildContext): { header?: string; problems: OptionProblem[] } {
  const problems: OptionProblem[] = [];
  try {
    const u = new URL(o.endpoint);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error();
  } catch {
    problems.push({ path: ["endpoint"], message: "must be an http(s) URL" });
  }
  const raw = o as unknown as Record<string, unknown>;
  if (o.auth_type === "bearer") {
    const t = readSecret(raw, "token", ctx);
    problems.push(...t.problems);
    if (!t.value && !t.problems.length) problems.push({ path: ["token"], message: "is required for bearer auth" });
    return { header: t.value ? `Bearer ${t.value}` : undefined, problems };
  }
  if (o.auth_type === "basic") {
    const p = readSecret(raw, "password", ctx);
    problems.push(...p.problems);
    if (!o.username || p.value === undefined)
      problems.push({ path: ["username"], message: "username and password are required for basic auth" });
    return { header: `Basic ${Buffer.from(`${o.username}:${p.value ?? ""}`).toString("base64")}`, problems };
  }
  return { problems };
}

export const webhook: MiddlewarePlugin<typeof Options> = {
  kind: "middleware",
  type: "webhook",
  options: Options,
  check: (o, ctx) => auth(o, ctx).problems,
  create: (o, ctx) => {
    const { header } = auth(o, ctx);
    const hidden = new Set([...ALWAYS, ...o.redact_headers.map((h) => h.toLowerCase())]);
    const send = (side: "left" | "right", rctx: RequestContext) => {
      const payload = {
        middleware: "webhook",
        name: ctx.name,
        side,
        request: {
          method: rctx.method,
          uri: rctx.path + rctx.search,
          headers: Object.fromEntries(
            Object.entries(rctx.req.headers).map(([k, v]) => [k, hidden.has(k) ? "<redacted>" : v]),
          ),
          query_params: Object.fromEntries(new URLSearchParams(rctx.search)),
          content_metadata: {
            content_type: rctx.req.headers["content-type"] ?? null,
            size: Number(rctx.req.headers["content-length"] ?? 0),
          },
          ...(side === "right" ? { status: rctx.response?.status } : {}),
        },
      };
      // Not awaited: the request does not wait for the webhook, and its failure is not the request's.
      fetch(o.endpoint, {
        method: "POST",
        headers: { "content-type": "application/json", ...(header ? { authorization: header } : {}) },
        body: JSON.stringify(payload),
        signal: AbortSignal.timeout(o.timeout_secs * 1000),
      }).then(
        (r) => {
          if (!r.ok) ctx.logger.warn("webhook answered with an error", { webhook: ctx.name, status: r.status });
          return r.body?.cancel();
        },
        (e: unknown) => ctx.logger.warn("webhook failed", { webhook: ctx.name, error: (e as Error).message }),
      );
    };
    return {
      ...(o.apply !== "right" ? { onRequest: (rctx: RequestContext) => send("left", rctx) } : {}),
      ...(o.apply !== "left" ? { onResponse: (rctx: RequestContext) => send("right", rctx) } : {}),
    };
  },
};
