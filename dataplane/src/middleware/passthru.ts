/**
 * `passthru`: does nothing, on purpose. The original marked JSON bodies with `mw_left`/`mw_right`;
 * those markers leaked into client responses, so this one leaves the bytes alone.
 */
import { Type } from "@sinclair/typebox";
import type { MiddlewarePlugin } from "../plugins/types.js";

const Options = Type.Object({}, { additionalProperties: false });

export const passthru: MiddlewarePlugin<typeof Options> = {
  kind: "middleware",
  type: "passthru",
  options: Options,
  create: () => ({}),
};
