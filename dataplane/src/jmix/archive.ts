/**
 * Archives in and out of the store. Out: a zip (stored, not deflated: DICOM pixel data rarely
 * shrinks and the CPU is better spent elsewhere) streamed from the package's files as it is
 * written, and a tar of payload/ for encryption. In: zip (yauzl) and tar.gz (tar-stream) uploads,
 * unpacked entry by entry under limits, refusing what could escape the destination or hide
 * something: absolute names, `..`, backslashes, links, devices, too many entries or bytes, or
 * bytes out of proportion to the compressed input (a zip bomb: 1 MB of zeros deflates from 1 GB).
 * Error messages name entries, never where on this server they were being written.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { PassThrough, Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip, createGzip } from "node:zlib";
import yauzl from "yauzl";
import tarStream from "tar-stream";
import type { PackageFile } from "./local-files.js";
import { lazyModule } from "../lazy-module.js";

// archiver is about 4 MiB of heap, and only JMIX zips need it.
const archiver = lazyModule<typeof import("archiver")>("archiver");

/** A zip of the files under the folder `root`, each opened when the zip reaches it. */
export function zipOf(files: { rel: string; open(): Readable }[], root: string): Readable {
  const zip = new (archiver().ZipArchive)({ store: true });
  for (const f of files) zip.append(f.open(), { name: `${root}/${f.rel}` });
  void zip.finalize();
  return zip;
}

/**
 * A tar.gz of the files under the folder `root` (Harmony's other download format), each opened
 * when the tar reaches it; the sizes are known up front, so nothing is buffered.
 */
export function tarGzOf(files: { rel: string; size: number; open(): Readable }[], root: string): Readable {
  const pack = tarStream.pack();
  const gz = createGzip();
  void (async () => {
    try {
      for (const f of files) {
        const entry = pack.entry({ name: `${root}/${f.rel}`, size: f.size, mode: 0o644 });
        await pipeline(f.open(), entry);
      }
      pack.finalize();
    } catch (e) {
      pack.destroy(e as Error);
    }
  })();
  // An error on either side ends the download cut short (no gzip trailer), never as if complete.
  pipeline(pack as unknown as Readable, gz).catch((e: unknown) => gz.destroy(e as Error));
  return gz;
}

export function tarOf(files: PackageFile[]): Readable {
  const pack = tarStream.pack();
  void (async () => {
    try {
      for (const f of files) {
        const entry = pack.entry({ name: f.rel, size: f.size, mode: 0o644 });
        await pipeline(createReadStream(f.abs), entry);
      }
      pack.finalize();
    } catch (e) {
      pack.destroy(e as Error);
    }
  })();
  return pack as unknown as Readable;
}

export class ArchiveError extends Error {}

export interface UnpackLimits {
  maxEntries: number;
  maxBytes: number;
  /** Largest unpacked : packed ratio, for each zip entry and for the whole archive. */
  maxRatio?: number;
}

/**
 * Below this many packed bytes the ratio is taken against this instead: a small JSON entry or a
 * small archive may compress far better than 100:1 honestly, and costs little either way.
 */
const RATIO_FLOOR = 1024 * 1024;

/** An fs error's message holds the absolute path it failed on; clients get what failed, not where. */
function reason(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err.code === "EEXIST") return "an entry is named twice";
  if (err.code && (err.syscall || err.path)) return `an entry could not be written (${err.code})`;
  return err.message;
}

/** The safe relative path for an archive entry name, or an ArchiveError saying why there is none. */
export function entryPath(name: string): string {
  if (name.includes("\0") || name.includes("\\")) throw new ArchiveError(`entry "${name}" has a forbidden character`);
  if (name.startsWith("/") || /^[A-Za-z]:/.test(name)) throw new ArchiveError(`entry "${name}" is an absolute path`);
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.some((p) => p === "..")) throw new ArchiveError(`entry "${name}" climbs out with ..`);
  if (parts.length === 0) throw new ArchiveError(`entry "${name}" has no name`);
  return parts.join("/");
}

