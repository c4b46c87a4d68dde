/**
 * JOLT's modify operations (bazaarvoice/jolt `Modifier`): `modify-overwrite-beta`,
 * `modify-default-beta` and `modify-define-beta`, with JOLT's function library. The spec walks the
 * input like a default spec; each leaf computes a value (a literal, an `@(n,path)` lookup in the
 * input, a `^path` lookup in a context, or `=function(args)`) and writes it where it stands. The
 * three differ only in when the write goes through: always, over a missing or null value, or
 * only where there is nothing. Measured against JOLT's own vectors (test/jolt-conformance.test.ts).
 */
import {
  JoltError,
  keyPattern,
  lookup,
  matchPattern,
  readPath,
  type Frame,
  type Json,
  type KeyPattern,
} from "./jolt-paths.js";
import { STOCK_FUNCTIONS, javaString, toNumber, type ModifyFunction } from "./jolt-functions.js";

export { STOCK_FUNCTIONS, type ModifyFunction } from "./jolt-functions.js";

type Obj = { [k: string]: Json };

export type ModifyMode = "overwrite" | "default" | "define";

const OPERATION_MODES: Readonly<Record<string, ModifyMode>> = {
  "modify-overwrite-beta": "overwrite",
  "modify-default-beta": "default",
  "modify-define-beta": "define",
  modifier$overwritr: "overwrite",
  modifier$defaultr: "default",
  modifier$definr: "define",
};

/** The mode an operation name stands for (lower case, without `com.bazaarvoice.jolt.`), if any. */
export function modifyMode(operation: string): ModifyMode | undefined {
  return Object.hasOwn(OPERATION_MODES, operation) ? OPERATION_MODES[operation] : undefined;
}

/** The evaluated arguments in; a value, or undefined for "no value" (nothing is written). */

export interface ModifyOptions {
  /** What `^path` reads (JOLT's transform context). */
  context?: Json;
  /** Replaces the stock functions (JOLT's `Modifier(spec, functions)`). */
  functions?: Readonly<Record<string, ModifyFunction>>;
}

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const clone = <T extends Json>(v: T): T => structuredClone(v);

// ---- the compiled spec -----------------------------------------------------------------------

const STAR_ALL = 5;

type KeyMatch =
  | { kind: "literal"; key: string }
  | { kind: "index"; index: number }
  /** rank: JOLT's order among wildcards (more stars first, the lone "*" last). */
  | { kind: "star"; pattern: KeyPattern; text: string; rank: number };

type Arg = { kind: "literal"; value: Json } | { kind: "self"; expr: string } | { kind: "context"; path: string };

/** `args` absent: `=fn` without parentheses, called with the value the key matched. */
type Evaluator = { kind: "value"; arg: Arg } | { kind: "call"; name: string; args?: Arg[] };

interface NodeBase {
  path: string;
  mode: ModifyMode;
  /** A trailing `?`: only where the input has the key. */
  check: boolean;
  match: KeyMatch;
}

interface Leaf extends NodeBase {
  kind: "leaf";
  /** Tried in order; the first that yields a value is written. */
  evaluators: Evaluator[];
}

interface Composite extends NodeBase {
  kind: "composite";
  /** What the input here must be: decided by the keys (indexes, names, or only "*"). */
  shape: "list" | "map" | "any";
  /** The largest index the spec names without `?`: a list is padded to it. */
  maxIndex: number;
  literals: Map<string, Node>;
  computed: Node[];
  /** DEFINR over a list: an index the spec names shadows the wildcards there (JOLT's CONFLICT). */
  exclusive: boolean;
}

type Node = Leaf | Composite;

const at = (path: string) => (path ? `at ${path}` : "at the top level");

const MODE_PREFIX: Record<string, ModifyMode> = { "+": "overwrite", "~": "default", _: "define" };

function compileNode(raw: string, rhs: Json, inherited: ModifyMode, parentPath: string): Node {
  const path = parentPath ? `${parentPath}.${raw}` : raw;
  let key = raw;
  // "+key", "~key", "_key" switch the mode for this key and below. A key that really starts with
  // one of them (FHIR's "_birthDate") is escaped: "\\_birthDate" in the JSON spec.
  const prefixed = MODE_PREFIX[key.charAt(0)];
  const mode = prefixed ?? inherited;
  if (prefixed) key = key.slice(1);
  const check = raw.length > 1 && key.endsWith("?") && !key.endsWith("\\?");
  if (check) key = key.slice(0, -1);
  const head = { path, mode, check, match: keyMatch(key, path) };
  if (isObj(rhs) && Object.keys(rhs).length > 0) return compileComposite(head, rhs);
  return { ...head, kind: "leaf", evaluators: evaluators(rhs, path) };
}

