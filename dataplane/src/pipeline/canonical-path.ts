/**
 * The one canonical form of a request path. The gateway computes it once per request, before
 * routing; routing, `policies`, `path_filter`, the access log and the upstream request all use it,
 * so nothing downstream can see (or forward) a spelling of the path that was not checked.
 *
 * The rules (README "Request paths"), in the spirit of Envoy's `normalize_path`, `merge_slashes`
 * and `path_with_escaped_slashes_action`:
 * - `%XX` of an unreserved character (A-Z a-z 0-9 - . _ ~) is decoded (`/%61dmin` is `/admin`);
 *   any other escape stays encoded with upper-case hex (`%2a` → `%2A`), because RFC 3986 makes
 *   an encoded reserved character a different thing from the character itself.
 * - the decoded bytes of a segment must be UTF-8 (overlong forms such as `%c0%ae` are not), and
 *   may not hold control characters (NUL, tab, DEL...): 400.
 * - `.` and `..` segments, however spelled, are refused (400), not resolved: a client that means
 *   a different resource can name it directly, and refusing keeps "what we checked" obvious.
 * - empty segments are merged (`//admin` is `/admin`); a trailing `/` is kept.
 * - a literal `\` or `#` is refused; other characters outside RFC 3986's path set are encoded.
 * - `;` parameters: refused by default, or stripped from every segment, or kept as data.
 * - encoded `/` and `\` (`%2F`, `%5C`): refused by default; or `%2F` decoded into a separator
 *   (`%5C` is still refused); or kept encoded, which is only safe for upstreams that never decode
 *   them (a segment that holds a dot segment between them is refused even then).
 */

export type EncodedSlash = "reject" | "decode" | "keep";
export type Semicolon = "reject" | "strip" | "keep";

export interface PathNormalization {
  encodedSlash: EncodedSlash;
  semicolon: Semicolon;
  /** Routes and path rules ignore case; the path is still forwarded as sent. */
  caseInsensitive: boolean;
}

export const DEFAULT_PATH_NORMALIZATION: Readonly<PathNormalization> = {
  encodedSlash: "reject",
  semicolon: "reject",
  caseInsensitive: false,
};

/** Why a path was refused; the message is safe to show the client (it names no path bytes). */
export class PathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PathError";
  }
}

const PERCENT = 37;
const HASH = 35;
const SLASH = 47;
const BACKSLASH = 92;

/** Characters that stand for themselves in a canonical path (RFC 3986 pchar, plus `/`). */
const PCHAR = new Uint8Array(128);
/** Characters an escape of which is decoded (RFC 3986 unreserved). */
const UNRESERVED = new Uint8Array(128);
for (const ch of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~") {
  UNRESERVED[ch.charCodeAt(0)] = 1;
  PCHAR[ch.charCodeAt(0)] = 1;
}
for (const ch of "!$&'()*+,;=:@/") PCHAR[ch.charCodeAt(0)] = 1;

const HEX = "0123456789ABCDEF";
const DOT_SEGMENTS = "dot segments (. and ..) are not accepted in paths";
const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * The canonical form of `raw` (a request path without its query string, starting with `/`), or
 * a PathError. Already-canonical paths, the common case, come back as they are after one scan.
 */
export function canonicalPath(raw: string, opts: PathNormalization = DEFAULT_PATH_NORMALIZATION): string {
  if (isCanonical(raw)) return raw;
  return rebuild(raw, opts);
}

/**
 * Already canonical: segments of pchars other than `;`, none empty (no `//`) or starting with `.`.
 * Each repetition starts at a `/` the character class cannot match, so the match is linear; one
 * compiled expression measured about twice as fast as a charCodeAt loop here.
 */
