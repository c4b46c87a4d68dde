/**
 * checkConfig for a config that changes a few files at a time. The operator renders a gateway as a
 * main file plus one file per pipeline and validates every render before writing it; one whole
 * check of 1,000 pipelines compiled all of them (plugins, route tables, metric children) for an
 * edit of one, and held it all at once. Here each extra file is checked with the main file alone,
 * and the result kept while neither file changes, nor any other file that check read (certificates,
 * secrets). What one file can do to another is then checked across the kept results, in the order
 * the whole check meets them: a route two pipelines claim in one network's table, a port two
 * endpoints listen on.
 *
 * The result is the whole check's for any config whose extra files are self-contained: each names
 * only tables defined in it or in the main file, and no table is defined in two of them (the
 * operator's renders are: every name carries its pipeline's). A file that names another's tables
 * fails on its own with "... is not defined", and a table defined twice shows in the definitions;
 * either way the whole check runs instead, so nothing it would refuse is accepted here.
 */
import { createHash } from "node:crypto";
import { basename, dirname, resolve } from "node:path";
import { checkConfig, checkParts, type CheckOptions, type CheckParts, type CheckResult } from "./check.js";
import { configHash, diskFs, extraConfigFiles, type ConfigFs } from "./config/load.js";
import { displayPath, sortProblems, type Problem } from "./config/problems.js";
import { joinPath } from "./config/toml-locator.js";
import { routeClaimedMessage, type RouteClaim } from "./pipeline/compile.js";
import { RouteTable } from "./pipeline/route-table.js";
import { createRegistry } from "./plugins/registry.js";
import { createLogger } from "./observability/logger.js";
import { readFromDisk, type FileReader } from "./build-context.js";

/**
 * Problems a file can have on its own that the whole config may not: it names something another
 * file defines (a table, a mesh), or a warning that the whole check words once for all files.
 */
const CROSS_FILE = /is not defined|no enabled \[mesh\.\*\] lists|not used by this build/;

type Located = Omit<Problem, "severity" | "message">;

interface Kept {
  /** Digests of the main file's text and this file's when it was checked. */
  key: string;
  /** Every other file the check read: path → digest ("" when it could not be read). */
  reads: Map<string, string>;
  /** Problems in this file, and any in the main file that the main file alone does not have. */
  problems: Problem[];
  /** Pipelines this file defines that resolved, in order. */
  pipelines: string[];
  /** Routes this file's pipelines took, in order. */
  claims: RouteClaim[];
  /** Ports this file's endpoints listen on by themselves, in order. */
  ports: { endpoint: string; port: number; at: Located }[];
  /** Named tables this file defines. */
  tables: string[];
  /** The file read and parsed (it counts in the hash). */
  parsed: boolean;
  /** Its text, for the hash. */
  text: string;
}

const digest = (s: string | Buffer) => createHash("sha256").update(s).digest("hex");

export class IncrementalChecker {
  private readonly kept = new Map<string, Kept>();
  private main?: { key: string; reads: Map<string, string>; parts: CheckParts };
  private readonly registry = createRegistry();
  /** One for all the checks (a winston logger per check of one file cost more than the check's parse). */
  private readonly logger = createLogger("error");

  /** How many files the last check had to check again (for tests and benches). */
  lastChecked = 0;

