/**
 * `json_extractor` (alias `json`): in the original, parsed the body into the envelope's JSON view.
 * Bodies are parsed on demand here, so what is left is the check: a JSON body that does not parse
 * (or nests beyond content_limits.max_json_depth) is refused with 400 before the backend sees it.
 */
import { Type } from "@sinclair/typebox";
import type { MiddlewarePlugin } from "../plugins/types.js";

const Options = Type.Object({}, { additionalProperties: false });

export const jsonExtractor: MiddlewarePlugin<typeof Options> = {
  kind: "middleware",
  type: "json_extractor",
  aliases: ["json"],
  options: Options,
  create: () => ({
    async onRequest(rctx) {
      await rctx.body.json();
    },
  }),
};
