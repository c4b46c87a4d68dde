/**
 * One raw exchange of a corpus case, and what a client sees of it reduced to the parts that
 * matter: each answer's status line, framing and upstream headers, body bytes, and whether the
 * server closed. Normalised only where two correct servers legitimately differ: `date` and
 * `keep-alive` (clock and timeout advertisement), request ids and trace ids (random per request),
 * the data plane's own port.
 */
import { connect } from "node:net";
import { createHash } from "node:crypto";
import type { Seen } from "./http1-rig.js";

export interface Case {
  name: string;
  /** Bytes to write; a number pauses that many milliseconds. */
  chunks: (Buffer | number)[];
  /** The methods of the requests in order, as a correct server would read them (HEAD has no body). */
  methods: string[];
  /** Half-close the client side after writing. */
  halfClose?: boolean;
  /** Leave (destroy the socket) once this many answer bytes arrived. */
  leaveAfter?: number;
}

export interface Raw {
  buf: Buffer;
  closed: boolean;
  timedOut: boolean;
}

interface Parsed {
  statusLine: string;
  headers: [string, string][];
  body: Buffer;
  complete: boolean;
}

/** Splits `buf` into answers; `methods` says which had no body (HEAD). Tolerant: stops where it cannot go on. */
export function parseResponses(buf: Buffer, methods: string[], closed: boolean): { answers: Parsed[]; rest: Buffer } {
  const answers: Parsed[] = [];
  let at = 0;
  let req = 0;
  while (at < buf.length) {
    const headEnd = buf.indexOf("\r\n\r\n", at, "latin1");
    if (headEnd < 0) break;
    const lines = buf.subarray(at, headEnd).toString("latin1").split("\r\n");
    const statusLine = lines[0] ?? "";
    const status = Number(/^HTTP\/\d\.\d (\d{3})/.exec(statusLine)?.[1] ?? NaN);
    if (Number.isNaN(status)) break;
    const headers = lines.slice(1).map((l): [string, string] => {
      const i = l.indexOf(":");
      return [l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim()];
    });
    const h = (n: string) => headers.find(([k]) => k === n)?.[1];
    let p = headEnd + 4;
    if (status < 200 && status !== 101) {
      answers.push({ statusLine, headers, body: Buffer.alloc(0), complete: true });
      at = p;
      continue;
    }
    const method = methods[req++] ?? "GET";
    let body: Buffer = Buffer.alloc(0);
    let complete = true;
    if (method === "HEAD" || status === 204 || status === 304 || status === 101) {
      // no body
    } else if (/chunked/i.test(h("transfer-encoding") ?? "")) {
      const parts: Buffer[] = [];
      complete = false;
      for (;;) {
        const lineEnd = buf.indexOf("\r\n", p, "latin1");
        if (lineEnd < 0) break;
        const size = parseInt(buf.subarray(p, lineEnd).toString("latin1"), 16);
        if (Number.isNaN(size)) break;
        if (size === 0) {
          // Trailer lines up to an empty one; kept (as text after the body) to be compared too.
          let q = lineEnd + 2;
          let trailerEnd: number;
          while ((trailerEnd = buf.indexOf("\r\n", q, "latin1")) > q) q = trailerEnd + 2;
          if (trailerEnd < 0) break;
          if (q > lineEnd + 2) parts.push(Buffer.from(`<trailers ${buf.subarray(lineEnd + 2, q).toString("latin1")}>`));
          p = trailerEnd + 2;
          complete = true;
          break;
        }
        if (lineEnd + 2 + size + 2 > buf.length) break;
        parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
        p = lineEnd + 2 + size + 2;
      }
      body = Buffer.concat(parts);
    } else if (h("content-length") !== undefined) {
      const n = Number(h("content-length"));
      body = buf.subarray(p, Math.min(buf.length, p + n));
      complete = body.length === n;
      p += body.length;
    } else {
      body = buf.subarray(p);
      complete = closed;
      p = buf.length;
    }
    answers.push({ statusLine, headers, body, complete });
    at = p;
    if (!complete || status === 101) break;
  }
  return { answers, rest: buf.subarray(at) };
}

/** How many final answers (not 1xx) are complete. */
function finals(buf: Buffer, methods: string[]): number {
  const { answers } = parseResponses(buf, methods, false);
  return answers.filter((a) => a.complete && !/^HTTP\/\d\.\d 1(?!01)/.test(a.statusLine)).length;
}

export interface Sent extends Raw {
  /** Waits up to `ms` more for the server to close (when it has not yet); resolves whether it did. */
  waitClose(ms: number): Promise<boolean>;
  /** Ends the client's side for good. */
  release(): void;
}

/**
 * Sends a case and collects the answer until the server closes, the client leaves, every request
 * got its answer and `graceMs` more passed without a close, or `timeoutMs` passed. The socket stays
 * open until `release()`, so a caller whose two servers disagree on closing can wait longer for it.
 */