class Budget {
  entries = 0;
  bytes = 0;
  constructor(
    private readonly limits: UnpackLimits,
    /** Compressed bytes read so far (or the archive's size). */
    private readonly packed: () => number,
  ) {}
  entry(): void {
    if (++this.entries > this.limits.maxEntries) throw new ArchiveError(`more than ${this.limits.maxEntries} entries`);
  }
  /** Counts bytes as they are written, so a lying size header cannot get past the limit. */
  meter(): Transform {
    return new Transform({
      transform: (chunk: Buffer, _e, cb) => {
        this.bytes += chunk.length;
        const ratio = this.limits.maxRatio;
        if (this.bytes > this.limits.maxBytes)
          cb(new ArchiveError(`more than ${this.limits.maxBytes} bytes uncompressed`));
        else if (ratio && this.bytes > ratio * Math.max(this.packed(), RATIO_FLOOR))
          cb(new ArchiveError(`the archive expands more than ${ratio} times its compressed size`));
        else cb(null, chunk);
      },
    });
  }
}

async function writeEntry(dest: string, rel: string, data: Readable, budget: Budget): Promise<void> {
  const abs = join(dest, rel);
  await mkdir(dirname(abs), { recursive: true });
  // "wx": an entry named twice is refused rather than silently overwriting the first.
  await pipeline(data, budget.meter(), createWriteStream(abs, { flags: "wx" }));
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;

export async function unzip(file: string, dest: string, limits: UnpackLimits): Promise<void> {
  const zip = await new Promise<yauzl.ZipFile>((res, rej) =>
    yauzl.open(file, { lazyEntries: true, validateEntrySizes: true, strictFileNames: true }, (e, z) =>
      e ? rej(new ArchiveError(`not a readable zip: ${e.message}`)) : res(z),
    ),
  );
  const size = (await stat(file)).size;
  const budget = new Budget(limits, () => size);
  try {
    await new Promise<void>((resolve, reject) => {
      const fail = (e: unknown) => reject(e instanceof ArchiveError ? e : new ArchiveError(reason(e)));
      zip.on("error", fail);
      zip.on("end", resolve);
      zip.on("entry", (entry: yauzl.Entry) => {
        void (async () => {
          budget.entry();
          const rel = entryPath(entry.fileName);
          const type = (entry.externalFileAttributes >>> 16) & S_IFMT;
          const isDir = entry.fileName.endsWith("/");
          if (type !== 0 && type !== (isDir ? S_IFDIR : S_IFREG))
            throw new ArchiveError(`entry "${entry.fileName}" is not a regular file or directory`);
          // Refused on its header, before a byte is written (yauzl holds the entry to those sizes).
          const ratio = limits.maxRatio;
          if (ratio && entry.uncompressedSize > ratio * Math.max(entry.compressedSize, RATIO_FLOOR))
            throw new ArchiveError(`entry "${entry.fileName}" expands more than ${ratio} times its compressed size`);
          if (isDir) await mkdir(join(dest, rel), { recursive: true });
          else {
            const stream = await new Promise<Readable>((res, rej) =>
              zip.openReadStream(entry, (e, s) => (e ? rej(e) : res(s))),
            );
            await writeEntry(dest, rel, stream, budget);
          }
          zip.readEntry();
        })().catch(fail);
      });
      zip.readEntry();
    });
  } finally {
    zip.close();
  }
}

export async function untarGz(body: Readable, dest: string, limits: UnpackLimits, gzip = true): Promise<void> {
  const extract = tarStream.extract();
  let packed = 0;
  const budget = new Budget(limits, () => packed);
  const count = new Transform({
    transform(chunk: Buffer, _e, cb) {
      packed += chunk.length;
      cb(null, chunk);
    },
  });
  const done = (async () => {
    for await (const entry of extract) {
      budget.entry();
      const h = entry.header;
      const rel = entryPath(h.name);
      if (h.type === "directory") {
        await mkdir(join(dest, rel), { recursive: true });
        entry.resume();
      } else if (h.type === "file") {
        await writeEntry(dest, rel, entry as unknown as Readable, budget);
      } else {
        throw new ArchiveError(`entry "${h.name}" is a ${h.type}, not a regular file or directory`);
      }
    }
  })();
  const feed = pipeline(
    body,
    count,
    gzip ? createGunzip() : new PassThrough(),
    extract as unknown as NodeJS.WritableStream,
  );
  try {
    await Promise.all([done, feed]);
  } catch (e) {
    extract.destroy();
    if (e instanceof ArchiveError) throw e;
    throw new ArchiveError(`not a readable ${gzip ? "tar.gz" : "tar"}: ${reason(e)}`);
  }
}
