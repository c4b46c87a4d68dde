/**
 * multipart/related (RFC 2387), the body of STOW-RS requests and WADO-RS responses. The reader
 * yields one part at a time as the body streams in, so a study of any size needs memory for one
 * instance, not for the study; the writer frames parts as they are produced.
 */
import { createHash, randomUUID, type Hash } from "node:crypto";
import { createWriteStream, type WriteStream } from "node:fs";
import { once } from "node:events";
import { join } from "node:path";
import { finished } from "node:stream/promises";
import { HttpError } from "../pipeline/errors.js";

export interface Part {
  headers: Record<string, string>;
  body: Buffer;
}

export function boundaryOf(contentType: string | undefined): string | undefined {
  return /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i
    .exec(contentType ?? "")
    ?.slice(1)
    .find(Boolean);
}

/**
 * Bytes received but not yet consumed. Appends grow the store geometrically, so a part of n bytes
 * arriving in small chunks costs O(n) copying, not O(n²) as re-concatenating on each chunk would.
 */
class Pending {
  private data = Buffer.alloc(0);
  private start = 0;
  private end = 0;

  get length(): number {
    return this.end - this.start;
  }

  get view(): Buffer {
    return this.data.subarray(this.start, this.end);
  }

  append(chunk: Buffer): void {
    if (this.end + chunk.length > this.data.length) {
      const live = this.length;
      const next = Buffer.allocUnsafe(Math.max(live + chunk.length, live * 2, 64 * 1024));
      this.data.copy(next, 0, this.start, this.end);
      this.data = next;
      this.start = 0;
      this.end = live;
    }
    chunk.copy(this.data, this.end);
    this.end += chunk.length;
  }

  skip(n: number): void {
    this.start += n;
  }

  /** The next n bytes as a buffer of their own; what follows moves to fresh storage so it is never overwritten. */
  take(n: number): Buffer {
    const out = this.data.subarray(this.start, this.start + n);
    const rest = Buffer.from(this.data.subarray(this.start + n, this.end));
    this.data = rest;
    this.start = 0;
    this.end = rest.length;
    return out;
  }
}

/** Parts of a multipart body, in order; 400 on a malformed body, 413 on a part beyond `maxPartBytes`. */
export async function* readParts(
  body: AsyncIterable<Buffer> | Iterable<Buffer>,
  boundary: string,
  maxPartBytes: number,
): AsyncGenerator<Part> {
  const open = Buffer.from(`--${boundary}`);
  const delim = Buffer.from(`\r\n--${boundary}`);
  const buf = new Pending();
  let state: "preamble" | "headers" | "body" | "done" = "preamble";
  let headers: Record<string, string> = {};
  let scanFrom = 0;
  for await (const chunk of body) {
    if (state === "done") continue; // epilogue
    buf.append(chunk);
    for (;;) {
      if (state === "preamble") {
        const i = buf.view.indexOf(open);
        if (i < 0) break;
        buf.skip(i + open.length);
        state = "headers";
      }
      if (state === "headers") {
        const view = buf.view;
        if (view.length < 2) break;
        if (view.toString("latin1", 0, 2) === "--") {
          state = "done";
          break;
        }
        const end = view.indexOf("\r\n\r\n");
        if (end < 0) {
          if (view.length > 16_384) throw new HttpError(400, "multipart part headers are too long or unterminated");
          break;
        }
        headers = {};
        for (const line of view.toString("latin1", 0, end).split("\r\n")) {
          const c = line.indexOf(":");
          if (c > 0) headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
        }
        buf.skip(end + 4);
        state = "body";
        scanFrom = 0;
      }
      if (state === "body") {
        const view = buf.view;
        const end = view.indexOf(delim, scanFrom);
        if (end < 0) {
          if (view.length > maxPartBytes) throw new HttpError(413, `a multipart part exceeds ${maxPartBytes} bytes`);
          scanFrom = Math.max(0, view.length - delim.length);
          break;
        }
        const partBody = buf.take(end);
        buf.skip(delim.length);
        yield { headers, body: partBody };
        state = "headers";
      }
    }
  }
  if (state !== "done") throw new HttpError(400, "multipart body ended before its closing boundary");
}

