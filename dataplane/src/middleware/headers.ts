/**
 * `headers` middleware: Gateway API RequestHeaderModifier and ResponseHeaderModifier. `set`
 * overwrites, `add` appends to an existing value (comma-joined), `remove` drops; applied in that
 * order, names case-insensitive. Headers that frame the message or steer the connection cannot be
 * touched (refused at load): letting config, or a client's request shaped by it, rewrite them would
 * reopen request smuggling. A client's own `Connection: x-a` cannot remove a header set here either:
 * the gateway drops the headers a client names in Connection before any middleware runs.
 */
import { Type, type Static } from "@sinclair/typebox";
import type { OutgoingHttpHeaders } from "node:http";
import type { MiddlewarePlugin, OptionProblem } from "../plugins/types.js";
import type { RequestContext } from "../pipeline/context.js";

const NAME = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";
const VALUE = "^[^\\r\\n\\u0000]*$";

const Modifier = (description: string) =>
  Type.Object(
    {
      set: Type.Optional(
        Type.Record(Type.String({ pattern: NAME }), Type.String({ pattern: VALUE }), {
          description: "Headers set, replacing any value.",
        }),
      ),
      add: Type.Optional(
        Type.Record(Type.String({ pattern: NAME }), Type.String({ pattern: VALUE }), {
          description: 'Headers added; appended to an existing value as "old,new".',
        }),
      ),
      remove: Type.Optional(Type.Array(Type.String({ pattern: NAME }), { description: "Headers removed (any case)." })),
    },
    { additionalProperties: false, description },
  );

const Options = Type.Object(
  {
    request: Type.Optional(Modifier("Changes to the request sent upstream (RequestHeaderModifier).")),
    response: Type.Optional(Modifier("Changes to the response sent to the client (ResponseHeaderModifier).")),
  },
  { additionalProperties: false },
);
type Options = Static<typeof Options>;
type Mod = NonNullable<Options["request"]>;

/** Hop-by-hop and framing headers, and Host (the backend's preserve_host decides it). */
const UNTOUCHABLE = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "content-length",
  "host",
]);

function check(o: Options): OptionProblem[] {
  const problems: OptionProblem[] = [];
  for (const side of ["request", "response"] as const) {
    const m = o[side];
    if (!m) continue;
    for (const op of ["set", "add"] as const)
      for (const k of Object.keys(m[op] ?? {}))
        if (UNTOUCHABLE.has(k.toLowerCase()))
          problems.push({ path: [side, op, k], message: "frames the message or the connection; it cannot be changed" });
    (m.remove ?? []).forEach((k, i) => {
      if (UNTOUCHABLE.has(k.toLowerCase()))
        problems.push({
          path: [side, "remove", i],
          message: "frames the message or the connection; it cannot be changed",
        });
    });
  }
  return problems;
}

interface Compiled {
  set: [string, string][];
  add: [string, string][];
  remove: string[];
}

const compile = (m: Mod | undefined): Compiled | undefined =>
  m && {
    set: Object.entries(m.set ?? {}).map(([k, v]) => [k.toLowerCase(), v]),
    add: Object.entries(m.add ?? {}).map(([k, v]) => [k.toLowerCase(), v]),
    remove: (m.remove ?? []).map((k) => k.toLowerCase()),
  };

/** Request side: through `ctx.target.headers`, which HTTP backends apply last ("" removes). */
function modifyRequest(c: Compiled, ctx: RequestContext): void {
  const t = (ctx.target.headers ??= {});
  for (const [k, v] of c.set) t[k] = v;
  for (const [k, v] of c.add) {
    const old = ctx.header(k);
    t[k] = old === undefined ? v : `${old},${v}`;
  }
  for (const k of c.remove) t[k] = "";
}

function modifyResponse(c: Compiled, headers: OutgoingHttpHeaders): void {
  for (const [k, v] of c.set) headers[k] = v;
  for (const [k, v] of c.add) {
    const old = headers[k];
    headers[k] = old === undefined ? v : Array.isArray(old) ? [...old, v] : `${String(old)},${v}`;
  }
  for (const k of c.remove) delete headers[k];
}

export const headersMiddleware: MiddlewarePlugin<typeof Options> = {
  kind: "middleware",
  type: "headers",
  options: Options,
  check,
  create: (o) => {
    const req = compile(o.request);
    const res = compile(o.response);
    return {
      ...(req && { onRequest: (ctx: RequestContext) => modifyRequest(req, ctx) }),
      ...(res && {
        onResponse: (ctx: RequestContext) => {
          if (ctx.response) modifyResponse(res, ctx.response.headers);
        },
      }),
    };
  },
};
