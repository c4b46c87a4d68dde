/**
 * `dicomweb` backend: a DICOMweb origin server (Orthanc, dcm4chee, a cloud PACS). Multipart
 * bodies (WADO-RS retrieves, STOW-RS uploads) stream through untouched in both directions; only
 * DICOM JSON (QIDO results, metadata, STOW responses) is rewritten, so that `RetrieveURL`
 * (0008,1190), `BulkDataURI` and Location point at the gateway instead of the server behind it.
 */
import { Type } from "@sinclair/typebox";
import type { BackendPlugin } from "../plugins/types.js";
import { checkHttpUpstream, createHttpUpstream, httpUpstreamProperties } from "./http-upstream.js";
import { rewriteUrlHeader, urlRewriteStream } from "./url-rewrite.js";

const Options = Type.Object(
  {
    ...httpUpstreamProperties,
    rewrite_urls: Type.Boolean({
      default: true,
      description: "Rewrite the server's absolute URLs in DICOM JSON and Location to the gateway's.",
    }),
    upstream_base_urls: Type.Optional(
      Type.Array(Type.String(), {
        description: "Other bases the server writes into its URLs (e.g. its configured public host).",
      }),
    ),
    wado_uri_path: Type.Optional(
      Type.String({
        pattern: "^/",
        description: "Path of the server's WADO-URI service on the same origin (Orthanc: /wado); default <base>/wado.",
      }),
    ),
  },
  { additionalProperties: false },
);

const DICOM_JSON = /^application\/(dicom\+)?json\b/i;

export const dicomwebBackend: BackendPlugin<typeof Options> = {
  kind: "backend",
  type: "dicomweb",
  options: Options,
  check: checkHttpUpstream,
  create: (o, ctx) => {
    const others = o.upstream_base_urls ?? [];
    return createHttpUpstream(o, ctx, {
      upstreamPath(rctx, path) {
        if (o.wado_uri_path && rctx.subpath.replace(/\/$/, "") === "/wado") return o.wado_uri_path + rctx.search;
        return path;
      },
      requestHeaders(h) {
        if (o.rewrite_urls) delete h["accept-encoding"]; // DICOM JSON is rewritten as bytes: ask for them uncompressed
      },
      response(_status, headers, _rctx, bases) {
        if (!o.rewrite_urls) return undefined;
        const from = [bases.upstream, ...others];
        rewriteUrlHeader(headers, "location", from, bases.public);
        rewriteUrlHeader(headers, "content-location", from, bases.public);
        const ct = headers["content-type"];
        return typeof ct === "string" && DICOM_JSON.test(ct) ? urlRewriteStream("json", from, bases.public) : undefined;
      },
    });
  },
};