/** Frames parts for a multipart/related response. */
export class MultipartWriter {
  readonly boundary = `harmony-${randomUUID()}`;
  constructor(readonly type: string) {}

  get contentType(): string {
    return `multipart/related; type="${this.type}"; boundary=${this.boundary}`;
  }

  part(body: Buffer, contentType = this.type): Buffer[] {
    return [Buffer.from(`--${this.boundary}\r\nContent-Type: ${contentType}\r\n\r\n`), body, Buffer.from("\r\n")];
  }

  end(): Buffer {
    return Buffer.from(`--${this.boundary}--\r\n`);
  }
}

export interface SpooledPart {
  headers: Record<string, string>;
  /** The part's body, written to this file as it arrived. */
  path: string;
  size: number;
  /** SHA-256 of the body, hex (undefined when not asked for). */
  sha256: string | undefined;
}

/**
 * Parts of a multipart body, each body written to a file in `dir` as it streams in and hashed on
 * the way: memory is one chunk and a boundary's worth of bytes, whatever the part sizes. For
 * consumers that keep the parts anyway (a JMIX package is files on disk).
 */
export async function* spoolParts(
  body: AsyncIterable<Buffer> | Iterable<Buffer>,
  boundary: string,
  dir: string,
  maxPartBytes: number,
  hash = true,
): AsyncGenerator<SpooledPart> {
  const open = Buffer.from(`--${boundary}`);
  const delim = Buffer.from(`\r\n--${boundary}`);
  let pending: Buffer = Buffer.alloc(0);
  let state: "preamble" | "headers" | "body" | "done" = "preamble";
  let headers: Record<string, string> = {};
  let file: { path: string; out: WriteStream; hash: Hash | undefined; size: number } | undefined;
  let n = 0;
  const write = async (b: Buffer) => {
    if (b.length === 0) return;
    file!.size += b.length;
    if (file!.size > maxPartBytes) throw new HttpError(413, `a multipart part exceeds ${maxPartBytes} bytes`);
    file!.hash?.update(b);
    if (!file!.out.write(b)) await once(file!.out, "drain");
  };
  try {
    for await (const chunk of body) {
      if (state === "done") continue; // epilogue
      // Outside a body `pending` is a few header bytes; inside one, less than a delimiter's length.
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      for (;;) {
        if (state === "preamble") {
          const i = pending.indexOf(open);
          if (i < 0) {
            pending = pending.subarray(Math.max(0, pending.length - open.length));
            break;
          }
          pending = pending.subarray(i + open.length);
          state = "headers";
        }
        if (state === "headers") {
          if (pending.length < 2) break;
          if (pending.toString("latin1", 0, 2) === "--") {
            state = "done";
            break;
          }
          const end = pending.indexOf("\r\n\r\n");
          if (end < 0) {
            if (pending.length > 16_384)
              throw new HttpError(400, "multipart part headers are too long or unterminated");
            break;
          }
          headers = {};
          for (const line of pending.toString("latin1", 0, end).split("\r\n")) {
            const c = line.indexOf(":");
            if (c > 0) headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
          }
          pending = pending.subarray(end + 4);
          const path = join(dir, `part-${n++}`);
          file = {
            path,
            out: createWriteStream(path, { flags: "wx" }),
            hash: hash ? createHash("sha256") : undefined,
            size: 0,
          };
          state = "body";
        }
        if (state === "body") {
          const end = pending.indexOf(delim);
          if (end < 0) {
            // Keep what could be the start of a delimiter split across chunks; write the rest.
            const keep = Math.min(pending.length, delim.length - 1);
            await write(pending.subarray(0, pending.length - keep));
            pending = Buffer.from(pending.subarray(pending.length - keep));
            break;
          }
          await write(pending.subarray(0, end));
          pending = pending.subarray(end + delim.length);
          const f = file!;
          file = undefined;
          f.out.end();
          await finished(f.out);
          yield { headers, path: f.path, size: f.size, sha256: f.hash?.digest("hex") };
          state = "headers";
        }
      }
    }
    if (state !== "done") throw new HttpError(400, "multipart body ended before its closing boundary");
  } finally {
    file?.out.destroy();
  }
}
