/**
 * `dicomweb` endpoint: a DICOMweb service root (PS3.18) under `path_prefix`: QIDO-RS and WADO-RS
 * (GET/HEAD), STOW-RS (POST on /studies[/{study}]), WADO-URI (GET /wado?requestType=WADO), UPS-RS
 * workitem search (GET /workitems). Other
 * resources are 404 and other methods 405 here, before any middleware runs; browsers' CORS
 * preflights are answered here too, so a web viewer on another origin can use the gateway.
 */
import { Type } from "@sinclair/typebox";
import type { EndpointPlugin } from "../plugins/types.js";
import type { RequestContext } from "../pipeline/context.js";
import { HttpError } from "../pipeline/errors.js";

const Options = Type.Object(
  {
    path_prefix: Type.String({ minLength: 1, description: "The DICOMweb service root clients use, e.g. /dicomweb." }),
    cors_allow_origins: Type.Array(Type.String(), {
      default: [],
      description: 'Origins allowed to call from a browser ("*" for any); none by default.',
    }),
    cors_max_age_s: Type.Integer({ minimum: 0, default: 600, description: "How long browsers may cache a preflight." }),
    cors_any_origin_when_unset: Type.Boolean({
      default: false,
      description:
        'Harmony\'s behaviour: with no cors_allow_origins, answer every origin with "*". Off by default, so that no browser origin is trusted unless listed.',
    }),
  },
  { additionalProperties: false },
);

const UID = "[0-9.]+";
const READ = [
  // QIDO-RS
  `/studies`,
  `/series`,
  `/instances`,
  `/studies/${UID}/series`,
  `/studies/${UID}/instances`,
  `/studies/${UID}/series/${UID}/instances`,
  // WADO-RS
  `/studies/${UID}`,
  `/studies/${UID}/(metadata|rendered|thumbnail)`,
  `/studies/${UID}/series/${UID}`,
  `/studies/${UID}/series/${UID}/(metadata|rendered|thumbnail)`,
  `/studies/${UID}/series/${UID}/instances/${UID}`,
  `/studies/${UID}/series/${UID}/instances/${UID}/(metadata|rendered|thumbnail)`,
  `/studies/${UID}/series/${UID}/instances/${UID}/frames/[0-9]+(,[0-9]+)*(/(rendered|thumbnail))?`,
  `/studies/${UID}/series/${UID}/instances/${UID}/bulk(data)?(/.*)?`,
  `/bulk(data)?/.+`,
  // WADO-URI
  `/wado`,
  // UPS-RS workitem search (a DIMSE backend answers it from its Modality Worklist)
  `/workitems`,
];
const STORE = [`/studies`, `/studies/${UID}`];
const readPaths = new RegExp(`^(?:${READ.join("|")})/?$`);
const storePaths = new RegExp(`^(?:${STORE.join("|")})/?$`);
const ALLOWED_HEADERS = "accept, content-type, authorization, x-request-id";

export const dicomwebEndpoint: EndpointPlugin<typeof Options> = {
  kind: "endpoint",
  type: "dicomweb",
  options: Options,
  create: (o) => {
    const origins = new Set(
      o.cors_allow_origins.length === 0 && o.cors_any_origin_when_unset ? ["*"] : o.cors_allow_origins,
    );
    const allowOrigin = (origin: string | undefined) =>
      origin && (origins.has("*") || origins.has(origin)) ? (origins.has("*") ? "*" : origin) : undefined;
    const allowFor = (p: string) => [
      ...(readPaths.test(p) ? ["GET", "HEAD"] : []),
      ...(storePaths.test(p) ? ["POST"] : []),
      "OPTIONS",
    ];

    function onRequest(ctx: RequestContext): void {
      const p = ctx.subpath;
      const allow = allowFor(p);
      if (allow.length === 1) throw new HttpError(404, `${p} is not a DICOMweb resource`);
      const origin = allowOrigin(ctx.req.headers.origin);
      if (origin) {
        ctx.res.setHeader("access-control-allow-origin", origin);
        ctx.res.setHeader(
          "access-control-expose-headers",
          "content-type, content-length, location, warning, x-request-id",
        );
        if (origin !== "*") ctx.res.setHeader("vary", "origin");
      }
      if (ctx.method === "OPTIONS") {
        const headers: Record<string, string> = {
          allow: allow.join(", "),
          "content-length": "0",
          "x-request-id": ctx.id,
        };
        if (origin && ctx.req.headers["access-control-request-method"]) {
          headers["access-control-allow-methods"] = allow.join(", ");
          headers["access-control-allow-headers"] = ALLOWED_HEADERS;
          headers["access-control-max-age"] = String(o.cors_max_age_s);
        }
        ctx.response = { status: 204, headers, body: null };
        return;
      }
      if (!allow.includes(ctx.method)) {
        throw new HttpError(405, `${ctx.method} is not allowed on ${p}`, { headers: { allow: allow.join(", ") } });
      }
      if (ctx.method === "POST") {
        const ct = ctx.req.headers["content-type"] ?? "";
        if (!/^multipart\/related\b/i.test(ct) && !/^application\/dicom\b/i.test(ct)) {
          throw new HttpError(415, `STOW-RS takes multipart/related (or application/dicom), not "${ct || "(none)"}"`);
        }
      }
    }

    return { routes: [{ prefix: o.path_prefix, methods: "*" }], onRequest };
  },
};
