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

/** Where one part's body goes while it streams in; `end` makes the part the caller gets. */
interface PartSink<T> {
  write(bytes: Buffer): void | Promise<void>;
  end(): T | Promise<T>;
  abort(): void;
}

/**
 * The one multipart scanner: yields a part per boundary, its body handed to a sink chunk by chunk
 * as it arrives. Between parts it holds a few header bytes; inside a body, less than a delimiter's
 * length (the rest is written on), so scanning costs O(n) whatever the part sizes.
 */
async function* scanParts<T>(
  body: AsyncIterable<Buffer> | Iterable<Buffer>,
  boundary: string,
  maxPartBytes: number,
  sinkFor: (headers: Record<string, string>) => PartSink<T>,
): AsyncGenerator<T> {
  const open = Buffer.from(`--${boundary}`);
  const delim = Buffer.from(`\r\n--${boundary}`);
  let pending: Buffer = Buffer.alloc(0);
  let state: "preamble" | "headers" | "body" | "done" = "preamble";
  let sink: PartSink<T> | undefined;
  let size = 0;
  const write = async (b: Buffer) => {
    if (b.length === 0) return;
    size += b.length;
    if (size > maxPartBytes) throw new HttpError(413, `a multipart part exceeds ${maxPartBytes} bytes`);
    await sink!.write(b);
  };
  try {
    for await (const chunk of body) {
      if (state === "done") continue; // epilogue
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
          const headers: Record<string, string> = {};
          for (const line of pending.toString("latin1", 0, end).split("\r\n")) {
            const c = line.indexOf(":");
            if (c > 0) headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
          }
          pending = pending.subarray(end + 4);
          sink = sinkFor(headers);
          size = 0;
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
          const done = sink!;
          sink = undefined;
          yield await done.end();
          state = "headers";
        }
      }
    }
    if (state !== "done") throw new HttpError(400, "multipart body ended before its closing boundary");
  } finally {
    sink?.abort();
  }
}

/** Parts of a multipart body, each in memory, in order; 400 on a malformed body, 413 on a part beyond `maxPartBytes`. */
export function readParts(
  body: AsyncIterable<Buffer> | Iterable<Buffer>,
  boundary: string,
  maxPartBytes: number,
): AsyncGenerator<Part> {
  return scanParts(body, boundary, maxPartBytes, (headers) => {
    const chunks: Buffer[] = [];
    return {
      write: (b) => void chunks.push(b),
      end: () => ({ headers, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) }),
      abort: () => undefined,
    };
  });
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
 * Parts of a multipart body, each body written to a file in `dir` as it streams in (and hashed on
 * the way): memory is a chunk, whatever the part sizes. For consumers that keep the parts anyway
 * (a JMIX package is files on disk).
 */
export function spoolParts(
  body: AsyncIterable<Buffer> | Iterable<Buffer>,
  boundary: string,
  dir: string,
  maxPartBytes: number,
  hash = true,
): AsyncGenerator<SpooledPart> {
  let n = 0;
  return scanParts(body, boundary, maxPartBytes, (headers) => {
    const path = join(dir, `part-${n++}`);
    const out: WriteStream = createWriteStream(path, { flags: "wx" });
    const digest: Hash | undefined = hash ? createHash("sha256") : undefined;
    let size = 0;
    return {
      async write(b) {
        size += b.length;
        digest?.update(b);
        if (!out.write(b)) await once(out, "drain");
      },
      async end() {
        out.end();
        await finished(out);
        return { headers, path, size, sha256: digest?.digest("hex") };
      },
      abort: () => out.destroy(),
    };
  });
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
