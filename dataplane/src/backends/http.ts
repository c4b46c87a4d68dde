/** `http` backend: a plain HTTP upstream, bodies streamed both ways and left as they are. */
import type { BackendPlugin } from "../plugins/types.js";
import { HttpUpstreamOptions, checkHttpUpstream, createHttpUpstream } from "./http-upstream.js";

export const httpBackend: BackendPlugin<typeof HttpUpstreamOptions> = {
  kind: "backend",
  type: "http",
  options: HttpUpstreamOptions,
  check: checkHttpUpstream,
  create: (o, ctx) => createHttpUpstream(o, ctx),
};
