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
  // The common values name no header: no split, no Set (this runs twice per proxied request).
  if (!v || v === "keep-alive" || v === "close") return undefined;
  const s = Array.isArray(v) ? v.join(",") : v;
  let out: Set<string> | undefined;
  for (const t of s.split(",")) {
    const k = t.trim().toLowerCase();
    if (k && k !== "close" && k !== "keep-alive") (out ??= new Set<string>()).add(k);
  }
  return out;
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

/** RFC 8187 attr-char: what an ext-value may carry unencoded. */
const ATTR_CHAR = /[A-Za-z0-9!#$&+\-.^_`|~]/;

/**
 * A value the gateway puts in a request header (a JWT claim, a mesh identity). Printable ASCII goes
 * as it is; anything else (non-Latin-1 text such as "José 山田", control characters, edge
 * whitespace) cannot go on the wire as is, so it is sent as an RFC 8187 ext-value:
 * `UTF-8''Jos%C3%A9%20%E5%B1%B1%E7%94%B0`. A plain value that happens to start with "UTF-8''" is
 * encoded too, so a receiver can always tell the two apart by that prefix.
 */
export function headerValue(v: string): string {
  if (v === "" || (/^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/.test(v) && !/^utf-8''/i.test(v))) return v;
  let out = "UTF-8''";
  for (const byte of Buffer.from(v, "utf8")) {
    const ch = String.fromCharCode(byte);
    out += byte < 0x80 && ATTR_CHAR.test(ch) ? ch : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}
