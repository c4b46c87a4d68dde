/** `echo` backend: answers with a JSON description of the request it would have forwarded. */
import { Type } from "@sinclair/typebox";
import type { BackendPlugin } from "../plugins/types.js";
import { jsonResponse } from "../pipeline/json-response.js";

const Options = Type.Object(
  { path_prefix: Type.Optional(Type.String({ description: "Accepted for compatibility; unused." })) },
  { additionalProperties: false },
);

export const echoBackend: BackendPlugin<typeof Options> = {
  kind: "backend",
  type: "echo",
  options: Options,
  create: () => ({
    async handle(ctx) {
      const json = await ctx.body.json();
      const raw = ctx.body.present || ctx.body.isBuffered ? await ctx.body.buffer() : Buffer.alloc(0);
      const query: Record<string, string[]> = {};
      for (const [k, v] of new URLSearchParams(ctx.search)) (query[k] ??= []).push(v);
      const text = raw.toString("utf8");
      const isText = Buffer.from(text, "utf8").equals(raw);
      ctx.response = jsonResponse(200, {
        method: ctx.method,
        path: ctx.subpath,
        full_path: ctx.path + ctx.search,
        query,
        headers: ctx.req.headers,
        ...(raw.length === 0 ? {} : isText ? { body: text } : { body_base64: raw.toString("base64") }),
        ...(json === undefined ? {} : { json }),
        request_id: ctx.id,
      });
    },
  }),
};
