/**
 * Packages on a filesystem:
 *   <root>/packages/<id>/   the package exactly as served (manifest.json, audit.json, payload/ …)
 *   <root>/index/<id>.json  its index entry, one file each (written to a temp name, then renamed),
 *                           so a crash leaves at most one entry missing, never a corrupt index
 * A package arrives by rename from the store's staging directory on the same filesystem, so a
 * reader never sees half of one.
 */
import { createReadStream, existsSync, mkdirSync } from "node:fs";
import { readFile, readdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { Logger } from "winston";
import { listFiles, within, type PackageFile } from "./local-files.js";
import type { IndexEntry, PackageStorage, StoredFile } from "./package-storage.js";

export class FilesystemStorage implements PackageStorage {
  private readonly packages: string;
  private readonly indexDir: string;

  constructor(
    root: string,
    private readonly logger: Logger,
  ) {
    this.packages = join(root, "packages");
    this.indexDir = join(root, "index");
    for (const d of [this.packages, this.indexDir]) mkdirSync(d, { recursive: true });
  }

  get location(): string {
    return this.packages;
  }

  private dir(id: string): string {
    return within(this.packages, id);
  }

  async put(id: string, dir: string, _files: PackageFile[]): Promise<void> {
    await rename(dir, this.dir(id));
  }

  async putIndex(entry: IndexEntry): Promise<void> {
    const tmp = join(this.indexDir, `.${entry.id}.tmp`);
    await writeFile(tmp, JSON.stringify(entry));
    await rename(tmp, join(this.indexDir, `${entry.id}.json`));
  }

  async loadIndex(): Promise<IndexEntry[]> {
    const out: IndexEntry[] = [];
    for (const f of await readdir(this.indexDir)) {
      if (!f.endsWith(".json")) continue;
      try {
        const e = JSON.parse(await readFile(join(this.indexDir, f), "utf8")) as IndexEntry;
        if (existsSync(this.dir(e.id))) out.push(e);
      } catch (err) {
        this.logger.warn("JMIX index entry unreadable; skipped", { file: f, error: (err as Error).message });
      }
    }
    return out;
  }

  has(id: string): Promise<boolean> {
    return Promise.resolve(existsSync(this.dir(id)));
  }

  async list(id: string): Promise<StoredFile[]> {
    return (await listFiles(this.dir(id))).map(({ rel, size }) => ({ rel, size }));
  }

  read(id: string, rel: string): Promise<Buffer> {
    return readFile(within(this.dir(id), rel));
  }

  open(id: string, rel: string): Readable {
    const path = within(this.dir(id), rel);
    return Readable.from(
      (async function* () {
        yield* createReadStream(path);
      })(),
      { objectMode: false },
    );
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
