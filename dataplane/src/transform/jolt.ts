/**
 * JOLT (JSON-to-JSON transformation, bazaarvoice/jolt semantics) for the `transform` middleware:
 * `shift`, `default`, `remove`, `cardinality` and `sort`; the `modify-*-beta` operations are in
 * jolt-modify.ts and the chain of `{ operation, spec }` in jolt-chain.ts. Written here because no
 * maintained JavaScript JOLT exists; measured against JOLT's own test vectors
 * (test/jolt-conformance.test.ts).
 */

import {
  JoltError,
  clone,
  evalSegment,
  frame,
  isObj,
  unescapeKey,
  keyPattern,
  lhsKey,
  lookup,
  matchKey,
  matchPattern,
  parseRef,
  reference,
  splitUnescaped,
  type Frame,
  type Json,
  type LhsKey,
  type Obj,
} from "./jolt-paths.js";

export type { Json } from "./jolt-paths.js";

// ---- shift -----------------------------------------------------------------------------------

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
      const lit = unescapeKey(raw.slice(1));
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
          .map(unescapeKey)
          .filter((n) => present.includes(n)),
      );
    } else if (raw.includes("*")) {
      const p = keyPattern(raw);
      names.push(...Object.keys(target).filter((k) => matchPattern(p, k)));
    } else names.push(unescapeKey(raw));
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
