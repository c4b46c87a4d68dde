/**
 * The request side of the wire: checks a dispatch's method, path and headers the way undici does
 * (same error classes, so the backend classifies them alike) and writes the request head.
 * Header order follows undici's: host, connection, the caller's headers, then the framing header.
 */
import type { Readable } from "node:stream";
import { errors } from "undici";
import type { Dispatcher } from "undici";

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A header value may not carry CR, LF, NUL or other controls (response splitting). */
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const BAD_PATH = /[^\u0021-\u00ff]/;
/** Methods whose requests carry a body by definition: an empty one is sent as content-length: 0. */
const EXPECTS_PAYLOAD = new Set(["PUT", "POST", "PATCH", "QUERY", "PROPFIND", "PROPPATCH"]);

export interface Outgoing {
  method: string;
  /** The head; without the framing header and the blank line unless `framed`: `frame()` completes it. */
  head: string;
  /** `head` is complete (the body is a Buffer or none: its length was known at `serialize`). */
  framed: boolean;
  body: Buffer | Readable | null;
  /** Bytes the body has (content-length sent); null: sent chunked (a stream of unknown length). */
  length: number | null;
}

function isStream(b: unknown): b is Readable {
  return typeof (b as Readable | null)?.on === "function" && typeof (b as Readable).pipe === "function";
}

function value(key: string, v: unknown): string {
  const s = typeof v === "string" ? v : String(v);
  if (BAD_VALUE.test(s)) throw new errors.InvalidArgumentError(`invalid ${key.toLowerCase()} header`);
  return s;
}

/**
 * What a header name is to the serializer: HOST or CONTENT_LENGTH (noted, not written), or the
 * start of its line, `name: ` (a new string per line otherwise).
 */
const HOST = "\0host";
const CONTENT_LENGTH = "\0content-length";
/**
 * Names seen before and found valid, with what they are: a request's dozen names are checked
 * against the token grammar and lower-cased once per process, not once per request. Refused names
 * are not kept (they throw each time), and the map stops growing at KNOWN_MAX names.
 */
const known = new Map<string, string>();
const KNOWN_MAX = 1024;

function kindOf(name: string): string {
  const kind = known.get(name);
  if (kind !== undefined) return kind;
  if (!TOKEN.test(name)) throw new errors.InvalidArgumentError("invalid header key");
  const key = name.toLowerCase();
  if (key === "transfer-encoding" || key === "keep-alive" || key === "upgrade" || key === "connection")
    throw new errors.InvalidArgumentError(`invalid ${key} header`);
  if (key === "expect") throw new errors.NotSupportedError("expect header not supported");
  const k = key === "host" ? HOST : key === "content-length" ? CONTENT_LENGTH : `${name}: `;
  if (known.size < KNOWN_MAX) known.set(name, k);
  return k;
}

/** The host and content-length fields of the headers `lines` last read (one caller at a time). */
let seenHost: string | undefined;
let declared: number | null;

/** The head's lines for one header (a repeated one is several lines); host and content-length are noted, not written. */
function lines(name: string, v: unknown): string {
  if (v === undefined) return "";
  const kind = kindOf(name);
  if (kind !== HOST && kind !== CONTENT_LENGTH) {
    if (!Array.isArray(v)) return kind + value(name, v) + "\r\n";
    let out = "";
    for (const x of v) out += kind + value(name, x) + "\r\n";
    return out;
  }
  if (kind === HOST) seenHost = value("host", Array.isArray(v) ? v[0] : v);
  else {
    declared = typeof v === "number" ? v : parseInt(typeof v === "string" ? v : "", 10);
    if (!Number.isFinite(declared)) throw new errors.InvalidArgumentError("invalid content-length header");
  }
  return "";
}

export function serialize(opts: Dispatcher.DispatchOptions, defaultHost: string): Outgoing {
  const method = opts.method;
  if (typeof method !== "string" || !TOKEN.test(method))
    throw new errors.InvalidArgumentError("invalid request method");
  if (method === "CONNECT") throw new errors.InvalidArgumentError("invalid request method");
  const path = opts.path;
  if (typeof path !== "string" || path[0] !== "/" || BAD_PATH.test(path))
    throw new errors.InvalidArgumentError("invalid request path");
  if (opts.upgrade) throw new errors.NotSupportedError("upgrade is not supported");

  seenHost = undefined;
  declared = null;
  let head = "";
  const h = opts.headers as unknown;
  if (Array.isArray(h)) for (let i = 0; i < h.length; i += 2) head += lines(String(h[i]), h[i + 1]);
  else if (h && typeof h === "object") {
    const o = h as Record<string, unknown>;
    for (const k in o) head += lines(k, o[k]);
  }
  const host = seenHost ?? defaultHost;
  const length0 = declared;

  let body: Buffer | Readable | null;
  const b = opts.body as unknown;
  if (b === null || b === undefined) body = null;
  else if (typeof b === "string") body = Buffer.from(b);
  else if (Buffer.isBuffer(b)) body = b;
  else if (b instanceof Uint8Array) body = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  else if (isStream(b)) body = b;
  else throw new errors.InvalidArgumentError("body must be a string, a Buffer or a Readable");

  let length: number | null;
  if (body === null || Buffer.isBuffer(body)) {
    length = body?.length ?? 0;
    if (length0 !== null && length0 > 0 && length0 !== length) throw new errors.RequestContentLengthMismatchError();
    if (length === 0 && !EXPECTS_PAYLOAD.has(method)) length = null; // no body, none expected: no header
    if (length === 0) body = null;
  } else length = length0;

  // HEAD answers are closed after, as undici does: a server that sends a body anyway cannot desync us.
  const connection = method === "HEAD" ? "close" : "keep-alive";
  const start = `${method} ${path} HTTP/1.1\r\nhost: ${host}\r\nconnection: ${connection}\r\n`;
  // No stream: the framing is known now, and the head is written whole here (one string less).
  if (body === null || Buffer.isBuffer(body))
    return { method, head: start + head + framing(length, body), body, length, framed: true };
  return { method, head: start + head, body, length, framed: false };
}

function framing(length: number | null, body: Outgoing["body"]): string {
  if (length !== null) return `content-length: ${length}\r\n\r\n`;
  return body === null ? "\r\n" : "transfer-encoding: chunked\r\n\r\n";
}

/**
 * The framing header and the end of the head. As undici: a stream of unknown length that has
 * already arrived whole by the time it is sent goes with its length, not chunked.
 */
export function frame(o: Outgoing): string {
  if (o.framed) return o.head;
  if (o.length === null && o.body !== null && !Buffer.isBuffer(o.body)) {
    o.body.read(0);
    const st = (o.body as { _readableState?: { ended?: boolean; objectMode?: boolean; length?: number } })
      ._readableState;
    if (st?.ended && !st.objectMode && Number.isFinite(st.length)) {
      o.length = st.length!;
      if (o.length === 0) {
        o.body = null;
        if (!EXPECTS_PAYLOAD.has(o.method)) o.length = null;
      }
    }
  }
  return o.head + framing(o.length, o.body);
}
