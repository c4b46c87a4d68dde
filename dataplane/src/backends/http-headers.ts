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

/**
 * What the gateway puts in every upstream request's head besides the client's end-to-end headers.
 * One per backend, filled for each request just before a builder reads it (neither keeps it): the two
 * builders below agree byte for byte (dataplane/test/upstream-head.test.ts).
 */
export interface Added {
  /** Replaces the client's Host (undefined: preserve_host, the client's stays). */
  host: string | undefined;
  xForwardedFor: string;
  xForwardedProto: string;
  /** The Host the gateway saw; undefined: none (a client's X-Forwarded-Host is dropped unless trusted). */
  xForwardedHost: string | undefined;
  /** trust_forwarded: a client's X-Forwarded-Proto/-Host pass unchanged. */
  trust: boolean;
  requestId: string;
  traceparent: string;
  /** A buffered body's length, replacing the client's. */
  contentLength: string | undefined;
  /** A middleware's new content type, replacing the client's. */
  contentType: string | undefined;
}

/** The upstream headers as an object: the client's end-to-end ones, then the gateway's set in place or added. */
export function upstreamHeaderRecord(headers: IncomingHttpHeaders, a: Added): Record<string, string | string[]> {
  const h = endToEnd(headers);
  if (a.host !== undefined) h.host = a.host;
  h["x-forwarded-for"] = a.xForwardedFor;
  if (a.trust) {
    h["x-forwarded-proto"] ??= a.xForwardedProto;
    if (a.xForwardedHost) h["x-forwarded-host"] ??= a.xForwardedHost;
  } else {
    h["x-forwarded-proto"] = a.xForwardedProto;
    if (a.xForwardedHost) h["x-forwarded-host"] = a.xForwardedHost;
    else delete h["x-forwarded-host"];
  }
  h["x-request-id"] = a.requestId;
  h.traceparent = a.traceparent;
  if (a.contentLength !== undefined) h["content-length"] = a.contentLength;
  if (a.contentType !== undefined) h["content-type"] = a.contentType;
  return h;
}

/** Which of the gateway's headers the client's list already held (and so were set in place). */
const SEEN_HOST = 1;
const SEEN_XFF = 2;
const SEEN_PROTO = 4;
const SEEN_XFH = 8;
const SEEN_ID = 16;
const SEEN_TRACE = 32;
const SEEN_LENGTH = 64;
const SEEN_TYPE = 128;

/**
 * The same headers as `upstreamHeaderRecord`, in the same order with the same values, as a flat
 * `[name, value, ...]` list built in one pass over the client's headers: no object copied and then
 * reshaped (a delete turns it into a dictionary), and the serializer walks an array. Both engines
 * take the list (undici's Request and wire.ts read `[k, v, k, v]`); a value may be an array, as in
 * the object.
 */
export function upstreamHeaderList(headers: IncomingHttpHeaders, a: Added): string[] {
  const extra = connectionTokens(headers.connection);
  const out: unknown[] = [];
  let seen = 0;
  for (const k in headers) {
    let v: string | string[] | undefined = headers[k];
    if (v === undefined || HOP_BY_HOP.has(k) || extra?.has(k) || k.charCodeAt(0) === 58) continue;
    switch (k) {
      case "__proto__":
        continue; // the object form's assignment drops it (it sets no own property): so does the list
      case "host":
        seen |= SEEN_HOST;
        if (a.host !== undefined) v = a.host;
        break;
      case "x-forwarded-for":
        seen |= SEEN_XFF;
        v = a.xForwardedFor;
        break;
      case "x-forwarded-proto":
        seen |= SEEN_PROTO;
        if (!a.trust) v = a.xForwardedProto;
        break;
      case "x-forwarded-host":
        seen |= SEEN_XFH;
        if (!a.trust) {
          if (!a.xForwardedHost) continue; // a client's claim, and nothing of ours to put in its place
          v = a.xForwardedHost;
        }
        break;
      case "x-request-id":
        seen |= SEEN_ID;
        v = a.requestId;
        break;
      case "traceparent":
        seen |= SEEN_TRACE;
        v = a.traceparent;
        break;
      case "content-length":
        seen |= SEEN_LENGTH;
        if (a.contentLength !== undefined) v = a.contentLength;
        break;
      case "content-type":
        seen |= SEEN_TYPE;
        if (a.contentType !== undefined) v = a.contentType;
        break;
    }
    out.push(k, v);
  }
  // Those the client did not send follow, in the order upstreamHeaderRecord adds them.
  if (!(seen & SEEN_HOST) && a.host !== undefined) out.push("host", a.host);
  if (!(seen & SEEN_XFF)) out.push("x-forwarded-for", a.xForwardedFor);
  if (!(seen & SEEN_PROTO)) out.push("x-forwarded-proto", a.xForwardedProto);
  if (!(seen & SEEN_XFH) && a.xForwardedHost) out.push("x-forwarded-host", a.xForwardedHost);
  if (!(seen & SEEN_ID)) out.push("x-request-id", a.requestId);
  if (!(seen & SEEN_TRACE)) out.push("traceparent", a.traceparent);
  if (!(seen & SEEN_LENGTH) && a.contentLength !== undefined) out.push("content-length", a.contentLength);
  if (!(seen & SEEN_TYPE) && a.contentType !== undefined) out.push("content-type", a.contentType);
  // string[] is undici's type for the flat form; array values pass through as in the object form.
  return out as string[];
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