const CANONICAL = /^(?:\/(?![/.])[A-Za-z0-9\-._~!$&'()*+,=:@]*)+$/;

function isCanonical(p: string): boolean {
  return CANONICAL.test(p);
}

/** A segment that needs no decoding or encoding (it may still be `.` or `..`). */
const PLAIN_SEGMENT = /^[A-Za-z0-9\-._~!$&'()*+,=:@]*$/;

function rebuild(raw: string, opts: PathNormalization): string {
  if (raw.charCodeAt(0) !== SLASH) throw new PathError("the path must start with /");
  const pieces: string[] = [];
  const rawSegments = raw.split("/");
  for (let s = 1; s < rawSegments.length; s++) {
    let seg = rawSegments[s]!;
    const semi = seg.indexOf(";");
    if (semi >= 0) {
      if (opts.semicolon === "reject") throw new PathError("';' parameters are not accepted in paths");
      if (opts.semicolon === "strip") seg = seg.slice(0, semi);
    }
    if (PLAIN_SEGMENT.test(seg)) {
      if (seg === "." || seg === "..") throw new PathError(DOT_SEGMENTS);
      pieces.push(seg);
    } else {
      for (const piece of decodeSegment(seg, opts)) pieces.push(piece);
    }
  }
  // Empty pieces are merged slashes (or segments that were only parameters); one at the end is
  // the trailing slash, which names a different resource on many servers and is kept.
  const out = pieces.filter((p) => p !== "");
  const trailing = out.length > 0 && pieces[pieces.length - 1] === "";
  return "/" + out.join("/") + (trailing ? "/" : "");
}

/**
 * One raw segment → its canonical spelling; more than one piece when `%2F` is decoded into a
 * separator. Throws PathError for anything refused.
 */
function decodeSegment(seg: string, opts: PathNormalization): string[] {
  const bytes: number[] = [];
  /** Per byte: true when it came from an escape (so a reserved character stays encoded). */
  const escaped: boolean[] = [];
  for (let i = 0; i < seg.length; i++) {
    const c = seg.charCodeAt(i);
    if (c === PERCENT) {
      const h = hexByte(seg, i + 1);
      if (h < 0) throw new PathError("the path is not valid percent-encoding");
      bytes.push(h);
      escaped.push(true);
      i += 2;
      continue;
    }
    if (c >= 128) throw new PathError("non-ASCII characters in a path must be percent-encoded");
    if (c === BACKSLASH) throw new PathError("'\\' is not accepted in paths");
    if (c === HASH) throw new PathError("'#' is not accepted in paths (a fragment is not sent to a server)");
    bytes.push(c);
    escaped.push(false);
  }
  if (bytes.some((b) => b >= 0x80)) {
    try {
      utf8.decode(Uint8Array.from(bytes));
    } catch {
      throw new PathError("the path does not decode to UTF-8 (overlong or invalid byte sequences)");
    }
  }
  const pieces: string[] = [];
  let cur = "";
  /** The current piece with %2F/%5C read as separators, to catch dot segments hidden between them. */
  let parts: string[] = [""];
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b < 0x20 || b === 0x7f) throw new PathError("control characters are not accepted in paths");
    if (escaped[i] && (b === SLASH || b === BACKSLASH)) {
      if (opts.encodedSlash === "reject" || (b === BACKSLASH && opts.encodedSlash === "decode"))
        throw new PathError("encoded '/' and '\\' are not accepted in paths");
      if (opts.encodedSlash === "decode") {
        checkDots(parts);
        pieces.push(cur);
        cur = "";
        parts = [""];
        continue;
      }
      parts.push(""); // keep: stays encoded, but is a separator to whoever decodes it
      cur += b === SLASH ? "%2F" : "%5C";
      continue;
    }
    parts[parts.length - 1] += b < 128 ? String.fromCharCode(b) : "\u0080";
    if (b < 128 && UNRESERVED[b] === 1) cur += String.fromCharCode(b);
    else if (b < 128 && !escaped[i] && PCHAR[b] === 1) cur += String.fromCharCode(b);
    else cur += "%" + HEX[b >> 4]! + HEX[b & 15]!;
  }
  checkDots(parts);
  pieces.push(cur);
  return pieces;
}

function checkDots(parts: string[]): void {
  for (const p of parts) if (p === "." || p === "..") throw new PathError(DOT_SEGMENTS);
}

function hexByte(s: string, i: number): number {
  if (i + 1 >= s.length) return -1;
  const hi = hexDigit(s.charCodeAt(i));
  const lo = hexDigit(s.charCodeAt(i + 1));
  return hi < 0 || lo < 0 ? -1 : (hi << 4) | lo;
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/**
 * A configured literal (a route prefix, the fixed parts of a path pattern) in canonical form, so
 * that `/é` in config matches `/%C3%A9` on the wire and `/%61dmin` matches `/admin`.
 */
export function canonicalLiteral(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const h = c === PERCENT ? hexByte(s, i + 1) : -1;
    if (h >= 0) {
      i += 2;
      out += h < 128 && UNRESERVED[h] === 1 ? String.fromCharCode(h) : "%" + HEX[h >> 4]! + HEX[h & 15]!;
    } else if (c < 128 && PCHAR[c] === 1) {
      out += s[i];
    } else {
      const cp = s.codePointAt(i)!;
      if (cp > 0xffff) i++;
      for (const b of Buffer.from(String.fromCodePoint(cp), "utf8")) out += "%" + HEX[b >> 4]! + HEX[b & 15]!;
    }
  }
  return out;
}