export function exchange(port: number, c: Case, timeoutMs = 4000, graceMs = 120): Promise<Sent> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, "127.0.0.1");
    const got: Buffer[] = [];
    let size = 0;
    let done = false;
    let closed = false;
    let onClose: (() => void) | undefined;
    let grace: NodeJS.Timeout | undefined;
    const sent = (timedOut: boolean): Sent => ({
      buf: Buffer.concat(got),
      closed,
      timedOut,
      waitClose: (ms) =>
        closed
          ? Promise.resolve(true)
          : new Promise<boolean>((r) => {
              const t = setTimeout(() => r(closed), ms);
              onClose = () => (clearTimeout(t), r(true));
            }),
      release: () => sock.destroy(),
    });
    const finish = (timedOut = false) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(grace);
      if (c.leaveAfter !== undefined || timedOut) sock.destroy();
      resolve(sent(timedOut));
    };
    const markClosed = () => {
      if (closed) return;
      closed = true;
      onClose?.();
      finish();
    };
    const timer = setTimeout(() => finish(true), timeoutMs);
    sock.on("data", (d: Buffer) => {
      if (done) return;
      got.push(d);
      size += d.length;
      if (c.leaveAfter !== undefined && size >= c.leaveAfter) return finish();
      if (!grace && finals(Buffer.concat(got), c.methods) >= c.methods.length)
        grace = setTimeout(() => finish(), graceMs);
    });
    sock.on("end", markClosed);
    sock.on("close", markClosed);
    sock.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "ECONNRESET" || e.code === "EPIPE") return markClosed();
      clearTimeout(timer);
      reject(e);
    });
    sock.once("connect", () => {
      void (async () => {
        for (const ch of c.chunks) {
          if (typeof ch === "number") await new Promise((r) => setTimeout(r, ch));
          else if (!sock.destroyed) sock.write(ch);
        }
        if (c.halfClose && !sock.destroyed) sock.end();
      })();
    });
  });
}

/** Headers compared by value (framing, the upstream's own, the problem type); others by name only. */
const BY_VALUE = new Set([
  "content-length",
  "transfer-encoding",
  "connection",
  "content-type",
  "etag",
  "location",
  "allow",
  "upgrade",
  "x-up",
  "x-up-body-bytes",
]);
/** Legitimately different between two correct servers: the clock and the advertised idle timeout. */
const IGNORED = new Set(["date", "keep-alive"]);

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;
const TRACE = /\b[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}\b/gi;

function normText(s: string, dpPort: number): string {
  return s.replace(UUID, "<uuid>").replace(TRACE, "<trace>").split(String(dpPort)).join("<dp-port>");
}

function bodyView(b: Buffer, dpPort: number): string {
  if (b.length > 2048) return `<${b.length} bytes sha256:${createHash("sha256").update(b).digest("hex").slice(0, 16)}>`;
  return normText(b.toString("latin1"), dpPort);
}

export interface View {
  answers: {
    status: string;
    headers: Record<string, string>;
    names: string[];
    requestId: boolean;
    body: string;
    complete: boolean;
  }[];
  tail: string;
  closed: boolean;
  upstream: { method: string; url: string; headers: string[]; bodyBytes: number; bodySha: string }[];
}

export function view(raw: Raw, c: Case, seen: Seen[], dpPort: number): View {
  // A client that leaves mid-answer got however many bytes the socket delivered first: only what
  // the upstream received, and that both still serve, are compared.
  const { answers, rest } =
    c.leaveAfter === undefined
      ? parseResponses(raw.buf, c.methods, raw.closed)
      : { answers: [], rest: Buffer.alloc(0) };
  return {
    answers: answers.map((a) => {
      const headers: Record<string, string> = {};
      for (const [k, v] of a.headers) if (BY_VALUE.has(k)) headers[k] = headers[k] ? `${headers[k]}, ${v}` : v;
      return {
        status: a.statusLine,
        headers,
        names: [...new Set(a.headers.map(([k]) => k).filter((k) => !IGNORED.has(k)))].sort(),
        requestId: a.headers.some(([k]) => k === "x-request-id"),
        body: bodyView(a.body, dpPort),
        complete: a.complete,
      };
    }),
    tail: bodyView(rest, dpPort),
    // A client that left (or a case that timed out) did not learn whether the server would close.
    closed: c.leaveAfter !== undefined ? false : raw.closed,
    // Sorted: pipelined requests with bodies reach the upstream over different pool connections,
    // in an order neither server promises (node:http against itself showed both orders).
    upstream: seen
      .map((s) => ({
        method: s.method,
        url: s.url,
        // How a request body is framed upstream (content-length or chunked) depends on whether all
        // of it had arrived when the request left; node:http against itself showed both. The body
        // itself is compared (length and hash).
        headers: s.headers.map(([k, v]) =>
          k === "content-length" || k === "transfer-encoding" ? "<body framing>" : `${k}: ${normText(v, dpPort)}`,
        ),
        bodyBytes: s.bodyBytes,
        bodySha: s.bodySha,
      }))
      .sort((x, y) => (JSON.stringify(x) < JSON.stringify(y) ? -1 : 1)),
  };
}

/** A case's bytes as one JSON string, for the findings note. */
export function caseBytes(c: Case): string {
  return JSON.stringify(
    c.chunks.map((ch) => (typeof ch === "number" ? `<pause ${ch} ms>` : ch.toString("latin1"))).join(""),
  );
}