function keyMatch(key: string, path: string): KeyMatch {
  // Escaped characters do not decide what kind of key this is.
  const bare = key.replace(/\\./g, "");
  const star = (rank: number): KeyMatch => ({ kind: "star", pattern: keyPattern(key), text: key, rank });
  if (bare === "*") return star(STAR_ALL);
  if (bare.includes("[")) {
    const m = /^\[(\d+)\]$/.exec(key);
    if (!m) throw new JoltError(`only an explicit array index such as [0] can be modified ${at(path)}`);
    return { kind: "index", index: Number(m[1]) };
  }
  if (/[@$&]/.test(bare)) throw new JoltError(`@, $ and & have no meaning in a modify key (escape them) ${at(path)}`);
  if (bare.includes("*")) {
    const stars = bare.split("*").length - 1;
    return star(stars === 1 ? 4 : stars === 2 ? 3 : 2);
  }
  if (bare.includes("#")) throw new JoltError(`# has no meaning in a modify key (escape it) ${at(path)}`);
  return { kind: "literal", key: key.replace(/\\(.)/g, "$1") };
}

function compileComposite(head: NodeBase, spec: Obj): Composite {
  const literals = new Map<string, Node>();
  const computed: Node[] = [];
  let mapKey: string | undefined;
  let listKey: string | undefined;
  let maxIndex = -1;
  for (const [raw, rhs] of Object.entries(spec)) {
    const child = compileNode(raw, rhs, head.mode, head.path);
    const m = child.match;
    if (m.kind === "literal") {
      mapKey ??= raw;
      literals.set(m.key, child);
    } else if (m.kind === "index") {
      listKey ??= raw;
      // "[4]?" only touches an index that is there, so it does not grow the list.
      if (!child.check) maxIndex = Math.max(maxIndex, m.index);
      literals.set(String(m.index), child);
    } else {
      // "*" alone fits both a list and an object; "a*" only names object keys.
      if (m.rank !== STAR_ALL) mapKey ??= raw;
      computed.push(child);
    }
    if (mapKey !== undefined && listKey !== undefined)
      throw new JoltError(`array indexes ("${listKey}") mixed with object keys ("${mapKey}") ${at(head.path)}`);
  }
  computed.sort(precedence);
  const shape = listKey !== undefined ? "list" : mapKey !== undefined ? "map" : "any";
  const exclusive = head.mode === "define" && shape === "list" && literals.size > 0 && computed.length > 0;
  return { ...head, kind: "composite", shape, maxIndex, literals, computed, exclusive };
}

/**
 * JOLT's ComputedKeysComparator: by kind of wildcard, then the longer pattern, then by text.
 * (The computed children are exactly the wildcard keys.)
 */
function precedence(a: Node, b: Node): number {
  const ma = a.match as Extract<KeyMatch, { kind: "star" }>;
  const mb = b.match as Extract<KeyMatch, { kind: "star" }>;
  if (ma.rank !== mb.rank) return ma.rank - mb.rank;
  if (ma.text.length !== mb.text.length) return mb.text.length - ma.text.length;
  return ma.text < mb.text ? -1 : ma.text > mb.text ? 1 : 0;
}

function evaluators(rhs: Json, path: string): Evaluator[] {
  if (typeof rhs === "string") return [evaluator(rhs, path)];
  // A list is a list of fallbacks; an empty list is a literal.
  if (Array.isArray(rhs) && rhs.length > 0)
    return rhs.map((r) => (typeof r === "string" ? evaluator(r, path) : { kind: "value", arg: literal(r) }));
  return [{ kind: "value", arg: literal(rhs) }];
}

const literal = (value: Json): Arg => ({ kind: "literal", value });

function evaluator(rhs: string, path: string): Evaluator {
  if (!rhs.startsWith("=")) return { kind: "value", arg: argument(rhs, false, path) };
  const body = rhs.slice(1);
  if (!body.includes("(") && !body.endsWith(")")) return { kind: "call", name: body };
  const open = body.indexOf("(");
  if (open < 1 || !body.endsWith(")")) throw new JoltError(`"${rhs}" is not =name or =name(args) ${at(path)}`);
  const args = splitArgs(body.slice(open + 1, -1)).map((a) => argument(a, true, path));
  return { kind: "call", name: body.slice(0, open), args };
}

/** JOLT's parseFunctionArgs: commas split, except inside '...' or @(...). */
function splitArgs(text: string): string[] {
  const out: string[] = [];
  let cur = "";
  let inParens = false;
  let inQuotes = false;
  for (const c of text) {
    if (c === "'") inQuotes = !inQuotes;
    else if (!inQuotes && (c === "(" || c === ")")) inParens = c === "(";
    else if (c === "," && !inParens && !inQuotes) {
      out.push(cur.trim());
      cur = "";
      continue;
    }
    cur += c;
  }
  out.push(cur.trim());
  return out;
}

