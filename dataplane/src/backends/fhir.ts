/**
 * `fhir` backend: a FHIR REST server upstream. Everything an HTTP upstream does, plus: absolute
 * URLs the server writes (Location, Content-Location, Bundle `link[].url`, `entry[].fullUrl`,
 * references) are moved from the server's base to the gateway's, so paging and follow-up requests
 * go through the gateway; and absolute gateway URLs in request bodies are moved back. Response
 * bodies (JSON and XML) are rewritten as they stream through: a large Bundle is not held whole.
 */
import { Type } from "@sinclair/typebox";
import type { BackendPlugin } from "../plugins/types.js";
import { checkHttpUpstream, createHttpUpstream, httpUpstreamProperties } from "./http-upstream.js";
import { rewriteUrlHeader, urlRewriter, urlRewriteStream, type RewriteSyntax } from "./url-rewrite.js";

const Options = Type.Object(
  {
    ...httpUpstreamProperties,
    rewrite_urls: Type.Boolean({
      default: true,
      description:
        "Rewrite absolute URLs between the server's base and the gateway's (headers, JSON and XML bodies, streamed).",
    }),
    upstream_base_urls: Type.Optional(
      Type.Array(Type.String(), {
        description: "Other bases the server writes into its URLs (when it does not use base_url).",
      }),
    ),
  },
  { additionalProperties: false },
);

const JSON_BODY = /^application\/(fhir\+)?json\b/i;
const XML_BODY = /^(application\/(fhir\+)?xml|text\/xml)\b/i;

/** Which syntax a response body's URLs are written in, by its media type; undefined: not rewritten. */
function syntaxOf(contentType: unknown): RewriteSyntax | undefined {
  if (typeof contentType !== "string") return undefined;
  if (JSON_BODY.test(contentType)) return "json";
  if (XML_BODY.test(contentType)) return "xml";
  return undefined;
}

export const fhirBackend: BackendPlugin<typeof Options> = {
  kind: "backend",
  type: "fhir",
  options: Options,
  check: checkHttpUpstream,
  create: (o, ctx) => {
    const others = o.upstream_base_urls ?? [];
    return createHttpUpstream(o, ctx, {
      requestHeaders(h) {
        h.accept ??= "application/fhir+json";
        // Bodies are rewritten as bytes, so ask for them uncompressed (a compressed one is decoded).
        if (o.rewrite_urls) delete h["accept-encoding"];
      },
      async beforeSend(rctx, bases) {
        if (!o.rewrite_urls || !rctx.body.present) return;
        const syntax = rctx.body.isJson ? "json" : syntaxOf(rctx.body.contentType);
        if (!syntax) return;
        // Request bodies are held anyway (bounded by max_body_size) to be rewritten whole.
        const body = await rctx.body.buffer();
        const out = urlRewriter(syntax, [bases.public], bases.upstream)(body);
        if (out !== body) rctx.body.replace(out);
      },
      response(_status, headers, _rctx, bases) {
        if (!o.rewrite_urls) return undefined;
        const from = [bases.upstream, ...others];
        rewriteUrlHeader(headers, "location", from, bases.public);
        rewriteUrlHeader(headers, "content-location", from, bases.public);
        const syntax = syntaxOf(headers["content-type"]);
        return syntax && urlRewriteStream(syntax, from, bases.public);
      },
    });
  },
};
