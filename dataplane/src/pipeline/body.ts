/**
 * The request body as middleware sees it: a stream until someone asks for the bytes, then a
 * buffer bounded by content_limits.max_body_size. Whatever a middleware puts back with
 * `replace()` is what the backend sends.
 */
import type { IncomingMessage } from "node:http";
import { HttpError, problemType } from "./errors.js";

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\b/i;

export class RequestBody {
  private buffered: Buffer | undefined;
  private pending: Promise<Buffer> | undefined;
  private parsed: { value: unknown } | undefined;
  private replacedType: string | undefined;

  constructor(
    private readonly req: IncomingMessage,
    private readonly limit: number,
    private readonly depthLimit = 100,
  ) {}

  /** True when the client sent (or announced) a body. */
  get present(): boolean {
    if (this.buffered) return this.buffered.length > 0;
    return announcesBody(this.req);
  }

  /** `forUpstream()` of a body nobody has read or replaced, without making a RequestBody. */
  static unread(req: IncomingMessage): IncomingMessage | null {
    return announcesBody(req) ? req : null;
  }

  get isBuffered(): boolean {
    return this.buffered !== undefined;
  }

  get contentType(): string | undefined {
    return this.replacedType ?? this.req.headers["content-type"];
  }

  get isJson(): boolean {
    const ct = this.contentType;
    return ct !== undefined && JSON_TYPE.test(ct);
  }

  /**
   * Reads the whole body (once); 413 beyond the limit, without reading further. A caller with a
   * tighter bound of its own (a JSON API) passes it, so a chunked body stops there, not at the
   * proxy-wide limit.
   */
  buffer(limit = this.limit): Promise<Buffer> {
    if (this.buffered) return Promise.resolve(this.buffered);
    this.pending ??= readLimited(this.req, Math.min(limit, this.limit)).then((b) => (this.buffered = b));
    return this.pending;
  }

  /** Parsed JSON when the body is JSON, otherwise undefined; malformed JSON is a 400. */
  async json(): Promise<unknown> {
    if (this.parsed) return this.parsed.value;
    if (!this.isJson) return undefined;
    const buf = await this.buffer();
    if (buf.length === 0) return undefined;
    const depth = jsonDepth(buf);
    if (depth > this.depthLimit) {
      throw new HttpError(400, `request body nests deeper than ${this.depthLimit} levels`, {
        type: problemType("json-too-deep"),
      });
    }
    try {
      this.parsed = { value: JSON.parse(buf.toString("utf8")) };
    } catch (e) {
      throw new HttpError(400, `request body is not valid JSON: ${(e as Error).message}`, {
        type: problemType("invalid-json"),
      });
    }
    return this.parsed.value;
  }

  /** Replaces the body the backend will receive. */
  replace(body: Buffer | string, contentType?: string): void {
    this.buffered = typeof body === "string" ? Buffer.from(body) : body;
    this.parsed = undefined;
    if (contentType) {
      this.replacedType = contentType;
      this.req.headers["content-type"] = contentType; // what the backend (and the log) should see
    }
  }

  replaceJson(value: unknown): void {
    this.replace(JSON.stringify(value), this.contentType && this.isJson ? this.contentType : "application/json");
    this.parsed = { value };
  }

  /** What a backend sends: the buffer if anyone read or replaced it, else the live stream. */
  forUpstream(): Buffer | IncomingMessage | null {
    if (this.buffered) return this.buffered;
    return this.present ? this.req : null;
  }
}

function announcesBody(req: IncomingMessage): boolean {
  const h = req.headers;
  return h["transfer-encoding"] !== undefined || (h["content-length"] !== undefined && h["content-length"] !== "0");
}

function readLimited(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) {
    return Promise.reject(tooLarge(limit));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        cleanup();
        req.pause();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(c);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onError = (e: Error) => {
      cleanup();
      reject(new HttpError(400, `request body could not be read: ${e.message}`, { cause: e }));
    };
    const onAborted = () => {
      cleanup();
      reject(new HttpError(400, "client aborted the request body"));
    };
    const cleanup = () => {
      req.off("data", onData).off("end", onEnd).off("error", onError).off("aborted", onAborted);
    };
    req.on("data", onData).on("end", onEnd).on("error", onError).on("aborted", onAborted);
  });
}

const tooLarge = (limit: number) =>
  new HttpError(413, `request body exceeds the limit of ${limit} bytes`, {
    type: problemType("body-too-large"),
  });

/**
 * Deepest nesting of a JSON text, counted without parsing (so a hostile body is refused before
 * the parser recurses into it). Brackets inside strings do not count.
 */
export function jsonDepth(buf: Buffer): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i]!;
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) max = Math.max(max, ++depth);
    else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}