  check(mainFile: string, opts: CheckOptions = {}): CheckResult {
    const fs = opts.fs ?? diskFs;
    const read = opts.readFile ?? readFromDisk;
    const main = resolve(mainFile);
    let mainText: string;
    try {
      mainText = fs.readFile(main);
    } catch {
      return checkConfig(mainFile, opts); // which reports it
    }
    const mainKey = digest(mainText);
    const options = { ...opts, registry: opts.registry ?? this.registry, logger: opts.logger ?? this.logger };
    this.lastChecked = 0;

    // The main file alone: its own problems, routes and ports, and where the other files are.
    if (this.main?.key !== mainKey || stale(this.main.reads, read)) {
      const reads = new Map<string, string>();
      const only: ConfigFs = {
        readFile: (p) => (resolve(p) === main ? mainText : fs.readFile(p)),
        listFiles: () => [],
      };
      this.main = {
        key: mainKey,
        reads,
        parts: checkParts(main, { ...options, fs: only, readFile: recording(read, reads) }),
      };
      this.lastChecked++;
    }
    const base = this.main.parts;
    if (base.problems.some((p) => p.severity === "error" && p.path === "" && p.file === main))
      return checkConfig(mainFile, opts); // the main file does not parse: nothing to split
    const mainProblems = new Set(base.problems.map(problemKey));

    const files = extraConfigFiles(fs, main, base.loaded);
    const current = new Set(files);
    for (const f of [...this.kept.keys()]) if (!current.has(f)) this.kept.delete(f);
    for (const f of files) {
      let text: string | undefined;
      try {
        text = fs.readFile(f);
      } catch {
        text = undefined;
      }
      const key = `${mainKey}:${text === undefined ? "-" : digest(text)}`;
      const had = this.kept.get(f);
      if (had && had.key === key && !stale(had.reads, read)) continue;
      this.kept.set(f, this.checkOne(main, mainText, f, text, key, mainProblems, fs, read, options));
      this.lastChecked++;
    }

    // Across files: self-contained, or the whole check decides.
    const definedBy = new Map<string, string>();
    for (const f of files) {
      const k = this.kept.get(f)!;
      // A file that cannot be read or parsed stops the whole check before anything is resolved.
      if (k.problems.some((p) => p.file === f && (CROSS_FILE.test(p.message) || (p.severity === "error" && !p.path))))
        return checkConfig(mainFile, opts);
      for (const t of k.tables) {
        if (definedBy.has(t)) return checkConfig(mainFile, opts);
        definedBy.set(t, f);
      }
    }

    const problems: Problem[] = [...base.problems];
    const seen = new Set(mainProblems);
    const tables = new Map<string, RouteTable<{ pipeline: string; endpointName: string }>>();
    const take = (c: RouteClaim) => {
      let table = tables.get(c.network);
      if (!table) tables.set(c.network, (table = new RouteTable(base.caseInsensitive)));
      const clash = table.conflict(c.entry);
      if (clash) {
        problems.push({ severity: "error", ...c.at, message: routeClaimedMessage(c.entry, c.network, clash.route) });
        return;
      }
      table.add({ ...c.entry, route: { pipeline: c.pipeline, endpointName: c.endpointName } });
    };
    const bound = new Map<number, string>();
    for (const p of base.ownPorts) bound.set(p.port, p.endpoint);
    for (const c of base.claims) take(c);
    const pipelines = [...base.pipelines];
    const sources = [{ file: main, text: mainText }];
    for (const f of files) {
      const k = this.kept.get(f)!;
      for (const p of k.problems) {
        const id = problemKey(p);
        if (p.file !== f && seen.has(id)) continue; // the main file's, once
        seen.add(id);
        problems.push(p);
      }
      for (const c of k.claims) take(c);
      for (const p of k.ports) {
        const other = bound.get(p.port);
        if (other !== undefined)
          problems.push({
            severity: "error",
            ...p.at,
            message: `port ${p.port} is already used by endpoint "${other}"`,
          });
        else bound.set(p.port, p.endpoint);
      }
      pipelines.push(...k.pipelines);
      if (k.parsed) sources.push({ file: f, text: k.text });
    }
    const sorted = sortProblems(problems, main);
    return {
      ok: !sorted.some((p) => p.severity === "error"),
      problems: sorted,
      hash: configHash(sources),
      files: sources.length,
      pipelines,
    };
  }

  /** The main file and `file`, nothing else: what this file contributes and what is wrong with it. */
  private checkOne(
    main: string,
    mainText: string,
    file: string,
    text: string | undefined,
    key: string,
    mainProblems: ReadonlySet<string>,
    fs: ConfigFs,
    read: FileReader,
    options: CheckOptions,
  ): Kept {
    const reads = new Map<string, string>();
    const pair: ConfigFs = {
      readFile: (p) => {
        const at = resolve(p);
        if (at === main) return mainText;
        if (at === file && text !== undefined) return text;
        return fs.readFile(p); // the same error the whole check would get
      },
      listFiles: (dir) => (resolve(dir) === dirname(file) ? [basename(file)] : []),
    };
    const parts = checkParts(main, { ...options, fs: pair, readFile: recording(read, reads) });
    const mine = (section: string, name: string) => parts.loaded.definitions.get(joinPath([section, name])) === file;
    const tables = [...parts.loaded.definitions].filter(([, f]) => f === file).map(([t]) => t);
    return {
      key,
      reads,
      problems: parts.problems.filter((p) => p.file === file || !mainProblems.has(problemKey(p))),
      pipelines: parts.pipelines.filter((p) => mine("pipelines", p)),
      claims: parts.claims.filter((c) => mine("pipelines", c.pipeline)),
      ports: parts.ownPorts
        .filter((p) => mine("endpoints", p.endpoint))
        .map((p) => {
          const path = ["endpoints", p.endpoint, "options", "port"];
          return { ...p, at: { ...parts.loaded.locate(path), path: displayPath(path) } };
        }),
      tables,
      parsed: parts.loaded.sources.some((s) => s.file === file),
      text: text ?? "",
    };
  }
}

/** A reader that notes what it read, to know later whether a kept result still holds. */
function recording(read: FileReader, reads: Map<string, string>): FileReader {
  return (path) => {
    try {
      const b = read(path);
      reads.set(path, digest(b));
      return b;
    } catch (e) {
      reads.set(path, "");
      throw e;
    }
  };
}

function stale(reads: ReadonlyMap<string, string>, read: FileReader): boolean {
  for (const [path, d] of reads) {
    let now = "";
    try {
      now = digest(read(path));
    } catch {
      now = "";
    }
    if (now !== d) return true;
  }
  return false;
}

const problemKey = (p: Problem) => `${p.severity}\0${p.file}\0${p.line}\0${p.column}\0${p.path}\0${p.message}`;
