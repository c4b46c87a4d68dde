/**
 * The filesystem store of JMIX packages:
 *   <root>/packages/<id>/   the package exactly as served (manifest.json, audit.json, payload/ …)
 *   <root>/index/<id>.json  what the index knows of it (study UID, origin, size), one file each so
 *                           a crash leaves at most one entry missing, never a corrupt index
 *   <root>/staging/         packages being built or unpacked; emptied at start
 * Packages enter only by rename from staging, so a reader never sees half a package. Ids must be
 * UUIDs and every path is resolved and checked to stay under the root.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, lstatSync, existsSync } from "node:fs";
import { mkdtemp, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { join, resolve, sep } from "node:path";
import type { Logger } from "winston";

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** A DICOM UID (PS3.5 §9): digits and dots, at most 64 characters. */
export const DICOM_UID = /^[0-9]+(\.[0-9]+)*$/;

export interface IndexEntry {
  id: string;
  study_uid?: string;
  created_at: string;
  origin: "built" | "uploaded";
  encrypted: boolean;
  bytes: number;
}

export class PackageExistsError extends Error {}

export class JmixStore {
  private readonly byId = new Map<string, IndexEntry>();
  private readonly byStudy = new Map<string, IndexEntry[]>();
  readonly packages: string;
  private readonly indexDir: string;
  private readonly stagingDir: string;

  constructor(
    readonly root: string,
    private readonly logger: Logger,
  ) {
    this.packages = join(root, "packages");
    this.indexDir = join(root, "index");
    this.stagingDir = join(root, "staging");
    for (const d of [this.packages, this.indexDir]) mkdirSync(d, { recursive: true });
    rmSync(this.stagingDir, { recursive: true, force: true });
    mkdirSync(this.stagingDir, { recursive: true });
    this.load();
  }

  private load(): void {
    for (const f of readdirSync(this.indexDir)) {
      if (!f.endsWith(".json")) continue;
      try {
        const e = JSON.parse(readFileSync(join(this.indexDir, f), "utf8")) as IndexEntry;
        if (!UUID.test(e.id) || !existsSync(join(this.packages, e.id))) continue;
        this.remember(e);
      } catch (err) {
        this.logger.warn("JMIX index entry unreadable; skipped", { file: f, error: (err as Error).message });
      }
    }
  }

  private remember(e: IndexEntry): void {
    this.byId.set(e.id.toLowerCase(), e);
    if (e.study_uid) {
      const list = this.byStudy.get(e.study_uid) ?? [];
      list.push(e);
      list.sort((a, b) => a.created_at.localeCompare(b.created_at));
      this.byStudy.set(e.study_uid, list);
    }
  }

  get size(): number {
    return this.byId.size;
  }

  get(id: string): IndexEntry | undefined {
    return UUID.test(id) ? this.byId.get(id.toLowerCase()) : undefined;
  }

  /** The newest package of a study. */
  latestForStudy(uid: string): IndexEntry | undefined {
    return this.byStudy.get(uid)?.at(-1);
  }

  /** The directory of a package; throws on anything but a UUID, so no id can name a path. */
  dir(id: string): string {
    if (!UUID.test(id)) throw new Error(`"${id}" is not a UUID`);
    return join(this.packages, id.toLowerCase());
  }

  /** A fresh directory to build or unpack into, inside the store (same filesystem, so commit is a rename). */
  staging(): Promise<string> {
    return mkdtemp(join(this.stagingDir, "p-"));
  }

  discard(dir: string): Promise<void> {
    return rm(within(this.stagingDir, dir), { recursive: true, force: true });
  }

  /** Moves a complete package from staging into the store and indexes it. */
  async commit(staged: string, e: Omit<IndexEntry, "created_at" | "bytes">): Promise<IndexEntry> {
    const dest = this.dir(e.id);
    if (this.byId.has(e.id.toLowerCase()) || existsSync(dest)) throw new PackageExistsError(e.id);
    const bytes = (await listFiles(staged)).reduce((n, f) => n + f.size, 0);
    const entry: IndexEntry = { ...e, id: e.id.toLowerCase(), created_at: new Date().toISOString(), bytes };
    await rename(within(this.stagingDir, staged), dest);
    const tmp = join(this.indexDir, `.${entry.id}.tmp`);
    await writeFile(tmp, JSON.stringify(entry));
    await rename(tmp, join(this.indexDir, `${entry.id}.json`));
    this.remember(entry);
    return entry;
  }

  /** Every file of a package, sorted by path. */
  files(id: string): Promise<PackageFile[]> {
    return listFiles(this.dir(id));
  }
}

export interface PackageFile {
  /** Path relative to the package root, with `/` separators. */
  rel: string;
  abs: string;
  size: number;
}

/** Regular files under `dir`, sorted by relative path; anything else (links, devices) is an error. */
export async function listFiles(dir: string, prefix = ""): Promise<PackageFile[]> {
  const out: PackageFile[] = [];
  for (const d of await readdir(dir, { withFileTypes: true })) {
    const abs = join(dir, d.name);
    const rel = prefix ? `${prefix}/${d.name}` : d.name;
    if (d.isDirectory()) out.push(...(await listFiles(abs, rel)));
    else if (d.isFile()) out.push({ rel, abs, size: (await stat(abs)).size });
    else throw new Error(`${rel} is neither a file nor a directory`);
  }
  return out.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
}

/** `p` resolved, if it is inside `root`; throws otherwise. */
export function within(root: string, p: string): string {
  const r = resolve(root);
  const abs = resolve(r, p);
  if (abs !== r && !abs.startsWith(r + sep)) throw new Error(`${p} is outside ${root}`);
  return abs;
}

/** Synchronous existence check that does not follow a final symlink. */
export function isPlainFile(p: string): boolean {
  try {
    return lstatSync(p).isFile();
  } catch {
    return false;
  }
}
