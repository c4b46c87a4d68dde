/**
 * Reads Harmony TOML from disk: the main file, then every *.toml in `proxy.pipelines_path`,
 * `proxy.transforms_path` and `proxy.mesh_path`, merged into one raw document. Nothing here judges
 * the content beyond TOML syntax and names defined twice; that is resolve.ts's job. Every value
 * keeps a way back to the file and line it came from.
 *
 * A named table defined in two files is merged the way Harmony did (HashMap::extend: the later
 * file's entry replaces the earlier one), files read in name order after the main file. Identical
 * redefinitions pass silently; a differing one is a warning naming both places, since it usually
 * means a copied pipeline file that drifted.
 */
import { isDeepStrictEqual } from "node:util";
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";
import TOML from "@iarna/toml";
import { joinPath, locateKeys, type KeyPositions, type Position } from "./toml-locator.js";
import { displayPath, type Problem } from "./problems.js";

/** Sections that extra files may contribute named entries to. */
const MERGEABLE = [
  "network",
  "endpoints",
  "backends",
  "pipelines",
  "middleware",
  "middleware_types",
  "services",
  "targets",
  "policies",
  "rules",
  "mesh",
  "peers",
  "authentications",
  "remote_ingress",
  "provider",
  "ingress",
  "egress",
] as const;

export interface SourceFile {
  file: string;
  text: string;
  positions: KeyPositions;
}

export interface LoadedConfig {
  mainFile: string;
  baseDir: string;
  pipelinesDir: string;
  transformsDir: string;
  meshDir: string;
  raw: Record<string, unknown>;
  sources: SourceFile[];
  /** sha256 over every TOML file read (names and content), in a stable order. */
  hash: string;
  problems: Problem[];
  locate: (path: readonly (string | number)[]) => { file: string; line?: number; column?: number };
  /** Each named table (`section` and name, joined as keys are) and the file whose definition is in force. */
  definitions: ReadonlyMap<string, string>;
}

type Table = Record<string, unknown>;
const isTable = (v: unknown): v is Table => typeof v === "object" && v !== null && !Array.isArray(v);

/** Where config files come from: the disk, or memory (the operator validates what it renders). */
export interface ConfigFs {
  readFile(path: string): string;
  /** Names of the regular files in `dir`, or undefined when there is no such directory. */
  listFiles(dir: string): string[] | undefined;
}

export const diskFs: ConfigFs = {
  readFile: (p) => readFileSync(p, "utf8"),
  listFiles: (dir) => {
    try {
      if (!statSync(dir).isDirectory()) return undefined;
      return readdirSync(dir).filter((n) => {
        try {
          return statSync(join(dir, n)).isFile();
        } catch {
          return false;
        }
      });
    } catch {
      return undefined; // A missing pipelines or transforms directory simply contributes nothing.
    }
  },
};

/** A config tree held in memory, keyed by absolute path. */
export function memoryFs(files: Record<string, string>): ConfigFs {
  return {
    readFile: (p) => {
      const text = files[resolve(p)];
      if (text === undefined) throw Object.assign(new Error(`ENOENT: ${p}`), { code: "ENOENT" });
      return text;
    },
    listFiles: (dir) => {
      const d = resolve(dir);
      const names = Object.keys(files)
        .filter((f) => dirname(f) === d)
        .map((f) => basename(f));
      return names.length ? names : undefined;
    },
  };
}

