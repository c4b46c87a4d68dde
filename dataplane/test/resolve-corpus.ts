/**
 * The generated corpus behind config-resolve-corpus.test.ts: base config trees (every example, the
 * Harmony 0.13 fixture, and a kitchen-sink tree that reaches each section the resolver handles),
 * each mutated one line at a time and in seeded random pairs, and what resolveConfig says of each
 * mutant, in a form that can be compared with a recording (no paths of this machine, no bytes of
 * the certificates, which are made afresh each run).
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { loadConfig, memoryFs } from "../src/config/load.js";
import { resolveConfig, type ResolvedConfig } from "../src/config/resolve.js";
import { buildContextFactory } from "../src/build-context.js";
import { createRegistry } from "../src/plugins/registry.js";
import { createLogger } from "../src/observability/logger.js";
import { SharedResources } from "../src/runtime/resources.js";
import { ROOT } from "./helpers.js";
import { createCa, issueLeaf, spiffe } from "../../test/network-pki.js";

/** Where the trees live: in memory only, under a root no machine has, so messages read the same everywhere. */
const VROOT = "/resolve-corpus";

/** The environment the resolver sees (management.token_env). */
const ENV = { CORPUS_ADMIN_TOKEN: "corpus-admin-token" };

/** What plugins log while they are checked (errors only); one for the whole corpus. */
const logger = createLogger("error");

export interface Base {
  name: string;
  /** Absolute (virtual) path → text. */
  files: Record<string, string>;
  main: string;
}

/** One mutant's outcome: each problem as [severity, file (relative to its tree), line, column, key, message]. */
export interface Outcome {
  case: string;
  problems: [string, string, number | null, number | null, string, string][];
  /** A digest of the resolved model (undefined config: null), so a change in what loads shows too. */
  model: string | null;
  /** What resolveConfig threw instead of reporting, if it did (a bug, but pinned like the rest). */
  threw?: string;
}

function readTree(dir: string, into: Record<string, string>, as: string): void {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) readTree(p, into, join(as, name));
    else into[join(as, name)] = readFileSync(p, "utf8");
  }
}

function diskBase(name: string, dir: string): Base {
  const root = join(VROOT, name);
  const files: Record<string, string> = {};
  readTree(dir, files, root);
  return { name, files, main: join(root, "config.toml") };
}

/**
 * Reaches what the examples do not: HTTPS with SNI, force_https, HTTP/3 and WireGuard flags, a
 * Harmony network listener, management with a token from the environment, 0.4 registration
 * tables, DIMSE endpoints on their own ports, left/right middleware, bare type names, types this
 * build lacks, two backends, a disabled pipeline, mesh ingress and egress, a required middleware.
 */
function kitchenBase(): Base {
  // The TOML and the directory are files (fixtures/resolve-kitchen); the certificates are made here.
  const base = diskBase("kitchen", join(ROOT, "dataplane/test/fixtures/resolve-kitchen"));
  const root = dirname(base.main);
  const ca = createCa("corpus CA");
  const leaf = issueLeaf(ca, [spiffe("h.example", "org-a", "gw-a")]);
  const a = issueLeaf(ca, [], "a.example");
  const b = issueLeaf(ca, [], "b.example");
  Object.assign(base.files, {
    [join(root, "tls/server.crt")]: leaf.certPem,
    [join(root, "tls/server.key")]: leaf.keyPem,
    [join(root, "tls/a.crt")]: a.certPem,
    [join(root, "tls/a.key")]: a.keyPem,
    [join(root, "tls/b.crt")]: b.certPem,
    [join(root, "tls/b.key")]: b.keyPem,
    [join(root, "h/tls.crt")]: leaf.certPem,
    [join(root, "h/tls.key")]: leaf.keyPem,
    [join(root, "h/ca.crt")]: ca.certPem,
  });
  return base;
}

export function bases(): Base[] {
  const examples = readdirSync(join(ROOT, "examples"))
    .sort()
    .filter((d) => existsSync(join(ROOT, "examples", d, "config.toml")))
    .map((d) => diskBase(`examples/${d}`, join(ROOT, "examples", d)));
  return [...examples, diskBase("harmony-0.13", join(ROOT, "dataplane/test/fixtures/harmony-0.13")), kitchenBase()];
}

/** One line of one file replaced (by "" to drop it: later lines keep their numbers). */
interface Edit {
  file: string;
  line: number;
  text: string;
  label: string;
}

const KV = /^(\s*)([A-Za-z0-9_."-]+(?:\s*\.\s*[A-Za-z0-9_"-]+)*)\s*=\s*(.+?)\s*$/;
const HEADER = /^(\s*)(\[\[?)([^\]]+?)(\]\]?)\s*$/;

