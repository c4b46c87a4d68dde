/**
 * Where stored packages and their index entries live. The store (store.ts) keeps the index in
 * memory and builds and unpacks on local disk; an implementation of this only moves bytes.
 * A package is complete before its index entry is written, so a crash or a failed upload leaves
 * at worst an unindexed package, never an index entry pointing at half of one.
 */
import type { Readable } from "node:stream";
import type { PackageFile } from "./local-files.js";

export interface IndexEntry {
  id: string;
  study_uid?: string;
  created_at: string;
  origin: "built" | "uploaded";
  encrypted: boolean;
  bytes: number;
}

export interface StoredFile {
  /** Path relative to the package root, with `/` separators. */
  rel: string;
  size: number;
}

export interface PackageStorage {
  /** Human-readable location for logs (a directory, s3://bucket/prefix). */
  readonly location: string;
  /** Takes a complete package from a local directory (which it may move or leave behind). */
  put(id: string, dir: string, files: PackageFile[]): Promise<void>;
  /** Records an index entry; called after put() has completed. */
  putIndex(entry: IndexEntry): Promise<void>;
  /** Every index entry whose package is present. */
  loadIndex(): Promise<IndexEntry[]>;
  /** Whether a package of that id is stored (indexed or not). */
  has(id: string): Promise<boolean>;
  /** Files of a package, sorted by path. */
  list(id: string): Promise<StoredFile[]>;
  read(id: string, rel: string): Promise<Buffer>;
  /** The file's bytes, opened only when first read (a zip of thousands opens them one by one). */
  open(id: string, rel: string): Readable;
  close(): Promise<void>;
}
