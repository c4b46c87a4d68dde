/**
 * What JOLT's operations share: the JSON type, spec keys (literals, `*` wildcards, `|`
 * alternatives) and references into the input being walked (`&n`, `$n`, `@(n,path)`). The
 * operations live in jolt.ts (shift, default, remove, cardinality, sort) and jolt-modify.ts.
 */

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type Obj = { [k: string]: Json };

export class JoltError extends Error {}

export const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
export const clone = <T>(v: T): T => (v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T));

// ---- keys: literals, wildcards, alternatives ----------------------------------------------

/** One LHS alternative: literal text and `*`s. Captures are what each `*` matched. */
export interface KeyPattern {
  parts: string[]; // literal pieces around the stars
  stars: number;
  literal: boolean;
}

export function unescapeKey(s: string): string {
  return s.replace(/\\(.)/g, "$1");
}

/** Splits on an unescaped separator outside parentheses (`@(2,a.b)` is one piece). */
export function splitUnescaped(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = "";
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === "(") depth++;
    else if (c === ")") depth--;
    if (c === "\\" && i + 1 < s.length) {
      cur += c + s[i + 1]!;
      i++;
    } else if (c === sep && depth === 0) {
      out.push(cur);
      cur = "";
    } else cur += c;
  }
  out.push(cur);
  return out;
}

export function keyPattern(alt: string): KeyPattern {
  const parts: string[] = [];
  let cur = "";
  let stars = 0;
  for (let i = 0; i < alt.length; i++) {
    const c = alt[i]!;
    if (c === "\\" && i + 1 < alt.length) cur += alt[++i]!;
    else if (c === "*") {
      parts.push(cur);
      cur = "";
      stars++;
    } else cur += c;
  }
  parts.push(cur);
  return { parts, stars, literal: stars === 0 };
}

/** Matches a key against a pattern; returns [whole, ...stars] or undefined. */
export function matchPattern(p: KeyPattern, key: string): string[] | undefined {
  if (p.literal) return key === p.parts[0] ? [key] : undefined;
  // Left to right, each star takes as little as it can but at least one character (JOLT's rule).
  const caps: string[] = [key];
  if (!key.startsWith(p.parts[0]!)) return undefined;
  let at = p.parts[0]!.length;
  for (let i = 1; i < p.parts.length; i++) {
    const piece = p.parts[i]!;
    const last = i === p.parts.length - 1;
    if (last) {
      if (!key.endsWith(piece) || key.length - piece.length <= at) return undefined;
      caps.push(key.slice(at, key.length - piece.length));
      at = key.length;
    } else {
      const j = piece === "" ? at + 1 : key.indexOf(piece, at + 1);
      if (j < 0 || j > key.length) return undefined;
      caps.push(key.slice(at, j));
      at = j + piece.length;
    }
  }
  return caps;
}

export interface LhsKey {
  raw: string;
  alts: KeyPattern[];
  literal: boolean;
  /** Fewer stars and longer literal text are more specific. */
  specificity: number;
}

export function lhsKey(raw: string): LhsKey {
  const alts = splitUnescaped(raw, "|").map(keyPattern);
  const literal = alts.length === 1 && alts[0]!.literal;
  const specificity = Math.min(...alts.map((a) => a.stars * 1000 - a.parts.join("").length));
  return { raw, alts, literal, specificity };
}

export function matchKey(k: LhsKey, key: string): string[] | undefined {
  for (const a of k.alts) {
    const m = matchPattern(a, key);
    if (m) return m;
  }
  return undefined;
}

// ---- references into the walked input ----------------------------------------------------------

export interface Frame {
  key: string;
  captures: string[];
  value: Json | undefined;
  /** Children of this node matched so far (what `#n` on the right-hand side counts). */
  matched: number;
}

export const frame = (key: string, captures: string[], value: Json | undefined): Frame => ({
  key,
  captures,
  value,
  matched: 0,
});

/** `&`, `&n`, `&(n,m)`, `$`, `$n`, `$(n,m)`: the captured key text n levels up. */
export function reference(stack: Frame[], n: number, m: number): string {
  const f = stack[stack.length - 1 - n];
  if (!f) throw new JoltError(`reference goes ${n} levels up, past the root`);
  return f.captures[m] ?? "";
}

