/**
 * JOLT's function library for the modify operations (bazaarvoice/jolt `Strings`, `Math`,
 * `Objects`, `Lists`, `Function`), with Java's conversions where JOLT relies on them.
 */
import { isDeepStrictEqual } from "node:util";
import { isObj, type Json } from "./jolt-paths.js";

/** A modify function: its evaluated arguments in, a value or nothing (no write) out. */
export type ModifyFunction = (args: Json[]) => Json | undefined;

type Fn = ModifyFunction;

const isString = (v: Json | undefined): v is string => typeof v === "string";
const isNumber = (v: Json | undefined): v is number => typeof v === "number";
/** Java's int: JSON has one number type, so 2.0 counts as an integer here (Java: a Double). */
const isInt = (v: Json | undefined): v is number =>
  typeof v === "number" && Number.isInteger(v) && Math.abs(v) <= 2 ** 31 - 1;
const finite = (n: number): number | undefined => (Number.isFinite(n) ? n : undefined);

/** Java's Integer/Long/Double.parse for strings; numbers as they are. */
export function toNumber(v: Json | undefined): number | undefined {
  if (isNumber(v)) return v;
  if (!isString(v)) return undefined;
  const s = v.trim();
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?[fFdD]?$/.test(s)) return undefined;
  return finite(Number(s.replace(/[fFdD]$/, "")));
}

/** Java's intValue(): truncated, and kept to the int range. */
function toInt(v: Json | undefined): number | undefined {
  const n = toNumber(v);
  return n === undefined ? undefined : Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, Math.trunc(n)));
}

/** Java's longValue(); past 2^53 a JS number is no longer exact. */
function toLong(v: Json | undefined): number | undefined {
  const n = toNumber(v);
  return n === undefined ? undefined : Math.trunc(n);
}

/** Java's toString(), which concat, join and toString use: maps as {k=v}, lists as [a, b]. */
export function javaString(v: Json): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return `[${v.map(javaString).join(", ")}]`;
  if (isObj(v))
    return `{${Object.entries(v)
      .map(([k, x]) => `${k}=${javaString(x)}`)
      .join(", ")}}`;
  return String(v);
}

/** BaseFunction: one list argument is the list, several arguments are one; none or null: nothing. */
const base =
  (single: (v: Json) => Json | undefined, list: (vs: Json[]) => Json | undefined): Fn =>
  (args) => {
    if (args.length !== 1) return args.length ? list(args) : undefined;
    const v = args[0]!;
    if (Array.isArray(v)) return v.length ? list(v) : undefined;
    return v === null ? undefined : single(v);
  };

/** SingleFunction: element by element over a list, keeping what it cannot convert. */
const each = (f: (v: Json) => Json | undefined): Fn => base(f, (vs) => vs.map((v) => f(v) ?? v));

/** ListFunction: works on a list (or several arguments) only. */
const ofList = (f: (vs: Json[]) => Json | undefined): Fn => base(() => undefined, f);

/** ArgDrivenFunction: the first argument steers (separator, index, digits), the rest is the data. */
const steered =
  <S extends Json>(
    is: (v: Json | undefined) => v is S,
    single: (s: S, v: Json) => Json | undefined,
    list: (s: S, vs: Json[]) => Json | undefined,
  ): Fn =>
  (args) => {
    const a = args.length === 1 && Array.isArray(args[0]) ? args[0] : args;
    const s = a[0];
    if (a.length < 2 || !is(s)) return undefined;
    if (a.length > 2) return list(s, a.slice(1));
    const v = a[1]!;
    return Array.isArray(v) ? list(s, v) : single(s, v);
  };

const steeredEach = <S extends Json>(is: (v: Json | undefined) => v is S, f: (s: S, v: Json) => Json | undefined) =>
  steered(is, f, (s, vs) => vs.map((v) => f(s, v) ?? v));
const steeredList = <S extends Json>(is: (v: Json | undefined) => v is S, f: (s: S, vs: Json[]) => Json | undefined) =>
  steered(is, () => undefined, f);

/** SquashFunction: the one argument, or all of them as a list. */
const squash =
  (f: (v: Json) => Json): Fn =>
  (args) =>
    args.length === 0 ? undefined : args.length > 1 ? f(args) : args[0] === null ? undefined : f(args[0]!);