/** `^path` reads the context, `@...` the input; anything else is a literal. */
function argument(text: string, inCall: boolean, path: string): Arg {
  if (text.startsWith("^")) return { kind: "context", path: text.slice(1) };
  if (text.startsWith("@")) {
    // One @ element only: "@(1,a.b)", "@2", "@name" (JOLT rejects "@a.b" and a bare "@").
    if (!/^@(\([^()]*\)|[^.()]+)$/.test(text)) throw new JoltError(`"${text}" is not an @ lookup ${at(path)}`);
    return { kind: "self", expr: text };
  }
  return literal(inCall ? parseLiteral(text) : text);
}

/** A literal inside =fn(...): '' quotes a string, true/false, numbers; empty is null. */
function parseLiteral(text: string): Json {
  if (text === "") return null;
  if (text.length >= 2 && text.startsWith("'") && text.endsWith("'")) return text.slice(1, -1);
  if (/^(true|false)$/i.test(text)) return text.toLowerCase() === "true";
  return toNumber(text) ?? text;
}

// ---- running ---------------------------------------------------------------------------------

/** A level of the walk: the frame `@(n)` and `&n` see, plus the original size of a list. */
interface Step extends Frame {
  /** Set when the value is a list: indexes from here on were padding, not input. */
  origSize?: number;
}

interface Run {
  context: Json | undefined;
  functions: Readonly<Record<string, ModifyFunction>>;
}

const step = (key: string, captures: string[], value: Json, origSize?: number): Step => ({
  key,
  captures,
  value,
  matched: 0,
  origSize,
});

const top = (stack: Step[]): Step => stack[stack.length - 1]!;

/** JOLT's ModifierSpec.apply: false when the key does not match. `value` undefined: missing. */
function applyNode(node: Node, key: string, value: Json | undefined, stack: Step[], run: Run): boolean {
  const captures = matchKey(node.match, key, top(stack));
  if (!captures) return false;
  if (!node.check || value !== undefined) {
    if (node.kind === "leaf") applyLeaf(node, key, value, captures, stack, run);
    else applyComposite(node, key, value, captures, stack, run);
  }
  return true;
}

function matchKey(m: KeyMatch, key: string, parent: Step): string[] | undefined {
  if (m.kind === "literal") return key === m.key ? [key] : undefined;
  // An index matches only inside a list.
  if (m.kind === "index") return parent.origSize !== undefined && key === String(m.index) ? [key] : undefined;
  return m.rank === STAR_ALL ? [key] : matchPattern(m.pattern, key);
}

function applyLeaf(node: Leaf, key: string, value: Json | undefined, caps: string[], stack: Step[], run: Run): void {
  const here = [...stack, step(key, caps, value ?? null)];
  for (const e of node.evaluators) {
    const out = evaluate(e, value, here, run);
    // NaN and Infinity have no JSON form: no value.
    if (out !== undefined && !(typeof out === "number" && !Number.isFinite(out))) {
      write(top(stack), key, clone(out), node.mode);
      return;
    }
  }
}

function applyComposite(
  node: Composite,
  key: string,
  value: Json | undefined,
  caps: string[],
  stack: Step[],
  run: Run,
): void {
  let input = value ?? null;
  const fits =
    node.shape === "list"
      ? input === null || Array.isArray(input)
      : node.shape === "map"
        ? input === null || isObj(input)
        : input !== null;
  // Input of the wrong shape is left alone: JOLT does not fail on data.
  if (!fits) return;
  if (input === null) {
    const made = node.shape === "list" ? [] : {};
    if (write(top(stack), key, made, node.mode)) input = made;
  }
  let origSize: number | undefined;
  if (Array.isArray(input)) {
    origSize = input.length;
    // Pad up to the largest index the spec names, so each of them has a slot to fill.
    while (node.shape === "list" && input.length <= node.maxIndex) input.push(null);
  }
  if (input !== null) children(node, input, [...stack, step(key, caps, input, origSize)], run);
}

