/**
 * Moves absolute URLs in a JSON or XML body from one base to another, as a byte-level rewrite of
 * exact patterns: a quote, then the base as the format spells it inside a string or attribute
 * value, then `/`, `?`, `#` or the closing quote. It is not a parser: every other byte stays as the
 * upstream sent it (no reserialising, no entity expansion, no number reformatting), so clients that
 * compare or sign bodies see the upstream's bytes wherever no URL was touched.
 *
 * The same scanner runs on whole buffers (request bodies) and as a stream (response bodies): it
 * keeps back only the bytes at the end of a chunk that could still start a match, so memory stays
 * bounded by the chunk size whatever the body size, and a base split across chunks still matches.
 */
import { Transform } from "node:stream";

export type RewriteSyntax = "json" | "xml";

/** One way a base is spelled in the body, and what takes its place. */
interface Spelling {
  /** The spelling as latin1 text (one char per byte), so the regex runs on raw bytes. */
  match: string;
  replacement: Buffer;
}

/** A compiled rewrite: a regex over latin1 text and the replacement for each spelling it matches. */
interface Rewrite {
  pattern: RegExp;
  replacements: Map<string, Buffer>;
  /** Longest byte run a match (with its lookahead) can span: the stream keeps back one less. */
  window: number;
}

const QUOTES = new Map(['"', "'"].map((q) => [q, Buffer.from(q)]));
const latin1 = (s: string) => Buffer.from(s, "utf8").toString("latin1");
const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const jsonEscape = (s: string) => JSON.stringify(s).slice(1, -1);
// Attribute values may be quoted either way; escape both quotes and what XML itself reserves.
const XML_ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" };
const xmlEscape = (s: string) => s.replace(/[&<>"']/g, (c) => XML_ESCAPES[c]!);

function spellings(syntax: RewriteSyntax, base: string, to: string): Spelling[] {
  if (syntax === "json") {
    // A JSON string may escape `/` as `\/`; keep the escaping style the upstream used.
    const plain = jsonEscape(base);
    const target = jsonEscape(to);
    return [
      { match: latin1(plain), replacement: Buffer.from(target) },
      { match: latin1(plain.replaceAll("/", "\\/")), replacement: Buffer.from(target.replaceAll("/", "\\/")) },
    ];
  }
  // XML: the base as it is written, and escaped, both become the escaped target (valid in either quote).
  const target = Buffer.from(xmlEscape(to));
  return [
    { match: latin1(base), replacement: target },
    { match: latin1(xmlEscape(base)), replacement: target },
  ];
}

function compile(syntax: RewriteSyntax, from: readonly string[], to: string): Rewrite | undefined {
  const target = to.replace(/\/+$/, "");
  const bases = [...new Set(from.map((b) => b.replace(/\/+$/, "")))].filter((b) => b && b !== target);
  if (bases.length === 0) return undefined;
  const replacements = new Map<string, Buffer>();
  for (const b of bases) for (const s of spellings(syntax, b, target)) replacements.set(s.match, s.replacement);
  // Longest first, so a base that extends another (…/fhir and …/fhir/R4) wins where both match.
  const alts = [...replacements.keys()].sort((a, b) => b.length - a.length);
  const quote = syntax === "json" ? '"' : `["']`;
  const after = syntax === "json" ? `[/?#"]|\\\\/` : `[/?#"']`;
  // The opening quote is part of the match (not a lookbehind): a chunk boundary may fall after it.
  const pattern = new RegExp(`(${quote})(${alts.map(escapeRegExp).join("|")})(?=${after})`, "g");
  // quote + longest spelling + a two-byte lookahead (`\/`)
  return { pattern, replacements, window: 1 + alts[0]!.length + 2 };
}

/**
 * Rewrites the matches that lie wholly inside `data` and start before `limit`; returns the output
 * pieces and how many bytes of `data` they consumed (the rest is kept for the next chunk).
 */
function scan(rw: Rewrite, data: Buffer, limit: number): { out: Buffer[]; consumed: number } {
  const text = data.toString("latin1");
  const out: Buffer[] = [];
  let pos = 0;
  rw.pattern.lastIndex = 0;
  for (let m = rw.pattern.exec(text); m && m.index < limit; m = rw.pattern.exec(text)) {
    if (m.index > pos) out.push(data.subarray(pos, m.index));
    out.push(QUOTES.get(m[1]!)!, rw.replacements.get(m[2]!)!);
    pos = m.index + m[0].length;
  }
  const consumed = Math.max(pos, limit);
  if (consumed > pos) out.push(data.subarray(pos, consumed));
  return { out, consumed };
}

/** A whole-buffer rewrite (request bodies, already held); returns the same buffer when nothing matched. */
export function urlRewriter(syntax: RewriteSyntax, from: readonly string[], to: string): (body: Buffer) => Buffer {
  const rw = compile(syntax, from, to);
  if (!rw) return (b) => b;
  return (body) => {
    const { out } = scan(rw, body, body.length);
    return out.length === 1 && out[0]!.length === body.length ? body : Buffer.concat(out);
  };
}

export const jsonUrlRewriter = (from: readonly string[], to: string) => urlRewriter("json", from, to);

/**
 * A streaming rewrite of a response body. Undefined when there is nothing to rewrite (the base
 * already is the target), so the caller can keep the upstream's framing.
 */
export function urlRewriteStream(syntax: RewriteSyntax, from: readonly string[], to: string): Transform | undefined {
  const rw = compile(syntax, from, to);
  if (!rw) return undefined;
  let tail: Buffer = Buffer.alloc(0);
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      const data = tail.length ? Buffer.concat([tail, chunk]) : chunk;
      // A match starting before `limit` is wholly visible (lookahead included), so it is decided now.
      const limit = data.length - (rw.window - 1);
      if (limit <= 0) {
        tail = data;
        return done();
      }
      const { out, consumed } = scan(rw, data, limit);
      tail = Buffer.from(data.subarray(consumed)); // a copy: do not keep the whole chunk alive
      for (const b of out) this.push(b);
      done();
    },
    flush(done) {
      if (tail.length) for (const b of scan(rw, tail, tail.length).out) this.push(b);
      done();
    },
  });
}

/** One URL-valued header (Location, Content-Location) moved from the upstream's base to ours. */
export function rewriteUrlHeader(
  headers: Record<string, unknown>,
  name: string,
  from: readonly string[],
  to: string,
): void {
  const v = headers[name];
  if (typeof v !== "string") return;
  for (const base of from) {
    const b = base.replace(/\/+$/, "");
    if (v === b || (v.startsWith(b) && "/?#".includes(v.charAt(b.length)))) {
      headers[name] = to + v.slice(b.length);
      return;
    }
  }
}
