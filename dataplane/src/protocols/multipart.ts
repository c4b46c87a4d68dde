/**
 * multipart/related (RFC 2387), the body of STOW-RS requests and WADO-RS responses. The reader
 * yields one part at a time as the body streams in, so a study of any size needs memory for one
 * instance, not for the study; the writer frames parts as they are produced.
 */
import { randomUUID } from "node:crypto";
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

/** Parts of a multipart body, in order; 400 on a malformed body, 413 on a part beyond `maxPartBytes`. */
export async function* readParts(
  body: AsyncIterable<Buffer> | Iterable<Buffer>,
  boundary: string,
  maxPartBytes: number,
): AsyncGenerator<Part> {
  const open = Buffer.from(`--${boundary}`);
  const delim = Buffer.from(`\r\n--${boundary}`);
  let buf: Buffer = Buffer.alloc(0);
  let state: "preamble" | "headers" | "body" | "done" = "preamble";
  let headers: Record<string, string> = {};
  let scanFrom = 0;
  for await (const chunk of body) {
    if (state === "done") continue; // epilogue
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    for (;;) {
      if (state === "preamble") {
        const i = buf.indexOf(open);
        if (i < 0) break;
        buf = buf.subarray(i + open.length);
        state = "headers";
      }
      if (state === "headers") {
        if (buf.length < 2) break;
        if (buf.subarray(0, 2).toString("latin1") === "--") {
          state = "done";
          break;
        }
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) {
          if (buf.length > 16_384) throw new HttpError(400, "multipart part headers are too long or unterminated");
          break;
        }
        headers = {};
        for (const line of buf.subarray(0, end).toString("latin1").split("\r\n")) {
          const c = line.indexOf(":");
          if (c > 0) headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
        }
        buf = buf.subarray(end + 4);
        state = "body";
        scanFrom = 0;
      }
      if (state === "body") {
        const end = buf.indexOf(delim, scanFrom);
        if (end < 0) {
          if (buf.length > maxPartBytes) throw new HttpError(413, `a multipart part exceeds ${maxPartBytes} bytes`);
          scanFrom = Math.max(0, buf.length - delim.length);
          break;
        }
        yield { headers, body: Buffer.from(buf.subarray(0, end)) };
        buf = buf.subarray(end + delim.length);
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
