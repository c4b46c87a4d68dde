/**
 * Response bodies for response-side middleware: read the (possibly streaming) body once, bounded,
 * and put a new one in its place with headers that match it.
 */
import type { RequestContext } from "./context.js";
import { HttpError } from "./errors.js";

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\b/i;

export function responseIsJson(ctx: RequestContext): boolean {
  const ct = ctx.response?.headers["content-type"];
  return typeof ct === "string" && JSON_TYPE.test(ct) && !ctx.response?.headers["content-encoding"];
}

export async function readResponseBody(ctx: RequestContext, limit: number): Promise<Buffer> {
  const r = ctx.response;
  if (!r?.body) return Buffer.alloc(0);
  if (Buffer.isBuffer(r.body)) return r.body;
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of r.body) {
    n += (c as Buffer).length;
    if (n > limit) throw new HttpError(502, `the upstream response exceeds ${limit} bytes, too large to transform`);
    chunks.push(c as Buffer);
  }
  const body = Buffer.concat(chunks, n);
  r.body = body; // read once: later middleware see the same bytes
  return body;
}

/** Parsed JSON of a JSON response, or undefined for other responses (left alone). */
export async function readResponseJson(ctx: RequestContext, limit: number): Promise<unknown> {
  if (!responseIsJson(ctx)) return undefined;
  const body = await readResponseBody(ctx, limit);
  if (body.length === 0) return undefined;
  try {
    return JSON.parse(body.toString("utf8"));
  } catch {
    throw new HttpError(502, "the upstream sent malformed JSON");
  }
}

export function replaceResponseJson(ctx: RequestContext, value: unknown): void {
  const r = ctx.response!;
  const body = Buffer.from(JSON.stringify(value));
  r.body = body;
  r.headers["content-length"] = String(body.length);
  delete r.headers["content-md5"];
  delete r.headers.etag; // a different representation now
}