/** The value itself when it passes (JOLT's isPresent/notNull/isNull shape), else nothing. */
const when =
  (test: (v: Json) => boolean): Fn =>
  (args) =>
    args.length > 0 && test(args[0]!) ? args[0] : undefined;

/** Java's String.trim(): only characters up to U+0020, not all Unicode whitespace. */
function javaTrim(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && s.charCodeAt(a) <= 32) a++;
  while (b > a && s.charCodeAt(b - 1) <= 32) b--;
  return s.slice(a, b);
}

/** Java's String.split(regex): no leading empty piece for an empty match, no trailing empties. */
function javaSplit(s: string, regex: string): string[] {
  const out: string[] = [];
  let last = 0;
  let found = false;
  for (const m of s.matchAll(new RegExp(regex, "g"))) {
    if (last === 0 && m.index === 0 && m[0] === "") continue;
    found = true;
    out.push(s.slice(last, m.index));
    last = m.index + m[0].length;
  }
  if (!found) return [s];
  out.push(s.slice(last));
  while (out.length && out[out.length - 1] === "") out.pop();
  return out;
}

/**
 * Java's join: null and empty pieces are skipped, and a piece gets a separator after it unless it
 * is the last argument (so join('_', a, null) is "a_", as in JOLT).
 */
function joinJava(sep: string, vs: Json[]): string {
  let out = "";
  vs.forEach((v, i) => {
    const s = v === null ? "" : javaString(v);
    if (s !== "") out += s + (i < vs.length - 1 ? sep : "");
  });
  return out;
}

const pad =
  (left: boolean) =>
  (src: string, rest: Json[]): Json | undefined => {
    const [width, fill] = rest;
    if (!isInt(width) || !isString(fill) || width <= 0 || width > 500 || fill.length !== 1) return undefined;
    if (width <= src.length) return src;
    const padding = fill.repeat(width - src.length);
    return left ? padding + src : src + padding;
  };

function substring(vs: Json[]): Json | undefined {
  const [s, start, end] = vs;
  if (vs.length !== 3 || !isString(s) || !isInt(start) || !isInt(end)) return undefined;
  return start >= end || start < 0 || end > s.length ? undefined : s.substring(start, end);
}

/** min/max over numbers and numeric strings; other values are ignored. */
const extremum = (pick: (a: number, b: number) => number) =>
  base(
    (v) => (isNumber(v) ? v : undefined),
    (vs) => {
      const ns = vs.map(toNumber).filter(isNumber);
      return ns.length ? ns.reduce((a, b) => pick(a, b)) : undefined;
    },
  );

function divide(vs: Json[]): number | undefined {
  if (vs.length !== 2) return undefined;
  const n = toNumber(vs[0]);
  const d = toNumber(vs[1]);
  return n === undefined || d === undefined || d === 0 ? undefined : finite(n / d);
}

const sum = (convert: (v: Json) => number | undefined) => (vs: Json[]) =>
  vs.reduce<number>((s, v) => s + (convert(v) ?? 0), 0);

const subtract = (is: (v: Json | undefined) => v is number) => (vs: Json[]) => {
  const [a, b] = vs;
  return vs.length === 2 && is(a) && is(b) ? finite(a - b) : undefined;
};

function squashNulls(v: Json): Json {
  if (Array.isArray(v)) return v.filter((x) => x !== null);
  if (isObj(v)) return Object.fromEntries<Json>(Object.entries(v).filter(([, x]) => x !== null));
  return v;
}

function squashNullsDeep(v: Json): Json {
  const s = squashNulls(v);
  if (Array.isArray(s)) return s.map(squashNullsDeep);
  if (isObj(s)) return Object.fromEntries<Json>(Object.entries(s).map(([k, x]) => [k, squashNullsDeep(x)]));
  return s;
}

function squashDuplicates(v: Json): Json {
  if (!Array.isArray(v)) return v;
  return v.filter((x, i) => v.findIndex((y) => isDeepStrictEqual(x, y)) === i);
}

/** Java's Arrays.sort: one kind of comparable value (strings, numbers, booleans), else nothing. */
function sortJava(vs: Json[]): Json | undefined {
  const copy = [...vs];
  if (copy.length < 2 || copy.every(isString)) return copy.sort();
  if (copy.every(isNumber)) return copy.sort((a, b) => a - b);
  if (copy.every((x) => typeof x === "boolean")) return copy.sort((a, b) => Number(a) - Number(b));
  return undefined;
}

