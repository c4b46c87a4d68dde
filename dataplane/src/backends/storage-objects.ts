/**
 * Where the `storage` backend keeps objects: a directory (here) or an S3 bucket prefix
 * (storage-s3-objects.ts). Paths handed in have already passed storage-pattern.ts's checks; the
 * filesystem side adds the one thing a string check cannot see, symlinks: no segment below the
 * root is ever followed if it is a link (each is lstat'ed, and the file opened with O_NOFOLLOW),
 * so a link planted inside the root cannot lead a read or a write out of it. Writes stream to a
 * temporary file beside the target, are flushed, then renamed: a reader sees the old object or
 * the new one, never half of one.
 */
import { constants, createReadStream } from "node:fs";
import { lstat, mkdir, open, realpath, rename, rm, type FileHandle } from "node:fs/promises";
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { Transform, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ClientGoneError, HttpError, problemType } from "../pipeline/errors.js";

export interface StoredObject {
  size: number;
  modified: Date | undefined;
  /** Bytes start..end (inclusive); call once, or `close()` instead. */
  read(start: number, end: number): Readable;
  close(): void;
}

export interface ObjectStore {
  /** For logs: the directory or s3://bucket/prefix. */
  readonly location: string;
  /** The object at `rel`, or undefined when there is none (or it is not a plain file). */
  stat(rel: string): Promise<StoredObject | undefined>;
  /** Writes `body` (a `limited()` stream) to `rel`, replacing what was there. */
  write(rel: string, body: Readable, contentType: string | undefined): Promise<void>;
  close(): Promise<void>;
}

export const tooLarge = (limit: number) =>
  new HttpError(413, `the object exceeds the storage backend's max_object_bytes (${limit})`, {
    type: problemType("body-too-large"),
    // The rest of the body is not read: the connection cannot carry another request.
    headers: { connection: "close" },
  });

export type Limited = Transform & { bytes: number };

/**
 * `body` as a stream that fails with 413 once more than `limit` bytes have gone by, and with
 * ClientGoneError when the body ends early (a client that went away). The source is unpiped, not
 * destroyed, on failure, so the client can still be told why.
 */
export function limited(body: Readable | Buffer | null, limit: number): Limited {
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      t.bytes += chunk.length;
      if (t.bytes > limit) {
        if (src) src.unpipe(t);
        cb(tooLarge(limit));
      } else cb(null, chunk);
    },
  }) as Limited;
  t.bytes = 0;
  // The limit can trip before the consumer is attached (while directories are made): without a
  // listener that error would be an uncaught 'error' event; the consumer still sees it.
  t.on("error", () => undefined);
  const src = body === null || Buffer.isBuffer(body) ? undefined : body;
  if (!src) {
    t.end(body ?? Buffer.alloc(0));
    return t;
  }
  src.on("error", (e) => t.destroy(e));
  src.on("close", () => {
    if (!src.readableEnded && !t.destroyed) t.destroy(new ClientGoneError());
  });
  src.pipe(t);
  return t;
}

const conflict = (why: string) => new HttpError(409, why, { type: problemType("storage-conflict") });

export class FilesystemObjects implements ObjectStore {
  private resolved: Promise<string> | undefined;

  /** Nothing touches the disk until the first request: `--check` builds backends too. */
  constructor(private readonly configured: string) {}

  get location(): string {
    return this.configured;
  }

  /** The root, created on first use; it may itself be a link (a mounted volume), nothing below it may. */
  private root(): Promise<string> {
    this.resolved ??= mkdir(this.configured, { recursive: true }).then(() => realpath(this.configured));
    // A failure (permissions) is retried by the next request rather than remembered.
    this.resolved.catch(() => (this.resolved = undefined));
    return this.resolved;
  }

  /**
   * The directories of `rel` below the root, each checked not to be a link; with `create`, missing
   * ones are made (one at a time, so mkdir never walks through a link either). Undefined when a
   * directory is missing (and not created); 409 when a segment is a link or not a directory.
   */
  private async dirOf(rel: string, create: boolean): Promise<string | undefined> {
    let dir = await this.root();
    for (const seg of rel.split("/").slice(0, -1)) {
      dir = join(dir, seg);
      if (create)
        await mkdir(dir).catch((e: NodeJS.ErrnoException) => (e.code === "EEXIST" ? undefined : Promise.reject(e)));
      const st = await lstat(dir).catch(() => undefined);
      if (!st) return undefined;
      if (!st.isDirectory()) {
        if (!create) return undefined;
        throw conflict(
          st.isSymbolicLink()
            ? "the storage path passes through a symbolic link"
            : "the storage path passes through a file",
        );
      }
    }
    return dir;
  }

  async stat(rel: string): Promise<StoredObject | undefined> {
    const dir = await this.dirOf(rel, false);
    if (!dir) return undefined;
    let fh: FileHandle;
    try {
      fh = await open(join(dir, rel.slice(rel.lastIndexOf("/") + 1)), constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch {
      return undefined; // missing, a link (ELOOP), or unreadable: all "no such object" to a client
    }
    const st = await fh.stat();
    if (!st.isFile()) {
      await fh.close();
      return undefined;
    }
    let used = false;
    return {
      size: st.size,
      modified: st.mtime,
      read(start, end) {
        used = true;
        // The stream owns the descriptor from here and closes it when done or destroyed.
        return createReadStream("", { fd: fh, start, end, autoClose: true });
      },
      close() {
        if (!used) void fh.close();
      },
    };
  }

  async write(rel: string, body: Readable): Promise<void> {
    const dir = (await this.dirOf(rel, true))!;
    const name = rel.slice(rel.lastIndexOf("/") + 1);
    const temp = join(dir, `.${name}.${randomUUID()}.part`);
    const fh = await open(
      temp,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o640,
    );
    try {
      // The stream owns the descriptor: flushed to disk, then closed, before the rename.
      await pipeline(body, fh.createWriteStream({ flush: true }));
      await rename(temp, join(dir, name)).catch((e: NodeJS.ErrnoException) =>
        Promise.reject(e.code === "EISDIR" || e.code === "ENOTEMPTY" ? conflict("a directory is in the way") : e),
      );
    } catch (e) {
      await fh.close().catch(() => undefined);
      await rm(temp, { force: true }).catch(() => undefined);
      throw e;
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
