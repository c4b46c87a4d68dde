/**
 * `jmix_backend` (Harmony 0.13): proxies the JMIX API (POST /api/jmix, GET /api/jmix/{id},
 * /manifest, ?studyInstanceUid=) to an upstream JMIX server, usually behind an `http` endpoint.
 * The path below the endpoint is sent to the upstream's base (`base_url`, or a `target_ref`
 * target), with `path_prefix` put in front of it, as Harmony did. Everything else — streaming both
 * ways (package zips are large), timeouts, TLS, retries, several targets — is the HTTP upstream's.
 */
import { Type } from "@sinclair/typebox";
import type { BackendPlugin } from "../plugins/types.js";
import { checkHttpUpstream, createHttpUpstream, httpUpstreamProperties } from "./http-upstream.js";

const Options = Type.Object(
  {
    ...httpUpstreamProperties,
    path_prefix: Type.String({
      default: "",
      pattern: "^(/[^?#]*)?$",
      description:
        'Put in front of the path sent upstream (e.g. "/jmix": a request for /api/jmix/{id} below the endpoint goes to {base}/jmix/api/jmix/{id}).',
    }),
  },
  { additionalProperties: false },
);

export const jmixBackend: BackendPlugin<typeof Options> = {
  kind: "backend",
  type: "jmix_backend",
  options: Options,
  check: ({ path_prefix: _p, ...o }, ctx) => checkHttpUpstream({ ...o }, ctx),
  create: ({ path_prefix, ...o }, ctx) => {
    const prefix = path_prefix.replace(/\/+$/, "");
    return createHttpUpstream({ ...o, prefix_rewrite: o.prefix_rewrite || prefix }, ctx, {
      // A middleware that chose the upstream path (metadata_transform) still gets the prefix, as in Harmony.
      upstreamPath: (rctx, path, basePath) =>
        rctx.target.uri !== undefined && prefix ? basePath + prefix + path.slice(basePath.length) : path,
    });
  },
};
