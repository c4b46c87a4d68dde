/**
 * The answer's head, read once: the header fields as the handler gets them (undici's shape:
 * lower-case names, a repeated field as an array) and, in the same pass, the facts the connection
 * frames the body by. Also the parse error undici reports, so clients get the same 502.
 */
import type { IncomingHttpHeaders } from "node:http";
import { errors } from "undici";

/** Written by `readHead` for each head; one per connection, reused. */
export interface Framing {
  /** How many content-length fields the head had. */
  lengths: number;
  /** The content-length, -1 if there is none or it is not a number. */
  length: number;
  /** A transfer-encoding field was present. */
  chunked: boolean;
  /** The Keep-Alive field's value, if any. */
  keepAlive: string | undefined;
  /**
   * The field names of the connection's last answer as given, and their lower-case keys: an
   * upstream sends the same names in the same order answer after answer, and comparing a new name
   * with the one at its place costs less than the hash and probe of a map lookup.
   */
  names: string[];
  keys: string[];
}

export function newFraming(): Framing {
  return { lengths: 0, length: -1, chunked: false, keepAlive: undefined, names: [], keys: [] };
}

/**
 * Field names seen before, as given → lower-cased: an upstream sends the same dozen names (often
 * capitalised: `Date`, `Connection`, `Keep-Alive`) on every answer, so each is lower-cased once per
 * process rather than into a new string per answer, and the object below is keyed by the same
 * string every time (V8 finds the property without hashing a new key). Bounded like wire.ts's.
 */
const lowered = new Map<string, string>();
const LOWERED_MAX = 1024;

function lower(name: string): string {
  let key = lowered.get(name);
  if (key === undefined) {
    key = name.toLowerCase();
    if (lowered.size < LOWERED_MAX) lowered.set(name, key);
  }
  return key;
}

/** Fields remembered per connection (`Framing.names`): more than an answer's usual dozen or two. */
const NAMES_KEPT = 64;

/** `raw`: the parser's flat [name, value, ...] list. */
export function readHead(raw: string[], f: Framing): IncomingHttpHeaders {
  f.lengths = 0;
  f.length = -1;
  f.chunked = false;
  f.keepAlive = undefined;
  const names = f.names;
  const keys = f.keys;
  const headers: IncomingHttpHeaders = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const at = i >> 1;
    let key: string;
    if (names[at] === name) key = keys[at]!;
    else {
      key = lower(name);
      if (at < NAMES_KEPT) {
        names[at] = name;
        keys[at] = key;
      }
    }
    const v = raw[i + 1]!;
    const cur = headers[key];
    if (cur === undefined) headers[key] = v;
    else if (Array.isArray(cur)) cur.push(v);
    else headers[key] = [cur, v];
    if (key.length === 14 && key === "content-length") {
      f.lengths++;
      f.length = digits(v);
    } else if (key.length === 17 && key === "transfer-encoding") f.chunked = true;
    else if (key.length === 10 && key === "keep-alive") f.keepAlive = v;
  }
  return headers;
}

/** A non-negative decimal integer, or -1 (what /^\d+$/ accepted, without the regular expression). */
function digits(v: string): number {
  const n = v.length;
  if (n === 0) return -1;
  let x = 0;
  for (let i = 0; i < n; i++) {
    const c = v.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    x = x * 10 + (c - 48);
  }
  // Up to 15 digits the sum is exact; a longer number is parsed as before (and refused by the caller's bounds).
  return n <= 15 ? x : Number(v);
}

/** undici's margin below the upstream's announced keep-alive timeout, and its cap. */
const KEEP_ALIVE_THRESHOLD = 2000;
const KEEP_ALIVE_MAX = 600_000;

/**
 * `Keep-Alive: timeout=N`: the upstream closes idle sockets after N s, so stop using them 2 s
 * before: the idle time in ms, 0 if the socket is not to be reused at all, undefined if the value
 * names no timeout.
 */
export function keepAliveHint(v: string): number | undefined {
  const m = /timeout=(\d+)/i.exec(v);
  if (!m) return undefined;
  const ms = Number(m[1]) * 1000 - KEEP_ALIVE_THRESHOLD;
  return ms <= 0 ? 0 : Math.min(ms, KEEP_ALIVE_MAX);
}

/** undici's parse error, code HPE_<code> (its typings omit the constructor's code argument). */
export function parserError(reason: string, code: string): Error {
  const e = new errors.HTTPParserError(`Response does not match the HTTP/1.1 protocol (${reason})`);
  return Object.assign(e, { code: `HPE_${code}` });
}