/** The mutations of one line, in a fixed order. */
function lineEdits(file: string, line: number, text: string, rel: string): Edit[] {
  const trimmed = text.trim();
  if (trimmed === "" || trimmed.startsWith("#")) return [];
  const at = `${rel}:${line + 1}`;
  const edits: Edit[] = [{ file, line, text: "", label: `${at} drop` }];
  const edit = (replacement: string, what: string) =>
    edits.push({ file, line, text: replacement, label: `${at} ${what}` });
  const h = HEADER.exec(text);
  if (h) {
    if (!h[3]!.endsWith('"')) edit(`${h[1]}${h[2]}${h[3]}_x${h[4]}`, "rename table");
    return edits;
  }
  const kv = KV.exec(text);
  if (!kv) return edits;
  const [, indent, key, value] = kv as unknown as [string, string, string, string];
  const set = (v: string, what: string) => edit(`${indent}${key} = ${v}`, what);
  if (value.startsWith('"')) {
    set('"zz_undefined"', "undefined name");
    set("12", "wrong type");
    set('""', "empty");
  } else if (value.startsWith("[")) {
    if (value.startsWith('["')) set(`["zz_undefined", ${value.slice(1)}`, "undefined name");
    set('"x"', "wrong type");
    set("[]", "empty");
  } else if (value.startsWith("{")) {
    set("true", "wrong type");
    set("{}", "empty");
  } else if (value === "true" || value === "false") {
    set('"yes"', "wrong type");
    set(value === "true" ? "false" : "true", "flipped");
  } else if (/^-?\d/.test(value)) {
    set(`"${value}"`, "wrong type");
    set("0", "zero");
    if (/port/i.test(key)) set("8080", "port 8080");
  }
  return edits;
}

function apply(base: Base, edits: Edit[]): Record<string, string> {
  const files = { ...base.files };
  const byFile = new Map<string, Edit[]>();
  for (const e of edits) byFile.set(e.file, [...(byFile.get(e.file) ?? []), e]);
  for (const [file, list] of byFile) {
    const lines = files[file]!.split("\n");
    for (const e of list) lines[e.line] = e.text;
    files[file] = lines.join("\n");
  }
  return files;
}

/** A small seeded generator (mulberry32): the same pairs on every run and machine. */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const PAIRS_PER_BASE = 30;

/** Every mutant of a base: the base itself, each single-line edit, then seeded pairs on different lines. */
export function mutants(base: Base): { label: string; files: Record<string, string> }[] {
  const root = dirname(base.main);
  const singles: Edit[] = [];
  for (const file of Object.keys(base.files).sort()) {
    if (!file.endsWith(".toml")) continue;
    base.files[file]!.split("\n").forEach((text, i) => singles.push(...lineEdits(file, i, text, relative(root, file))));
  }
  const out = [{ label: "as written", files: base.files }];
  for (const e of singles) out.push({ label: e.label, files: apply(base, [e]) });
  const random = seeded(0x5eed + base.name.length * 7919);
  const seen = new Set<string>();
  for (let n = 0; n < PAIRS_PER_BASE && singles.length > 1; n++) {
    const x = singles[Math.floor(random() * singles.length)]!;
    const y = singles[Math.floor(random() * singles.length)]!;
    const label = `${x.label} + ${y.label}`;
    if ((x.file === y.file && x.line === y.line) || seen.has(label)) continue;
    seen.add(label);
    out.push({ label, files: apply(base, [x, y]) });
  }
  return out;
}

/** What the resolved model holds, with what differs between runs (certificate bytes) left out. */
function modelDigest(config: ResolvedConfig | undefined, ownPorts: unknown): string | null {
  if (!config) return null;
  const { document: _document, harmonyNetworks, ...rest } = config;
  const text = JSON.stringify(
    {
      ...rest,
      harmonyNetworks: [...harmonyNetworks.values()].map((n) => [
        n.name,
        n.domain,
        n.org,
        n.certPath,
        n.keyPath,
        n.bundlePath,
        n.directoryPath,
        n.exportPath ?? null,
      ]),
      ownPorts,
    },
    (key, v: unknown) => {
      if (v instanceof Map) return [...v.entries()];
      if (key === "plugin") return `${(v as { kind: string }).kind}:${(v as { type: string }).type}`;
      const b = v as { type?: unknown; data?: unknown };
      if (b && typeof b === "object" && b.type === "Buffer" && Array.isArray(b.data)) return "<bytes>";
      return v;
    },
  );
  return createHash("sha256").update(text).digest("hex").slice(0, 16);
}

/** What resolveConfig says of one tree. */
export function outcome(label: string, main: string, files: Record<string, string>): Outcome {
  const root = dirname(main);
  const loaded = loadConfig(main, memoryFs(files));
  const reader = (p: string) => {
    const text = files[p];
    if (text === undefined)
      throw Object.assign(new Error(`ENOENT: no such file or directory, open '${p}'`), { code: "ENOENT" });
    return Buffer.from(text);
  };
  const resources = new SharedResources();
  const buildCtx = buildContextFactory(loaded, logger, resources, reader);
  let r: ReturnType<typeof resolveConfig>;
  try {
    r = resolveConfig(loaded, createRegistry(), buildCtx, ENV);
  } catch (e) {
    return { case: label, problems: [], model: null, threw: String(e) };
  } finally {
    void resources.closeAll();
  }
  return {
    case: label,
    problems: r.problems.map((p): Outcome["problems"][number] => [
      p.severity,
      relative(root, p.file),
      p.line ?? null,
      p.column ?? null,
      p.path,
      p.message,
    ]),
    model: modelDigest(r.config, r.ownPorts),
  };
}
