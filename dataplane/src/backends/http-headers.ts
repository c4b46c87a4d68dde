/** Header rules for proxying (RFC 9110 §7.6.1): what must not cross a hop, what we add. */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  // Node's server already answered any 100-continue; forwarding it would make undici refuse the request.
  "expect",
]);

function connectionTokens(v: string | string[] | undefined): Set<string> | undefined {
  if (!v) return undefined;
  const s = Array.isArray(v) ? v.join(",") : v;
  const out = new Set<string>();
  for (const t of s.split(",")) {
    const k = t.trim().toLowerCase();
    if (k && k !== "close" && k !== "keep-alive") out.add(k);
  }
  return out.size ? out : undefined;
}

/** Copies end-to-end headers only (drops hop-by-hop ones and anything named in Connection). */
export function endToEnd(
  headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>,
): Record<string, string | string[]> {
  const extra = connectionTokens(headers.connection);
  const out: Record<string, string | string[]> = {};
  for (const k in headers) {
    const v = headers[k];
    // HTTP/2 pseudo-headers (:authority, :path...) describe this hop's request line, not a header.
    if (v === undefined || HOP_BY_HOP.has(k) || extra?.has(k) || k.charCodeAt(0) === 58) continue;
    out[k] = v;
  }
  return out;
}

/** Response headers from upstream, ready for the client. */
export function responseHeaders(
  upstream: Record<string, string | string[] | undefined>,
  requestId: string,
): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = endToEnd(upstream);
  out["x-request-id"] = requestId;
  return out;
}
