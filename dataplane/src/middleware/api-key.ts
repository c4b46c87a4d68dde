/**
 * `api_key`: a key in a header (default `x-api-key`) or a query parameter. Keys are configured as
 * SHA-256 digests (`sha256:<hex>`, what should go in config) or plain (hashed at load); a presented
 * key is hashed and compared with timingSafeEqual against every configured digest, so neither
 * timing nor the key list's order tells anything. The key is removed before the request goes on.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { Type, type Static } from "@sinclair/typebox";
import type { BuildContext, MiddlewarePlugin, OptionProblem } from "../plugins/types.js";
import { HttpError, problemType } from "../pipeline/errors.js";

const Options = Type.Object(
  {
    keys: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), { description: 'Keys: "sha256:<hex>" digests or plain.' }),
    ),
    keys_file: Type.Optional(Type.String({ description: "A file with one key (or sha256:<hex> digest) per line." })),
    header: Type.Optional(Type.String({ description: "Header carrying the key (default x-api-key)." })),
    query_param: Type.Optional(Type.String({ description: "Query parameter carrying the key instead." })),
  },
  { additionalProperties: false },
);
type Options = Static<typeof Options>;

const digest = (s: string) => createHash("sha256").update(s).digest();

function digests(o: Options, ctx: BuildContext): { list: Buffer[]; problems: OptionProblem[] } {
  const problems: OptionProblem[] = [];
  const entries: { v: string; path: (string | number)[] }[] = (o.keys ?? []).map((v, i) => ({ v, path: ["keys", i] }));
  if (o.keys_file) {
    try {
      for (const line of ctx.readFile(o.keys_file).toString("utf8").split(/\r?\n/))
        if (line.trim() && !line.startsWith("#")) entries.push({ v: line.trim(), path: ["keys_file"] });
    } catch (e) {
      problems.push({
        path: ["keys_file"],
        message: `cannot read ${o.keys_file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
      });
    }
  }
  const list: Buffer[] = [];
  for (const { v, path } of entries) {
    if (v.startsWith("sha256:")) {
      if (!/^sha256:[0-9a-f]{64}$/i.test(v)) problems.push({ path, message: "a sha256: digest is 64 hex digits" });
      else list.push(Buffer.from(v.slice(7), "hex"));
    } else list.push(digest(v));
  }
  if (list.length === 0 && problems.length === 0) problems.push({ path: ["keys"], message: "no keys configured" });
  if (o.header && o.query_param)
    problems.push({ path: ["query_param"], message: "give header or query_param, not both" });
  return { list, problems };
}

export const apiKey: MiddlewarePlugin<typeof Options> = {
  kind: "middleware",
  type: "api_key",
  aliases: ["apikey", "api-key"],
  options: Options,
  check: (o, ctx) => digests(o, ctx).problems,
  create: (o, ctx) => {
    const { list } = digests(o, ctx);
    const header = (o.header ?? "x-api-key").toLowerCase();
    const deny = (detail: string) =>
      new HttpError(401, detail, {
        type: problemType("unauthorized"),
        headers: { "www-authenticate": `ApiKey ${o.query_param ? `param="${o.query_param}"` : `header="${header}"`}` },
      });
    return {
      onRequest(rctx) {
        let presented: string | undefined;
        if (o.query_param) {
          const q = new URLSearchParams(rctx.search);
          presented = q.get(o.query_param) ?? undefined;
          q.delete(o.query_param);
          const rest = q.toString();
          rctx.search = rest ? `?${rest}` : "";
        } else {
          const v = rctx.req.headers[header];
          presented = Array.isArray(v) ? v[0] : v;
          delete rctx.req.headers[header];
        }
        if (!presented) throw deny("an API key is required");
        const d = digest(presented);
        let ok = false;
        for (const k of list) ok = timingSafeEqual(k, d) || ok; // no early exit
        if (!ok) throw deny("the API key is not valid");
      },
    };
  },
};
