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

/** One way a URL can start in the body (opening quote + the base as spelled), and what takes its place. */
interface Pattern {
  bytes: Buffer;
  replacement: Buffer;
}

/** A compiled rewrite: byte patterns (longest first) and the bytes that may follow a base. */
interface Rewrite {
  patterns: Pattern[];
  /** `/`, `?`, `#` or a closing quote: the base ends there (and is not the start of a longer name). */
  after: Set<number>;
  /** JSON only: `\/` after the base also counts. */
  escapedSlash: boolean;
  /** Longest byte run a match and the bytes after it can span: the stream keeps back one less. */
  window: number;
}

const BACKSLASH = 0x5c;
const SLASH = 0x2f;
const jsonEscape = (s: string) => JSON.stringify(s).slice(1, -1);
// Attribute values may be quoted either way; escape both quotes and what XML itself reserves.
const XML_ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" };
const xmlEscape = (s: string) => s.replace(/[&<>"']/g, (c) => XML_ESCAPES[c]!);

/** [spelling in the body, replacement] pairs for one base. */
function spellings(syntax: RewriteSyntax, base: string, to: string): [string, string][] {
  if (syntax === "json") {
    // A JSON string may escape `/` as `\/`; keep the escaping style the upstream used.
    const plain = jsonEscape(base);
    const target = jsonEscape(to);
    return [
      [plain, target],
      [plain.replaceAll("/", "\\/"), target.replaceAll("/", "\\/")],
    ];
  }
  // XML: the base as it is written, and escaped, both become the escaped target (valid in either quote).
  const target = xmlEscape(to);
  return [
    [base, target],
    [xmlEscape(base), target],
  ];
}

function compile(syntax: RewriteSyntax, from: readonly string[], to: string): Rewrite | undefined {
  const target = to.replace(/\/+$/, "");
  const bases = [...new Set(from.map((b) => b.replace(/\/+$/, "")))].filter((b) => b && b !== target);
  if (bases.length === 0) return undefined;
  const quotes = syntax === "json" ? ['"'] : ['"', "'"];
  const byMatch = new Map<string, string>();
  for (const b of bases)
    for (const [spelled, replacement] of spellings(syntax, b, target))
      for (const q of quotes) byMatch.set(q + spelled, q + replacement);
  // The opening quote is part of the pattern: a chunk boundary may fall right after it. Longest
  // first, so a base that extends another (…/fhir and …/fhir/R4) wins where both match.
  const patterns = [...byMatch]
    .map(([m, r]) => ({ bytes: Buffer.from(m), replacement: Buffer.from(r) }))
    .sort((a, b) => b.bytes.length - a.bytes.length);
  const after = new Set(Buffer.from(syntax === "json" ? '/?#"' : `/?#"'`));
  return { patterns, after, escapedSlash: syntax === "json", window: patterns[0]!.bytes.length + 2 };
}

/**
 * Rewrites the matches in `data` that start at or after `from` and before `limit` (each such match
 * and the bytes after it lie wholly inside `data`); returns the output pieces and where they end
 * (the rest is kept for the next chunk). Buffer.indexOf finds candidates without copying the chunk.
 */
function scan(rw: Rewrite, data: Buffer, from: number, limit: number): { out: Buffer[]; consumed: number } {
  const out: Buffer[] = [];
  const next = rw.patterns.map((p) => data.indexOf(p.bytes, from));
  let pos = from;
  for (;;) {
    let k = -1;
    for (let j = 0; j < next.length; j++) if (next[j]! >= 0 && (k < 0 || next[j]! < next[k]!)) k = j;
    const at = k < 0 ? -1 : next[k]!;
    if (at < 0 || at >= limit) break;
    const p = rw.patterns[k]!;
    const end = at + p.bytes.length;
    const b = data[end];
    const ends =
      b !== undefined && (rw.after.has(b) || (rw.escapedSlash && b === BACKSLASH && data[end + 1] === SLASH));
    if (!ends) {
      next[k] = data.indexOf(p.bytes, at + 1);
      continue;
    }
    if (at > pos) out.push(data.subarray(pos, at));
    out.push(p.replacement);
    pos = end;
    for (let j = 0; j < next.length; j++)
      if (next[j]! >= 0 && next[j]! < pos) next[j] = data.indexOf(rw.patterns[j]!.bytes, pos);
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
    const { out } = scan(rw, body, 0, body.length);
    return out.length === 1 && out[0]!.length === body.length ? body : Buffer.concat(out);
  };
}

/**
 * A streaming rewrite of a response body. Undefined when there is nothing to rewrite (the base
 * already is the target), so the caller can keep the upstream's framing. Output pieces are views
 * of the upstream's chunks: only the few bytes that may start a match at a chunk's end are copied.
 */
export function urlRewriteStream(syntax: RewriteSyntax, from: readonly string[], to: string): Transform | undefined {
  const rw = compile(syntax, from, to);
  if (!rw) return undefined;
  const keep = rw.window - 1; // a match starting before the last `keep` bytes is wholly visible
  let tail: Buffer = Buffer.alloc(0);
  // One output buffer per input chunk: pushing each piece would make each one a write (and an
  // HTTP chunk) of its own, which costs more than the copy.
  const emit = (t: Transform, pieces: Buffer[]) => {
    if (pieces.length === 1) t.push(pieces[0]);
    else if (pieces.length > 1) t.push(Buffer.concat(pieces));
  };
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      const pieces: Buffer[] = [];
      let start = 0;
      if (tail.length) {
        if (chunk.length < keep) {
          tail = Buffer.concat([tail, chunk]);
          return done();
        }
        // Matches starting in the kept bytes, decided with the start of this chunk after them.
        const head = Buffer.concat([tail, chunk.subarray(0, keep)]);
        const { out, consumed } = scan(rw, head, 0, tail.length);
        pieces.push(...out);
        start = consumed - tail.length;
      }
      const limit = chunk.length - keep;
      if (limit > start) {
        const { out, consumed } = scan(rw, chunk, start, limit);
        pieces.push(...out);
        start = consumed;
      }
      tail = Buffer.from(chunk.subarray(start)); // a copy: the chunk itself is not kept alive
      emit(this, pieces);
      done();
    },
    flush(done) {
      if (tail.length) emit(this, scan(rw, tail, 0, tail.length).out);
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