export function loadConfig(mainFile: string, fs: ConfigFs = diskFs): LoadedConfig {
  const main = resolve(mainFile);
  const baseDir = dirname(main);
  const problems: Problem[] = [];
  const sources: SourceFile[] = [];
  /** `section\0name` → file that defined it, for duplicate detection and locating. */
  const origins = new Map<string, string>();

  const raw: Table = {};
  const mainSrc = readToml(fs, main, problems);
  if (mainSrc) {
    sources.push(mainSrc.source);
    Object.assign(raw, mainSrc.data);
    for (const section of MERGEABLE) {
      const t = mainSrc.data[section];
      if (isTable(t)) for (const name of Object.keys(t)) origins.set(joinPath([section, name]), main);
    }
  }

  const proxy = isTable(raw.proxy) ? raw.proxy : {};
  const dirOption = (key: string, fallback: string): string => {
    const v = proxy[key];
    const p = typeof v === "string" && v.length > 0 ? v : fallback;
    return isAbsolute(p) ? p : join(baseDir, p);
  };
  const pipelinesDir = dirOption("pipelines_path", "pipelines");
  const transformsDir = dirOption("transforms_path", "transforms");
  const meshDir = dirOption("mesh_path", "mesh");

  for (const file of extraConfigFiles(fs, main, { pipelinesDir, transformsDir, meshDir })) {
    const src = readToml(fs, file, problems);
    if (!src) continue;
    sources.push(src.source);
    for (const [section, value] of Object.entries(src.data)) {
      if (!(MERGEABLE as readonly string[]).includes(section)) {
        const pos = src.source.positions.get(joinPath([section]));
        problems.push({
          severity: "warning",
          file,
          ...pos,
          path: section,
          message: `[${section}] is only read from the main file (${rel(main)}); ignored here`,
        });
        continue;
      }
      if (!isTable(value)) continue;
      const target = isTable(raw[section]) ? raw[section] : (raw[section] = {});
      for (const [name, entry] of Object.entries(value)) {
        const key = joinPath([section, name]);
        const prev = origins.get(key);
        if (prev && isDeepStrictEqual(target[name], entry)) continue; // same table again: nothing to say
        if (prev) {
          const prevPos = sources.find((s) => s.file === prev)?.positions.get(key);
          const pos = src.source.positions.get(key);
          problems.push({
            severity: "warning",
            file,
            ...pos,
            path: displayPath([section, name]),
            message:
              `also defined in ${rel(prev)}${prevPos ? `:${prevPos.line}` : ""} with different content; ` +
              `${rel(file)}${pos ? `:${pos.line}` : ""} is read later and wins (as in Harmony)`,
          });
        }
        origins.set(key, file);
        target[name] = entry;
      }
    }
  }

  const locate = (path: readonly (string | number)[]) => {
    const parts = path.map(String);
    const file = parts.length >= 2 ? (origins.get(joinPath(parts.slice(0, 2))) ?? main) : main;
    const positions = sources.find((s) => s.file === file)?.positions;
    let pos: Position | undefined;
    for (let n = parts.length; n > 0 && !pos; n--) pos = positions?.get(joinPath(parts.slice(0, n)));
    return { file, ...pos };
  };

  return {
    mainFile: main,
    baseDir,
    pipelinesDir,
    transformsDir,
    meshDir,
    raw,
    sources,
    hash: configHash(sources),
    problems,
    locate,
    definitions: origins,
  };
}

/** The config hash: sha256 over each file read (name and text), main file first, the others by path. */
export function configHash(sources: readonly { file: string; text: string }[]): string {
  const hash = createHash("sha256");
  for (const s of sources) hash.update(basename(s.file)).update("\0").update(s.text).update("\0");
  return hash.digest("hex");
}

/** The files besides the main one that a config with these directories reads, in the order it reads them. */
export function extraConfigFiles(
  fs: ConfigFs,
  mainFile: string,
  dirs: Pick<LoadedConfig, "pipelinesDir" | "transformsDir" | "meshDir">,
): string[] {
  const extraFiles = new Set<string>();
  for (const dir of [dirs.pipelinesDir, dirs.transformsDir, dirs.meshDir]) {
    for (const f of listToml(fs, dir)) if (f !== mainFile) extraFiles.add(f);
  }
  return [...extraFiles].sort();
}

function rel(file: string): string {
  const r = relative(process.cwd(), file);
  return r.startsWith("..") ? file : r;
}

function listToml(fs: ConfigFs, dir: string): string[] {
  return (fs.listFiles(dir) ?? []).filter((f) => f.endsWith(".toml") && !f.startsWith(".")).map((f) => join(dir, f));
}

function readToml(fs: ConfigFs, file: string, problems: Problem[]): { data: Table; source: SourceFile } | undefined {
  let text: string;
  try {
    text = fs.readFile(file);
  } catch (e) {
    problems.push({
      severity: "error",
      file,
      path: "",
      message: `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
    });
    return undefined;
  }
  try {
    const data = TOML.parse(text) as Table;
    // @iarna/toml returns objects with a null-ish prototype chain and Date subclasses; a JSON
    // round trip would lose dates, so normalise prototypes only.
    return { data: plain(data) as Table, source: { file, text, positions: locateKeys(text) } };
  } catch (e) {
    const err = e as { line?: number; col?: number; message: string };
    problems.push({
      severity: "error",
      file,
      ...(err.line !== undefined ? { line: err.line + 1, column: (err.col ?? 0) + 1 } : {}),
      path: "",
      message: `TOML syntax: ${err.message.split("\n")[0]}`,
    });
    return undefined;
  }
}

function plain(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(plain);
  if (v instanceof Date) return v.toISOString();
  if (typeof v === "object" && v !== null) {
    const o: Table = {};
    for (const [k, x] of Object.entries(v)) o[k] = plain(x);
    return o;
  }
  return v;
}