function size(args: Json[]): Json | undefined {
  if (args.length !== 1) return args.length || undefined;
  const v = args[0]!;
  if (Array.isArray(v) || isString(v)) return v.length;
  return isObj(v) ? Object.keys(v).length : undefined;
}

/**
 * JOLT's stock functions. Numbers: JSON has one number type here, so where Java tells int, long
 * and double apart (intSubtract wants two ints, doubleSubtract two doubles, longSubtract two longs,
 * 2.0 is a Double) this library goes by value: an integer-valued number is an int or a long, any
 * number a double, and 2.0 prints as 2. min/max compare numerically (JOLT compares through
 * longValue(), so max(2, 2.5) is 2 there). isString...isMap are not in JOLT's stock set; they
 * follow isNull's shape: the value if it is one, else nothing.
 */
export const STOCK_FUNCTIONS: Readonly<Record<string, Fn>> = {
  toLower: each((v) => (isString(v) ? v.toLowerCase() : undefined)),
  toUpper: each((v) => (isString(v) ? v.toUpperCase() : undefined)),
  trim: each((v) => (isString(v) ? javaTrim(v) : undefined)),
  concat: ofList((vs) => vs.map((v) => (v === null ? "" : javaString(v))).join("")),
  join: steeredList(isString, joinJava),
  split: steeredEach(isString, (sep, v) => (isString(v) ? javaSplit(v, sep) : undefined)),
  substring: ofList(substring),
  leftPad: steeredList(isString, pad(true)),
  rightPad: steeredList(isString, pad(false)),

  min: extremum(Math.min),
  max: extremum(Math.max),
  abs: each((v) => {
    const n = toNumber(v);
    return n === undefined ? undefined : Math.abs(n);
  }),
  avg: ofList((vs) => {
    const ns = vs.map(toNumber).filter(isNumber);
    return ns.length ? finite(ns.reduce((a, b) => a + b) / ns.length) : undefined;
  }),
  // Java int arithmetic wraps around.
  intSum: ofList((vs) => sum(toInt)(vs) | 0),
  doubleSum: ofList((vs) => finite(sum(toNumber)(vs))),
  longSum: ofList((vs) => finite(sum(toLong)(vs))),
  intSubtract: ofList((vs) => {
    const r = subtract(isInt)(vs);
    return r === undefined ? undefined : r | 0;
  }),
  doubleSubtract: ofList(subtract(isNumber)),
  longSubtract: ofList(subtract((v): v is number => Number.isSafeInteger(v))),
  divide: ofList(divide),
  // BigDecimal's HALF_UP on the double's exact value, which is what toFixed rounds.
  divideAndRound: steeredList(isInt, (digits, vs) => {
    const q = divide(vs);
    return q === undefined || digits < 0 || digits > 100 ? undefined : Number(q.toFixed(digits));
  }),

  toInteger: each(toInt),
  toDouble: each(toNumber),
  toLong: each(toLong),
  toBoolean: each((v) =>
    typeof v === "boolean" ? v : isString(v) && /^(true|false)$/i.test(v) ? v.toLowerCase() === "true" : undefined,
  ),
  toString: each((v) => javaString(v)),
  size,

  squashNulls: squash(squashNulls),
  recursivelySquashNulls: squash(squashNullsDeep),
  squashDuplicates: squash(squashDuplicates),

  noop: () => undefined,
  isPresent: when(() => true),
  notNull: when((v) => v !== null),
  isNull: when((v) => v === null),
  isString: when(isString),
  isNumber: when(isNumber),
  isInteger: when(isInt),
  isLong: when((v) => Number.isSafeInteger(v)),
  isDouble: when(isNumber),
  isBoolean: when((v) => typeof v === "boolean"),
  isList: when(Array.isArray),
  isMap: when(isObj),

  firstElement: ofList((vs) => (vs.length ? vs[0] : undefined)),
  lastElement: ofList((vs) => (vs.length ? vs[vs.length - 1] : undefined)),
  elementAt: steeredList(isInt, (i, vs) => (i >= 0 && i < vs.length ? vs[i] : undefined)),
  toList: base(
    (v) => [v],
    (vs) => vs,
  ),
  sort: base((v) => v, sortJava),
};
