/**
 * `redirect` backend: answers with a redirect built from the request, Gateway API
 * RequestRedirect semantics. Each field left out keeps the request's own: scheme, hostname (the
 * Host header's, without port), port (the Host header's when neither scheme nor port is set, else
 * the scheme's well-known one), path. The port is left out of Location when it is the scheme's
 * default. `path.type = "prefix"` replaces the prefix the endpoint matched (ReplacePrefixMatch).
 */
import { Type } from "@sinclair/typebox";
import type { BackendPlugin } from "../plugins/types.js";
import type { RequestContext } from "../pipeline/context.js";
import { HttpError, problemType } from "../pipeline/errors.js";

const Options = Type.Object(
  {
    scheme: Type.Optional(
      Type.String({
        pattern: "^[A-Za-z][A-Za-z0-9+.-]*$",
        description: "Scheme of Location (default: the request's).",
      }),
    ),
    hostname: Type.Optional(
      Type.String({
        pattern: "^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$|^\\[[0-9A-Fa-f:.]+\\]$",
        description: "Host of Location (default: the request's Host, without its port).",
      }),
    ),
    port: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 65535,
        description:
          "Port of Location (default: the Host header's when scheme is not set either, else the scheme's); left out when it is the scheme's default.",
      }),
    ),
    path: Type.Optional(
      Type.Object(
        {
          type: Type.Union([Type.Literal("full"), Type.Literal("prefix")], {
            description: "full: replace the whole path. prefix: replace the path prefix the endpoint matched.",
          }),
          value: Type.String({ pattern: "^/", description: "The new path or prefix." }),
        },
        { additionalProperties: false },
      ),
    ),
    status_code: Type.Union(
      [301, 302, 303, 307, 308].map((c) => Type.Literal(c)),
      {
        default: 302,
        description: "Redirect status: 301, 302 (default), 303, 307 or 308.",
      },
    ),
  },
  { additionalProperties: false },
);

const HOST = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$|^\[[0-9a-f:.]+\]$/;
const WELL_KNOWN: Record<string, number> = { http: 80, https: 443 };

/** Host and port of the Host header (port undefined when absent). */
function splitHost(raw: string): { host: string; port: number | undefined } {
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(raw);
  if (!m) return { host: raw, port: undefined };
  return { host: m[1]!, port: m[2] === undefined ? undefined : Number(m[2]) };
}

/** Gateway API ReplacePrefixMatch: `/foo` → `/xyz` turns `/foo/bar` into `/xyz/bar`, with `/` into `/bar`. */
export function replacePrefix(path: string, matched: string, value: string): string {
  const rest = matched === "/" ? path : path.slice(matched.length);
  const base = value.endsWith("/") && (rest.startsWith("/") || rest === "") ? value.slice(0, -1) : value;
  const out = rest === "" || rest.startsWith("/") || base.endsWith("/") ? base + rest : base + "/" + rest;
  return out === "" ? "/" : out;
}

export const redirectBackend: BackendPlugin<typeof Options> = {
  kind: "backend",
  type: "redirect",
  options: Options,
  create: (o) => ({
    handle(ctx: RequestContext) {
      const requestScheme = ctx.secure ? "https" : "http";
      const scheme = (o.scheme ?? requestScheme).toLowerCase();
      const given = splitHost(ctx.req.headers.host ?? (ctx.req.headers[":authority"] as string | undefined) ?? "");
      const host = (o.hostname ?? given.host).toLowerCase();
      // The Host is the client's to write: only a plain name or address may go into Location.
      if (!HOST.test(host))
        throw new HttpError(400, "the request has no usable Host header to redirect with", {
          type: problemType("bad-host"),
        });
      const port = o.port ?? (o.scheme === undefined ? (given.port ?? WELL_KNOWN[scheme]) : WELL_KNOWN[scheme]);
      const showPort = port !== undefined && port !== WELL_KNOWN[scheme];
      const path =
        o.path === undefined
          ? ctx.path
          : o.path.type === "full"
            ? o.path.value
            : replacePrefix(ctx.path, ctx.route.prefix, o.path.value);
      const location = `${scheme}://${host}${showPort ? `:${port}` : ""}${path}${ctx.search}`;
      ctx.response = { status: o.status_code, headers: { location }, body: Buffer.alloc(0) };
      return Promise.resolve();
    },
  }),
};
