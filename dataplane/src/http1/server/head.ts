/**
 * The rules node:http (Node 24, lib/_http_outgoing.js) applies to a response's header fields, for
 * the lane's own writer (response.ts): which names and values it refuses, how a value list goes on
 * the wire, what the framing and connection fields decide, and the Date line. Each is node's rule
 * restated, not a new one: the lane's answers must be node:http's byte for byte
 * (dataplane/test/h1-server-lane.test.ts, test/hostile/http1-server-diff.test.ts).
 */
import { OutgoingMessage, STATUS_CODES, validateHeaderName, validateHeaderValue } from "node:http";

/** node's tokenRegExp: a header name node:http accepts. */
const TOKEN = /^[\^_`a-zA-Z\-0-9!#$%&'*+.|~]+$/;
/** node's strictHeaderCharRegex and lenientHeaderCharRegex: a character no header value may carry. */
const STRICT_BAD = /[^\t\x20-\x7e\x80-\xff]/;
// eslint-disable-next-line no-control-regex -- node's own expression: NUL, LF and CR are what it refuses
const LENIENT_BAD = /[\x00\x0a\x0d]|[^\x00-\xff]/;
const RE_CONN_CLOSE = /(?:^|\W)close(?:$|\W)/i;
const RE_TE_CHUNKED = /(?:^|\W)chunked(?:$|\W)/i;

/**
 * Whether node:http checks values leniently here: only with --insecure-http-parser (the lane's
 * server has no httpValidation or insecureHTTPParser option of its own). Asked of node itself
 * through its public API, once: a control character passes only the lenient check.
 */
const LENIENT = ((): boolean => {
  try {
    new OutgoingMessage().setHeader("x", "\x01");
    return true;
  } catch {
    return false;
  }
})();
const BAD_VALUE = LENIENT ? LENIENT_BAD : STRICT_BAD;

/** TOKEN by character (node's validTokenChars), made from it: a loop over a name beats a regex call. */
const TOKEN_CHARS = new Uint8Array(128).map((_, c) => (TOKEN.test(String.fromCharCode(c)) ? 1 : 0));

/** Throws node:http's own error for a name it would refuse. */
export function checkName(name: unknown): void {
  if (typeof name === "string" && name.length !== 0) {
    let i = 0;
    while (i < name.length && TOKEN_CHARS[name.charCodeAt(i)] === 1) i++;
    if (i === name.length) return;
  }
  validateHeaderName(name as string);
}

/** The length of the start of `v` without a character STRICT_BAD refuses. */
function strictRun(v: string): number {
  let i = 0;
  for (; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if ((c < 32 && c !== 9) || c === 127 || c > 255) break;
  }
  return i;
}

/** Throws node:http's own error for a value it would refuse (a list is tested as its joined text, as there). */
export function checkValue(name: string, value: unknown): void {
  if (typeof value === "string") {
    if (LENIENT ? !BAD_VALUE.test(value) : strictRun(value) === value.length) return;
  } else if (value !== undefined && !BAD_VALUE.test(value as string)) return;
  (validateHeaderValue as (n: string, v: unknown, lenient?: boolean) => void)(name, value, LENIENT);
}

/** A status message node:http refuses (checkInvalidHeaderChar, always strict there). */
export function badStatusMessage(message: string): boolean {
  return STRICT_BAD.test(message);
}

export function statusText(status: number): string {
  return STATUS_CODES[status] ?? "unknown";
}

/** An error shaped as node:http's (its `code`), for the misuses it refuses the same way. */
export function httpError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/**
 * What a response's header fields decide (node's matchHeader), and the head text built so far.
 * The writer is its own state: these are its fields.
 */
export interface HeadState {
  shouldKeepAlive: boolean;
  chunkedEncoding: boolean;
  /** node's `_last`: the connection closes after this response. */
  last: boolean;
  contentLength: number | null;
  removedConnection: boolean;
  removedContLen: boolean;
  removedTE: boolean;
  /** No `Keep-Alive` field of the response's own: node adds its timeout one. */
  defaultKeepAlive: boolean;
}

/** The fields node's _storeHeader tracks while it writes them out. */
export interface Seen {
  connection: boolean;
  contLen: boolean;
  te: boolean;
  date: boolean;
  expect: boolean;
  trailer: boolean;
  head: string;
}

/** One field (or a list of them) onto the head, as node's processHeader. */
export function addField(r: HeadState, seen: Seen, key: string, value: unknown, validate: boolean): void {
  if (validate) checkName(key);
  // node sends a Content-Disposition as Latin-1 bytes read back as UTF-8 once a length is known
  // (nodejs/node#46528); the same conversion, so the same bytes.
  if (key.length === 19 && r.contentLength && key.toLowerCase() === "content-disposition") {
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) value[i] = Buffer.from(String(value[i]), "latin1");
    } else value = Buffer.from(String(value), "latin1");
  }
  if (Array.isArray(value)) {
    if (value.length < 2 || !(key.length === 6 && key.toLowerCase() === "cookie")) {
      for (let i = 0; i < value.length; i++) addOne(r, seen, key, value[i], validate);
      return;
    }
    value = value.join("; ");
  }
  addOne(r, seen, key, value, validate);
}

function addOne(r: HeadState, seen: Seen, key: string, value: unknown, validate: boolean): void {
  if (validate) checkValue(key, value);
  seen.head += key + ": " + (value as string) + "\r\n";
  if (key.length < 4 || key.length > 17) return;
  // Only names starting c, d, e, k or t matter below: most fields are let go without lowercasing.
  const c0 = key.charCodeAt(0) | 0x20;
  if (c0 !== 99 && c0 !== 100 && c0 !== 101 && c0 !== 107 && c0 !== 116) return;
  switch (key.toLowerCase()) {
    case "connection":
      seen.connection = true;
      r.removedConnection = false;
      if (RE_CONN_CLOSE.test(value as string)) r.last = true;
      else r.shouldKeepAlive = true;
      break;
    case "transfer-encoding":
      seen.te = true;
      r.removedTE = false;
      if (RE_TE_CHUNKED.test(value as string)) r.chunkedEncoding = true;
      break;
    case "content-length":
      seen.contLen = true;
      r.contentLength = +(value as string);
      r.removedContLen = false;
      break;
    case "date":
      seen.date = true;
      break;
    case "expect":
      seen.expect = true;
      break;
    case "trailer":
      seen.trailer = true;
      break;
    case "keep-alive":
      r.defaultKeepAlive = false;
      break;
  }
}

/** A request's TE naming chunked: what lets node:http frame an HTTP/1.0 answer by chunks. */
export function teChunked(te: string | undefined): boolean {
  return RE_TE_CHUNKED.test(te as string);
}

let dateLine: string | undefined;

const dateExpired = (): void => {
  dateLine = undefined;
};

/**
 * `Date: …\r\n` for now, made once per second as node's utcDate: the text is kept until a timer at
 * the next second boundary (unref'd) drops it, so an answer reads no clock.
 */
export function dateField(): string {
  if (dateLine === undefined) {
    const d = new Date();
    dateLine = "Date: " + d.toUTCString() + "\r\n";
    setTimeout(dateExpired, 1000 - d.getMilliseconds()).unref();
  }
  return dateLine;
}
