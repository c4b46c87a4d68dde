/**
 * JOLT (JSON-to-JSON transformation, bazaarvoice/jolt semantics) for the `transform` middleware:
 * `shift`, `default`, `remove`, `cardinality`, `sort` and the `modify-*-beta` operations
 * (jolt-modify.ts), chained as a list of `{ operation, spec }`. Written here because no
 * maintained JavaScript JOLT exists; measured against JOLT's own test vectors
 * (test/jolt-conformance.test.ts).
 */

import { checkModify, modify, modifyMode } from "./jolt-modify.js";

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

export class JoltError extends Error {}

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const clone = <T>(v: T): T => (v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T));

// ---- keys: literals, wildcards, alternatives ----------------------------------------------

/** One LHS alternative: literal text and `*`s. Captures are what each `*` matched. */
export interface KeyPattern {
  parts: string[]; // literal pieces around the stars
  stars: number;
  literal: boolean;
}

function unescape(s: string): string {
  return s.replace(/\\(.)/g, "$1");
}

/** Splits on an unescaped separator outside parentheses (`@(2,a.b)` is one piece). */
function splitUnescaped(s: string, sep: string): string[] {
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

interface LhsKey {
  raw: string;
  alts: KeyPattern[];
  literal: boolean;
  /** Fewer stars and longer literal text are more specific. */
  specificity: number;
}

function lhsKey(raw: string): LhsKey {
  const alts = splitUnescaped(raw, "|").map(keyPattern);
  const literal = alts.length === 1 && alts[0]!.literal;
  const specificity = Math.min(...alts.map((a) => a.stars * 1000 - a.parts.join("").length));
  return { raw, alts, literal, specificity };
}

function matchKey(k: LhsKey, key: string): string[] | undefined {
  for (const a of k.alts) {
    const m = matchPattern(a, key);
    if (m) return m;
  }
  return undefined;
}

// ---- shift -----------------------------------------------------------------------------------

export interface Frame {
  key: string;
  captures: string[];
  value: Json | undefined;
  /** Children of this node matched so far (what `#n` on the right-hand side counts). */
  matched: number;
}

const frame = (key: string, captures: string[], value: Json | undefined): Frame => ({
  key,
  captures,
  value,
  matched: 0,
});

/** `&`, `&n`, `&(n,m)`, `$`, `$n`, `$(n,m)`: the captured key text n levels up. */
function reference(stack: Frame[], n: number, m: number): string {
  const f = stack[stack.length - 1 - n];
  if (!f) throw new JoltError(`reference goes ${n} levels up, past the root`);
  return f.captures[m] ?? "";
}

function parseRef(s: string, i: number): { n: number; m: number; end: number } {
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
function evalSegment(seg: string, stack: Frame[]): string | undefined {
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
function keyOf(v: Json | undefined): string | undefined {
  if (typeof v === "string") return v;
  if (typeof v === "number") return String(Math.trunc(v));
  if (typeof v === "boolean") return String(v);
  return undefined;
}

type PathStep = { key: string } | { index: number } | { push: true };

/**
 * An output path: `a.b[&1].c[]`, `photos[0]`, `&1-&0.x`. Undefined when a reference in it does
 * not resolve to a key or an index: JOLT then drops that write, the data decides, not the spec.
 */
function outputPath(rhs: string, stack: Frame[]): PathStep[] | undefined {
  const steps: PathStep[] = [];
  for (const seg of splitUnescaped(rhs, ".")) {
    if (seg === "") continue;
    // Brackets at the end (or alone) index into arrays.
    const m = /^(.*?)((?:\[[^\]]*\])*)$/.exec(seg)!;
    if (m[1]) {
      const key = evalSegment(m[1], stack);
      if (key === undefined) return undefined;
      steps.push({ key });
    }
    for (const b of m[2]!.match(/\[[^\]]*\]/g) ?? []) {
      const inner = b.slice(1, -1);
      if (inner === "") steps.push({ push: true });
      else {
        const idx = evalSegment(inner, stack);
        if (idx === undefined || !/^\d+$/.test(idx)) return undefined;
        steps.push({ index: Number(idx) });
      }
    }
  }
  return steps;
}

function place(out: { root: Json }, steps: PathStep[], value: Json): void {
  // "" on the right-hand side places at the root itself.
  let holder: { root: Json } | Obj | Json[] = out;
  let slot: string | number = "root";
  const get = () => (holder as Record<string | number, Json | undefined>)[slot];
  const set = (v: Json) => ((holder as Record<string | number, Json>)[slot] = v);
  for (const step of steps) {
    let cur = get();
    if ("key" in step) {
      if (!isObj(cur)) {
        if (cur !== undefined && cur !== null) return; // a value is in the way: JOLT skips
        cur = {};
        set(cur);
      }
      holder = cur;
      slot = step.key;
    } else {
      if (!Array.isArray(cur)) {
        if (cur !== undefined && cur !== null) return;
        cur = [];
        set(cur);
      }
      holder = cur;
      slot = "push" in step ? cur.length : step.index;
      while (cur.length < slot) cur.push(null); // no holes: JSON has none
    }
  }
  const existing = get();
  // A null that only fills an array up to an index is a free slot.
  if (existing === undefined || (existing === null && Array.isArray(holder))) set(value);
  else if (Array.isArray(existing) && autoArrays.has(existing)) existing.push(value);
  else {
    const arr = [existing, value];
    autoArrays.add(arr);
    set(arr);
  }
}

/** Arrays shift made itself by writing twice to one place (later writes append to them). */
let autoArrays = new WeakSet<Json[]>();

function writeAll(rhs: Json, value: Json, stack: Frame[], out: { root: Json }): void {
  if (rhs === null) return;
  const targets = Array.isArray(rhs) ? rhs : [rhs];
  for (const t of targets) {
    if (typeof t !== "string") throw new JoltError("shift output paths are strings");
    const steps = outputPath(t, stack);
    if (steps) place(out, steps, clone(value));
  }
}

function shiftNode(spec: Obj, input: Json | undefined, stack: Frame[], out: { root: Json }): void {
  const keys = Object.keys(spec);
  // Special keys apply whatever the input is.
  for (const raw of keys) {
    const sub = spec[raw]!;
    // Each special key is a match of its own: right-hand references count it as a level.
    // (A leaf match's level holds the input it was found in, as JOLT's walked path does.)
    if (raw.startsWith("$")) {
      const r = parseRef(raw, 0);
      const key = reference(stack, r.n, r.m);
      writeAll(sub, key, [...stack, frame(key, [key], input)], out);
    } else if (raw.startsWith("#")) {
      const lit = unescape(raw.slice(1));
      writeAll(sub, lit, [...stack, frame(lit, [lit], input)], out);
    } else if (raw.startsWith("@")) {
      const v = lookup(stack, raw);
      if (v === undefined) continue;
      if (isObj(sub)) shiftNode(sub, v, [...stack, frame(raw, [raw], v)], out);
      else writeAll(sub, v, [...stack, frame(raw, [raw], input)], out);
    }
  }
  if (input === undefined) return;
  // "&n" on the left is a literal: the key matched n levels up.
  const lhs = keys
    .filter((k) => !/^[$#@]/.test(k))
    .map((k) =>
      k.startsWith("&") ? { ...lhsKey((evalSegment(k, stack) ?? "").replace(/[*|\\]/g, "\\$&")), raw: k } : lhsKey(k),
    );
  // A scalar is matched by its value, as if it were a key (`"true": {...}` under a boolean).
  const entries: [string, Json][] = Array.isArray(input)
    ? input.map((v, i) => [String(i), v])
    : isObj(input)
      ? Object.entries(input)
      : input === null
        ? [["null", null]]
        : [[String(input), input]];
  const byKey = new Map(entries);
  const apply = (k: string, key: LhsKey, caps: string[]) => {
    const v = byKey.get(k)!;
    const sub = spec[key.raw]!;
    stack[stack.length - 1]!.matched++;
    const container = isObj(input) || Array.isArray(input);
    const f = frame(k, caps, container ? v : undefined);
    // Matching a scalar by value goes no deeper: its subtree sees the scalar as a leaf key.
    if (isObj(sub)) shiftNode(sub, container ? v : undefined, [...stack, f], out);
    else writeAll(sub, v, [...stack, f], out);
  };
  // JOLT's order: literal keys (and the literal alternatives of "a|b*") first, in spec order;
  // then the remaining input keys against the wildcard patterns, most specific first.
  const done = new Set<string>();
  for (const key of lhs)
    for (const alt of key.alts)
      if (alt.literal && byKey.has(alt.parts[0]!) && !done.has(alt.parts[0]!)) {
        done.add(alt.parts[0]!);
        apply(alt.parts[0]!, key, [alt.parts[0]!]);
      }
  const patterns = lhs
    .flatMap((key) => key.alts.filter((a) => !a.literal).map((alt) => ({ key, alt })))
    .sort(
      (a, b) => a.alt.stars * 1000 - a.alt.parts.join("").length - (b.alt.stars * 1000 - b.alt.parts.join("").length),
    );
  for (const [k] of entries) {
    if (done.has(k)) continue;
    for (const { key, alt } of patterns) {
      const caps = matchPattern(alt, k);
      if (caps) {
        apply(k, key, caps);
        break;
      }
    }
  }
}

export function shift(input: Json, spec: Json): Json {
  if (!isObj(spec)) throw new JoltError("a shift spec is an object");
  const out = { root: undefined as unknown as Json };
  autoArrays = new WeakSet();
  // JOLT puts the root on its walked path twice (the transform, then the root spec), so "@(n)"
  // reaches the root at the level JOLT's specs count.
  const root = () => frame("root", ["root"], input);
  shiftNode(spec, input, [root(), root()], out);
  return out.root ?? null;
}

// ---- default ---------------------------------------------------------------------------------

function defaultNode(spec: Obj, target: Obj | Json[]): void {
  const entries = Object.entries(spec);
  const isArrayKey = (k: string) => /\[\]$/.test(k);
  // Defaultr's precedence: literals, then alternatives (fewer first, then alphabetical), then
  // partial wildcards, then "*". A key keeps the first default it gets.
  const rank = (k: string): [number, number, string] =>
    k === "*" || k === "*[]"
      ? [3, 0, k]
      : k.includes("|")
        ? [1, k.split("|").length, k]
        : k.includes("*")
          ? [2, 0, k]
          : [0, 0, k];
  const ordered = [...entries].sort(([a], [b]) => {
    const [ra, na, ka] = rank(a);
    const [rb, nb, kb] = rank(b);
    return ra - rb || na - nb || (ka < kb ? -1 : ka > kb ? 1 : 0);
  });
  for (const [rawKey, sub] of ordered) {
    const arrayKey = isArrayKey(rawKey);
    const raw = arrayKey ? rawKey.slice(0, -2) : rawKey;
    const names: string[] = [];
    if (raw === "*") names.push(...(Array.isArray(target) ? target.map((_, i) => String(i)) : Object.keys(target)));
    else if (raw.includes("|")) {
      // Alternatives name keys that are there; they do not create them.
      const present = Array.isArray(target) ? target.map((_, i) => String(i)) : Object.keys(target);
      names.push(
        ...splitUnescaped(raw, "|")
          .map(unescape)
          .filter((n) => present.includes(n)),
      );
    } else if (raw.includes("*")) {
      const p = keyPattern(raw);
      names.push(...Object.keys(target).filter((k) => matchPattern(p, k)));
    } else names.push(unescape(raw));
    for (const name of names) {
      const get = () => (Array.isArray(target) ? target[Number(name)] : target[name]);
      const set = (v: Json) => {
        if (Array.isArray(target)) {
          const i = Number(name);
          while (target.length < i) target.push(null); // no holes: JSON has none
          target[i] = v;
        } else target[name] = v;
      };
      const cur = get();
      if (isObj(sub)) {
        if (cur === undefined || cur === null) set(arrayKey ? [] : {});
        const next = get();
        // An object spec does not apply to an array (and "key[]" not to an object).
        if (arrayKey ? Array.isArray(next) : isObj(next)) defaultNode(sub, next as Obj | Json[]);
      } else if (cur === undefined || cur === null) {
        set(clone(sub));
      }
    }
  }
}

export function applyDefault(input: Json, spec: Json): Json {
  if (!isObj(spec)) throw new JoltError("a default spec is an object");
  const out = clone(input) ?? {};
  if (isObj(out) || Array.isArray(out)) defaultNode(spec, out);
  return out;
}

// ---- remove ----------------------------------------------------------------------------------

function removeNode(spec: Obj, target: Obj | Json[]): void {
  // Array indexes named by several keys are removed together, by their original positions.
  const dropIndexes = new Set<number>();
  for (const [raw, sub] of Object.entries(spec)) {
    const k = lhsKey(raw);
    const keys = Array.isArray(target) ? target.map((_, i) => String(i)) : Object.keys(target);
    const hits = keys.filter((key) => matchKey(k, key));
    if (isObj(sub)) {
      for (const h of hits) {
        const v = Array.isArray(target) ? target[Number(h)] : target[h];
        if (isObj(v) || Array.isArray(v)) removeNode(sub, v);
      }
    } else if (Array.isArray(target)) for (const h of hits) dropIndexes.add(Number(h));
    else for (const h of hits) delete target[h];
  }
  if (Array.isArray(target) && dropIndexes.size) {
    const keep = target.filter((_, i) => !dropIndexes.has(i));
    target.length = 0;
    target.push(...keep);
  }
}

export function remove(input: Json, spec: Json): Json {
  if (!isObj(spec)) throw new JoltError("a remove spec is an object");
  const out = clone(input);
  if (isObj(out) || Array.isArray(out)) removeNode(spec, out);
  return out;
}

// ---- cardinality -----------------------------------------------------------------------------

function cardinalityNode(spec: Obj, target: Obj | Json[]): void {
  const lhs = Object.keys(spec)
    .filter((k) => k !== "@")
    .map(lhsKey);
  const literals = lhs.filter((k) => k.literal);
  const computed = lhs.filter((k) => !k.literal).sort((a, b) => a.specificity - b.specificity);
  const keys = Array.isArray(target) ? target.map((_, i) => String(i)) : Object.keys(target);
  for (const key of keys) {
    const hit = literals.find((l) => l.alts[0]!.parts[0] === key) ?? computed.find((c) => matchKey(c, key));
    if (!hit) continue;
    const sub = spec[hit.raw]!;
    const get = () => (Array.isArray(target) ? target[Number(key)] : target[key])!;
    const set = (v: Json) => {
      if (Array.isArray(target)) target[Number(key)] = v;
      else target[key] = v;
    };
    if (isObj(sub)) {
      if (typeof sub["@"] === "string") set(cardinalityOf(get(), sub["@"]));
      const v = get();
      if (isObj(v) || Array.isArray(v)) cardinalityNode(sub, v);
    } else if (typeof sub === "string") set(cardinalityOf(get(), sub));
    else throw new JoltError(`cardinality for "${hit.raw}" must be ONE or MANY`);
  }
}

function cardinalityOf(v: Json, c: string): Json {
  if (c === "ONE") return Array.isArray(v) ? (v.length ? v[0]! : null) : v;
  if (c === "MANY") return Array.isArray(v) ? v : v === null ? [] : [v];
  throw new JoltError(`cardinality must be ONE or MANY, not ${c}`);
}

export function cardinality(input: Json, spec: Json): Json {
  if (!isObj(spec)) throw new JoltError("a cardinality spec is an object");
  const out = clone(input);
  if (isObj(out) || Array.isArray(out)) cardinalityNode(spec, out);
  return out;
}

// ---- sort ------------------------------------------------------------------------------------

/** Keys sorted, `~`-prefixed ones first (JOLT's Sortr), recursively. */
export function sort(input: Json): Json {
  if (Array.isArray(input)) return input.map(sort);
  if (!isObj(input)) return input;
  const keys = Object.keys(input).sort((a, b) => {
    const ta = a.startsWith("~");
    const tb = b.startsWith("~");
    if (ta !== tb) return ta ? -1 : 1;
    return a < b ? -1 : a > b ? 1 : 0;
  });
  const out: Obj = {};
  for (const k of keys) out[k] = sort(input[k]!);
  return out;
}

// ---- chain -----------------------------------------------------------------------------------

export const OPERATIONS = [
  "shift",
  "default",
  "remove",
  "cardinality",
  "sort",
  "modify-overwrite-beta",
  "modify-default-beta",
  "modify-define-beta",
] as const;

export interface ChainStep {
  operation: string;
  spec?: Json;
}

/** Checks a chain once, at load; returns problems as messages with their step index. */
export function checkChain(chain: unknown): string[] {
  if (!Array.isArray(chain)) return ["a JOLT spec is a list of { operation, spec }"];
  const problems: string[] = [];
  chain.forEach((s: unknown, i) => {
    if (!isObj(s)) return void problems.push(`[${i}]: not an object`);
    if (typeof s.operation !== "string") return void problems.push(`[${i}].operation: must be a string`);
    const op = s.operation.replace(/^com\.bazaarvoice\.jolt\./, "").toLowerCase();
    const known: Record<string, string> = {
      shiftr: "shift",
      defaultr: "default",
      removr: "remove",
      sortr: "sort",
      cardinalitytransform: "cardinality",
    };
    const name = known[op] ?? op;
    const mode = modifyMode(op);
    // Modify specs are compiled now, so a bad key or an unknown function fails the config load.
    if (mode && isObj(s.spec)) problems.push(...checkModify(s.spec, mode).map((p) => `[${i}].spec: ${p}`));
    else if (!mode && !(OPERATIONS as readonly string[]).includes(name))
      problems.push(`[${i}].operation: "${s.operation}" is not supported (supported: ${OPERATIONS.join(", ")})`);
    else if (name !== "sort" && !isObj(s.spec)) problems.push(`[${i}].spec: must be an object`);
  });
  return problems;
}

export function chainr(input: Json, chain: ChainStep[]): Json {
  let v = input;
  for (const step of chain) {
    const op = step.operation.replace(/^com\.bazaarvoice\.jolt\./, "").toLowerCase();
    const spec = step.spec ?? null;
    const mode = modifyMode(op);
    if (op === "shift" || op === "shiftr") v = shift(v, spec);
    else if (op === "default" || op === "defaultr") v = applyDefault(v, spec);
    else if (op === "remove" || op === "removr") v = remove(v, spec);
    else if (op === "cardinality" || op === "cardinalitytransform") v = cardinality(v, spec);
    else if (op === "sort" || op === "sortr") v = sort(v);
    else if (mode) v = modify(v, spec, mode);
    else throw new JoltError(`unsupported operation ${step.operation}`);
  }
  return v;
}