export function parseRef(s: string, i: number): { n: number; m: number; end: number } {
  // s[i] is & or $
  if (s[i + 1] === "(") {
    const close = s.indexOf(")", i);
    const [a, b] = s
      .slice(i + 2, close)
      .split(",")
      .map((x) => Number(x.trim()));
    return { n: a ?? 0, m: b ?? 0, end: close + 1 };
  }
  let j = i + 1;
  while (j < s.length && /\d/.test(s[j]!)) j++;
  return { n: j > i + 1 ? Number(s.slice(i + 1, j)) : 0, m: 0, end: j };
}

/** `@`, `@n`... `@(n,path)`, `@(path)`, `@path`: a value from the input tree. */
export function lookup(stack: Frame[], expr: string): Json | undefined {
  let n = 0;
  let path = "";
  if (expr.startsWith("@(")) {
    const inner = expr.slice(2, expr.lastIndexOf(")"));
    const m = /^\s*(\d+)\s*(?:,|$)/.exec(inner);
    // Without a leading level, "@(a.b)" reads from the current level, as "@a.b" would.
    n = m ? Number(m[1]) : 0;
    path = (m ? inner.slice(m[0].length) : inner).trim();
  } else {
    const m = /^@(\d*)(.*)$/.exec(expr)!;
    n = m[1] ? Number(m[1]) : 0;
    path = m[2]!;
  }
  const f = stack[stack.length - 1 - n];
  return f ? readPath(f.value, path, stack) : undefined;
}

/** Walks `a.b[0].&1` down from a value; undefined when any step is missing. */
export function readPath(from: Json | undefined, path: string, stack: Frame[]): Json | undefined {
  let v = from;
  if (!path) return v;
  for (const seg of splitUnescaped(path, ".")) {
    const m = /^(.*?)((?:\[[^\]]*\])*)$/.exec(seg)!;
    const parts = [...(m[1] ? [m[1]] : []), ...(m[2]!.match(/\[[^\]]*\]/g) ?? []).map((b) => b.slice(1, -1))];
    for (const part of parts) {
      const key = evalSegment(part, stack);
      if (key === undefined) return undefined;
      // Own keys only: "constructor" or "__proto__" in a path must not reach Object.prototype.
      if (Array.isArray(v)) v = /^\d+$/.test(key) ? v[Number(key)] : undefined;
      else if (isObj(v)) v = Object.hasOwn(v, key) ? v[key] : undefined;
      else return undefined;
    }
  }
  return v;
}

/**
 * A path segment's text with references substituted; undefined when an `@` in it finds nothing
 * usable as a key (JOLT then skips the read or the write rather than using an empty key).
 */
export function evalSegment(seg: string, stack: Frame[]): string | undefined {
  let out = "";
  for (let i = 0; i < seg.length;) {
    const c = seg[i]!;
    if (c === "\\" && i + 1 < seg.length) {
      out += seg[i + 1];
      i += 2;
    } else if (c === "&" || c === "$") {
      const r = parseRef(seg, i);
      out += reference(stack, r.n, r.m);
      i = r.end;
    } else if (c === "#" && /\d/.test(seg[i + 1] ?? "")) {
      let j = i + 1;
      while (j < seg.length && /\d/.test(seg[j]!)) j++;
      const f = stack[stack.length - 1 - Number(seg.slice(i + 1, j))];
      if (!f) throw new JoltError(`${seg}: goes past the root`);
      out += String(Math.max(0, f.matched - 1));
      i = j;
    } else if (c === "@") {
      let end = i + 1;
      if (seg[end] === "(") end = seg.indexOf(")", end) + 1;
      else while (end < seg.length && /[^.[\]]/.test(seg[end]!)) end++;
      const key = keyOf(lookup(stack, seg.slice(i, end)));
      if (key === undefined) return undefined;
      out += key;
      i = end;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** JOLT's TransposePathElement: a number is used as an (integer) index, a boolean by name. */
export function keyOf(v: Json | undefined): string | undefined {
  if (typeof v === "string") return v;
  if (typeof v === "number") return String(Math.trunc(v));
  if (typeof v === "boolean") return String(v);
  return undefined;
}
