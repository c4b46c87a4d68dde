/**
 * Checks on the request head that Node's parser lets through, done once per request before any
 * routing (a loop over a dozen raw headers at most), and the client's hop-by-hop headers removed
 * before anything of ours adds headers to the request.
 */
import type { IncomingMessage } from "node:http";

/** Why the request head is refused (400), or undefined. */
export function malformedHead(req: IncomingMessage): string | undefined {
  // llhttp parses "GET /" without a version as HTTP/0.9; nginx answers 400, and so do we.
  if (req.httpVersionMajor === 0) return "HTTP/0.9 requests are not supported";
  if (req.httpVersionMajor === 2) {
    // HTTP/2 names the host in :authority; a Host header beside it must agree (RFC 9113 §8.3.1),
    // or routing (which reads Host first) and an upstream reading the other would disagree.
    const authority = req.headers[":authority"];
    const host = req.headers.host;
    if (typeof authority === "string" && host !== undefined && authority.toLowerCase() !== host.toLowerCase())
      return "the Host header is not the :authority";
    return undefined;
  }
  if (req.httpVersionMajor !== 1) return undefined;
  const raw = req.rawHeaders;
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) if (isHost(raw[i]!)) hosts++;
  // Node keeps the first of two Host headers; an upstream or a cache may use the other (RFC 9112 §3.2).
  if (hosts > 1) return "more than one Host header";
  const url = req.url ?? "";
  if (url.charCodeAt(0) !== 47 && url !== "*") {
    // Absolute form ("GET http://a.example/ HTTP/1.1"): its authority must be the Host header's.
    let authority: string;
    try {
      authority = new URL(url).host;
    } catch {
      return "the request target is neither a path nor an absolute URI";
    }
    if (authority !== (req.headers.host ?? "").toLowerCase()) return "the request target's host is not the Host header";
  }
  return undefined;
}

/** The header name Host in any case; the two usual spellings without lower-casing a copy. */
function isHost(name: string): boolean {
  return name.length === 4 && (name === "Host" || name === "host" || name.toLowerCase() === "host");
}

const ONLY_PERSISTENCE = /^\s*(?:keep-alive|close)\s*$/i;

/**
 * Removes the headers the client named in Connection (RFC 9110 §7.6.1), leaving only close /
 * keep-alive there. Done here, before middleware runs, so a client's "Connection: x-user" removes
 * its own x-user and never one the gateway sets later (jwt_auth claims, mesh identity). Framing and
 * routing headers stay: Node has already read the body by them, and Host is our routing input.
 */
export function dropConnectionNamed(headers: IncomingMessage["headers"]): void {
  const c = headers.connection;
  // The common cases, absent or a lone "keep-alive" / "close", name nothing: no split, no rewrite.
  if (c === undefined || c === "keep-alive" || c === "close" || ONLY_PERSISTENCE.test(c)) return;
  const kept: string[] = [];
  for (const t of c.split(",")) {
    const k = t.trim().toLowerCase();
    if (k === "close" || k === "keep-alive") kept.push(k);
    else if (k && k !== "host" && k !== "content-length" && k !== "transfer-encoding") delete headers[k];
  }
  if (kept.length) headers.connection = kept.join(", ");
  else delete headers.connection;
}