/** JOLT's execution strategies: the spec's literal keys (present or not), then each input key. */
function children(node: Composite, input: Json, stack: Step[], run: Run): void {
  const origSize = top(stack).origSize ?? 0;
  const slot = (key: string): Json | undefined => {
    if (isObj(input)) return Object.hasOwn(input, key) ? input[key] : undefined;
    if (!Array.isArray(input) || !/^\d+$/.test(key)) return undefined;
    const i = Number(key);
    // A padded slot is missing, not null: "?" keys skip it and DEFINR may fill it.
    return i >= input.length || (input[i] === null && i >= origSize) ? undefined : input[i];
  };
  // A scalar (only a spec of "*" alone takes one) is matched by its text, with no value.
  const keys = () =>
    isObj(input) ? Object.keys(input) : Array.isArray(input) ? input.map((_, i) => String(i)) : [javaString(input)];
  const toComputed = (key: string) => {
    for (const c of node.computed) if (applyNode(c, key, slot(key), stack, run)) break;
  };
  if (node.exclusive) {
    for (const key of keys()) {
      const lit = node.literals.get(key);
      if (lit) applyNode(lit, key, slot(key), stack, run);
      else toComputed(key);
    }
    return;
  }
  for (const [key, lit] of node.literals) applyNode(lit, key, slot(key), stack, run);
  // Keys the literals just added are matched too, as in JOLT.
  for (const key of keys()) toComputed(key);
}

/** JOLT's OpMode: overwrite always; default over missing or null; define only where nothing is. */
function write(parent: Step, key: string, value: Json, mode: ModifyMode): boolean {
  const target = parent.value;
  if (isObj(target)) {
    const has = Object.hasOwn(target, key);
    if ((mode === "default" && has && target[key] !== null) || (mode === "define" && has)) return false;
    // defineProperty: a "__proto__" key is data here, never the object's prototype.
    Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
    return true;
  }
  if (!Array.isArray(target) || parent.origSize === undefined || !/^\d+$/.test(key)) return false;
  const i = Number(key);
  if (i >= target.length) return false;
  if (mode === "default" && target[i] !== null) return false;
  // DEFINR fills only slots the input did not have.
  if (mode === "define" && (i < parent.origSize || target[i] !== null)) return false;
  target[i] = value;
  return true;
}

/** One fallback: a value, or undefined for none. A function that throws has no value (JOLT). */
function evaluate(e: Evaluator, value: Json | undefined, stack: Step[], run: Run): Json | undefined {
  try {
    if (e.kind === "value") return argValue(e.arg, stack, run);
    const fn = Object.hasOwn(run.functions, e.name) ? run.functions[e.name] : undefined;
    // An unknown function has no value at run time, as in JOLT; checkModify reports it at load.
    if (!fn) return undefined;
    if (!e.args) return fn(value === undefined ? [] : [value]);
    if (e.args.length === 1) {
      const v = argValue(e.args[0]!, stack, run);
      return fn(v === undefined ? [] : [v]);
    }
    // Several arguments: a missing one is passed as null.
    return fn(e.args.map((a) => argValue(a, stack, run) ?? null));
  } catch {
    return undefined;
  }
}

function argValue(a: Arg, stack: Step[], run: Run): Json | undefined {
  if (a.kind === "literal") return a.value;
  if (a.kind === "self") return lookup(stack, a.expr);
  return run.context === undefined ? undefined : readPath(run.context, a.path, stack);
}

// ---- entry points ----------------------------------------------------------------------------

/** Specs compile once: chainr runs the same spec object for every body. */
const compiled = new WeakMap<object, Partial<Record<ModifyMode, Composite>>>();

function compile(spec: Json, mode: ModifyMode): Composite {
  if (!isObj(spec)) throw new JoltError("a modify spec is an object");
  const byMode = compiled.get(spec) ?? {};
  const root =
    byMode[mode] ?? compileComposite({ path: "", mode, check: false, match: { kind: "literal", key: "root" } }, spec);
  byMode[mode] = root;
  compiled.set(spec, byMode);
  return root;
}

/** Runs a modify spec over a copy of the input; a bad spec throws JoltError, data never does. */
export function modify(input: Json, spec: Json, mode: ModifyMode, options: ModifyOptions = {}): Json {
  const root = compile(spec, mode);
  const doc = clone(input);
  const run: Run = { context: options.context, functions: options.functions ?? STOCK_FUNCTIONS };
  // Modified in place, as JOLT does: later keys see what earlier keys wrote.
  applyNode(root, "root", doc, [step("root", ["root"], doc)], run);
  return doc;
}

/** Problems with a spec, found at load: what compiling rejects, and functions that do not exist. */
export function checkModify(spec: Json, mode: ModifyMode): string[] {
  let root: Composite;
  try {
    root = compile(spec, mode);
  } catch (e) {
    return [(e as Error).message];
  }
  const problems: string[] = [];
  const visit = (n: Node): void => {
    if (n.kind === "composite") return [...n.literals.values(), ...n.computed].forEach(visit);
    for (const e of n.evaluators)
      if (e.kind === "call" && !Object.hasOwn(STOCK_FUNCTIONS, e.name))
        problems.push(`unknown function "${e.name}" ${at(n.path)}`);
  };
  visit(root);
  return problems;
}
