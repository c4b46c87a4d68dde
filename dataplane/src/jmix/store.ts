/**
 * The JMIX package store: an in-memory index by id and by StudyInstanceUID over a PackageStorage
 * (a filesystem, or S3-compatible object storage), and a local staging directory where packages
 * are built and uploads unpacked and verified before they are committed. Ids must be UUIDs, so no
 * id can name a path or an object key of its own choosing.
 */
import { mkdirSync, rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import type { Logger } from "winston";
import { listFiles, within } from "./local-files.js";
import type { IndexEntry, PackageStorage, StoredFile } from "./package-storage.js";

export type { IndexEntry } from "./package-storage.js";

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** A DICOM UID (PS3.5 §9): digits and dots, at most 64 characters. */
export const DICOM_UID = /^[0-9]+(\.[0-9]+)*$/;

export class PackageExistsError extends Error {}

export class StoreUnavailableError extends Error {}

export interface StoredPackageFile extends StoredFile {
  open(): Readable;
}

export class JmixStore {
  private readonly byId = new Map<string, IndexEntry>();
  private readonly byStudy = new Map<string, IndexEntry[]>();
  private readonly stagingDir: string;
  private loading: Promise<void> | undefined;
  /** Uploads being received and unpacked now (each holds disk and CPU until it ends). */
  private uploads = 0;

  constructor(
    /** Local directory for staging (and, with filesystem storage, the packages themselves). */
    readonly root: string,
    private readonly storage: PackageStorage,
    private readonly logger: Logger,
  ) {
    // One staging directory per storage, so two stores sharing a store_dir never clear each other's.
    this.stagingDir = join(root, storage.location.startsWith("s3://") ? "staging-s3" : "staging");
    rmSync(this.stagingDir, { recursive: true, force: true });
    mkdirSync(this.stagingDir, { recursive: true });
    void this.ready().catch(() => undefined); // start loading now; requests wait for it
  }

  /** Resolves once the index is loaded; a failed load is retried by the next caller. */
  ready(): Promise<void> {
    this.loading ??= this.storage.loadIndex().then(
      (entries) => {
        for (const e of entries) if (UUID.test(e.id)) this.remember(e);
        this.logger.info("JMIX store ready", { location: this.storage.location, packages: this.byId.size });
      },
      (e: Error) => {
        this.loading = undefined;
        this.logger.error("JMIX store unavailable", { location: this.storage.location, error: e.message });
        throw new StoreUnavailableError(`the package store is unavailable: ${e.message}`);
      },
    );
    return this.loading;
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

  get(id: string): IndexEntry | undefined {
    return UUID.test(id) ? this.byId.get(id.toLowerCase()) : undefined;
  }

  /** The newest package of a study. */
  latestForStudy(uid: string): IndexEntry | undefined {
    return this.byStudy.get(uid)?.at(-1);
  }

  /** Takes an upload slot; false when `max` uploads are already in progress. */
  beginUpload(max: number): boolean {
    if (this.uploads >= max) return false;
    this.uploads++;
    return true;
  }

  endUpload(): void {
    this.uploads--;
  }

  /** A fresh local directory to build or unpack into. */
  staging(): Promise<string> {
    return mkdtemp(join(this.stagingDir, "p-"));
  }

  discard(dir: string): Promise<void> {
    return rm(within(this.stagingDir, dir), { recursive: true, force: true });
  }

  /** Hands a complete package from staging to the storage, then indexes it. */
  async commit(staged: string, e: Omit<IndexEntry, "created_at" | "bytes">): Promise<IndexEntry> {
    const id = e.id.toLowerCase();
    if (!UUID.test(id)) throw new Error(`"${e.id}" is not a UUID`);
    if (this.byId.has(id) || (await this.storage.has(id))) throw new PackageExistsError(id);
    const dir = within(this.stagingDir, staged);
    const files = await listFiles(dir);
    const entry: IndexEntry = {
      ...e,
      id,
      created_at: new Date().toISOString(),
      bytes: files.reduce((n, f) => n + f.size, 0),
    };
    await this.storage.put(id, dir, files);
    await this.storage.putIndex(entry);
    this.remember(entry);
    return entry;
  }

  /** Every file of a package, sorted by path, each opened only when read. */
  async files(id: string): Promise<StoredPackageFile[]> {
    const files = await this.storage.list(this.checked(id));
    return files.map((f) => ({ ...f, open: () => this.storage.open(id, f.rel) }));
  }

  read(id: string, rel: string): Promise<Buffer> {
    return this.storage.read(this.checked(id), rel);
  }

  private checked(id: string): string {
    if (!UUID.test(id)) throw new Error(`"${id}" is not a UUID`);
    return id.toLowerCase();
  }

  close(): Promise<void> {
    return this.storage.close();
  }
}
