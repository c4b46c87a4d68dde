/**
 * The access log: one JSON line per request, written in batches.
 *
 * Application logs go through winston. Access lines do not: winston formats every line through an
 * object-mode stream, a timestamp transform and safe-stable-stringify, then writes it with one
 * synchronous syscall. Profiling the passthrough benchmark put that at about a tenth of the
 * proxy's CPU per request (bench/README.md). Here a line is assembled by hand from its fixed fields
 * (json-line.ts escapes the strings a client controls, without a JSON.stringify per field), encoded
 * at once into a batch buffer, and a batch leaves in one write when it is full (64 KiB) or
 * `FLUSH_MS` after its first line, as nginx's `access_log ... buffer=64k flush=100ms` does. (One
 * write per event-loop turn, as before, was one synchronous write(2) per ~18 lines at 64
 * connections, and per line at low rates: a sixth of the access log's CPU, bench/README.md.) The
 * line shape matches winston's JSON format (level, message, timestamp), so one parser reads both.
 */
import { appendFileSync, createWriteStream, type WriteStream } from "node:fs";
import { jsonMillis, jsonNumber, jsonStringBody as str, thousandths } from "./json-line.js";

export interface AccessRecord {
  request_id: string;
  method: string;
  path: string;
  status: number;
  duration_ms: number;
  upstream_ms: number | undefined;
  pipeline: string;
  endpoint: string;
  backend: string;
  client: string | undefined;
  /** The DIMSE operation a request stands for (C-FIND, ...), for the `dicom` endpoint's requests. */
  operation?: string;
}

const HEAD = '{"level":"info","message":"access","component":"dataplane","timestamp":"';
const EMPTY_NAMES = ',"pipeline":"","endpoint":"","backend":""';
/** The most a line takes beside its head, names and strings: its fixed keys and three numbers. */
const FIXED_MOST = 256;

/**
 * A line as text: the same bytes `line` encodes into the batch, for the rare line that may not fit
 * the room left. Every string a client can reach (path, request id, method, names, address) goes
 * through jsonStringBody (`str`).
 */
function lineText(
  stamp: string,
  requestId: string,
  method: string,
  path: string,
  status: number,
  durationMs: number,
  upstreamMs: number | undefined,
  namesJson: string,
  client: string | undefined,
  operation: string | undefined,
): string {
  return (
    `${HEAD}${stamp}"` +
    `,"request_id":"${str(requestId)}","method":"${str(method)}"` +
    `,"path":"${str(path)}","status":${jsonNumber(status)},"duration_ms":${jsonMillis(durationMs)}` +
    (upstreamMs === undefined ? "" : `,"upstream_ms":${jsonMillis(upstreamMs)}`) +
    namesJson +
    (client === undefined ? "" : `,"client":"${str(client)}"`) +
    (operation === undefined ? "" : `,"operation":"${str(operation)}"`) +
    "}\n"
  );
}

/** `s` (ASCII, the line's own keys and numbers) at `p`; returns the end. */
function putAscii(b: Buffer, p: number, s: string): number {
  for (let i = 0; i < s.length; i++) b[p + i] = s.charCodeAt(i);
  return p + s.length;
}

/**
 * What goes between the quotes of `s`'s JSON literal, as UTF-8, at `p`; returns the end. Printable
 * ASCII but `"` and `\\` is copied as it is (the common case: ids, methods, paths, names,
 * addresses); a string with anything else is escaped by jsonStringBody and encoded as a whole.
 */
function putString(b: Buffer, p: number, s: string): number {
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7f || c === 0x22 || c === 0x5c) return p + b.write(str(s), p);
    b[p + i] = c;
  }
  return p + n;
}

/** A non-negative whole number's decimal digits at `p` (what String(n) gives); returns the end. */
function putUint(b: Buffer, p: number, n: number): number {
  let digits = 1;
  for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++;
  let q = p + digits;
  for (let x = n; q > p; x = Math.floor(x / 10)) b[--q] = 48 + (x % 10);
  return p + digits;
}

/** jsonMillis(n) at `p`, without making its string in the common case; returns the end. */
function putMillis(b: Buffer, p: number, n: number): number {
  const k = Math.round(n * 1000);
  if (k / 1000 !== n || k < 0 || k > 1e15) return putAscii(b, p, jsonMillis(n));
  const whole = Math.floor(k / 1000);
  return putAscii(b, putUint(b, p, whole), thousandths(k - whole * 1000));
}

/** A batch's buffer: a full one is written at once. */
const BATCH_BYTES = 64 * 1024;
/** A batch up to this size is copied out at its flush, so its buffer is reused (64 KiB per 100 ms otherwise). */
const SMALL_BATCH = 8 * 1024;
/** The longest a line waits for its batch to be written (README.md, "Access log"). */
export const FLUSH_MS = 100;

// Logs with lines not yet written. A process that exits without close() (a fatal error, an
// embedder's process.exit) still gets them out: stdout to a file or a pipe is written synchronously
// on Linux, and the file copy is appended synchronously. One listener for all of them.
const open = new Set<AccessLog>();
let exitHooked = false;
function flushAllAtExit(): void {
  for (const log of open) log.flushSync();
}

export class AccessLog {
  /**
   * The batch: lines encoded as they come, so a line's string dies young (a batch held as a string
   * would outlive a scavenge or two at the rates it takes to fill one). A buffer that was written
   * may still be queued in a stream (the log file's), so a large batch gets a new one (see take).
   */
  private batch = Buffer.allocUnsafeSlow(BATCH_BYTES);
  private used = 0;
  /** One timer for the life of the log, re-armed (`refresh`) by the first line after it fired. */
  private timer: NodeJS.Timeout | undefined;
  /** The timer is pending. */
  private armed = false;
  private file: WriteStream | undefined;
  private filePath: string | undefined;
  private stampMs = 0;
  private stamp = "";
  /** The line's bytes up to the request id's value: the fixed fields and the timestamp. */
  private head = Buffer.alloc(0);
  /**
   * The route names of the last line and their escaped JSON: a data plane serves a handful of
   * routes, so most lines reuse the previous one's (three escape checks and six concatenations
   * fewer per line). Comparing the same string objects is a pointer compare.
   */
  private names = { pipeline: "", endpoint: "", backend: "", json: EMPTY_NAMES, bytes: Buffer.from(EMPTY_NAMES) };

  /**
   * `maxWrite`: the largest write, cut at a line end (0: no cap). The workers of a group share one
   * stdout pipe, and only a write of at most PIPE_BUF (4096) bytes is atomic on a pipe: a bigger
   * batch could interleave with another worker's and split lines. `flushMs`: the longest a line
   * waits (tests shorten or lengthen it).
   */
  constructor(
    private readonly out: NodeJS.WritableStream = process.stdout,
    private readonly maxWrite = 0,
    private readonly flushMs = FLUSH_MS,
  ) {
    open.add(this);
    if (!exitHooked) {
      exitHooked = true;
      process.on("exit", flushAllAtExit);
    }
  }

  /** Also append lines to `path` (logging.log_to_file), or stop doing so when undefined. */
  setFile(path: string | undefined): void {
    if (path === this.filePath) return;
    this.flush();
    this.file?.end();
    this.filePath = path;
    this.file = path ? createWriteStream(path, { flags: "a" }) : undefined;
  }

  write(r: AccessRecord): void {
    this.line(
      r.request_id,
      r.method,
      r.path,
      r.status,
      r.duration_ms,
      r.upstream_ms,
      r.pipeline,
      r.endpoint,
      r.backend,
      r.client,
      r.operation,
    );
  }

  /**
   * `write` with the record's fields as arguments, in its order: what the executor calls, so a
   * request makes no record object (one per request on the lean path, issue 18).
   */
  line(
    requestId: string,
    method: string,
    path: string,
    status: number,
    durationMs: number,
    upstreamMs: number | undefined,
    pipeline: string,
    endpoint: string,
    backend: string,
    client: string | undefined,
    operation: string | undefined,
  ): void {
    const now = Date.now();
    if (now !== this.stampMs) {
      this.stampMs = now;
      this.stamp = new Date(now).toISOString();
      this.head = Buffer.from(`${HEAD}${this.stamp}","request_id":"`, "latin1");
    }
    let names = this.names;
    if (pipeline !== names.pipeline || endpoint !== names.endpoint || backend !== names.backend) {
      const json = `,"pipeline":"${str(pipeline)}","endpoint":"${str(endpoint)}","backend":"${str(backend)}"`;
      names = this.names = { pipeline, endpoint, backend, json, bytes: Buffer.from(json) };
    }
    // The line is encoded straight into the batch, field by field: no string is built for it
    // (its ~10 concatenations were ~720 B per request, bench/README.md). That needs the room for
    // the longest it can be: a client's UTF-16 unit takes at most 6 bytes (\u00XX), a number 24.
    const clientLen = client === undefined ? 0 : client.length;
    const opLen = operation === undefined ? 0 : operation.length;
    const most =
      this.head.length +
      names.bytes.length +
      6 * (requestId.length + method.length + path.length + clientLen + opLen) +
      FIXED_MOST;
    if (this.used + most > BATCH_BYTES) {
      // Near a batch's end (or a line longer than one): the line as text, which append fits.
      this.append(
        lineText(this.stamp, requestId, method, path, status, durationMs, upstreamMs, names.json, client, operation),
      );
      return;
    }
    const b = this.batch;
    let p = this.used;
    b.set(this.head, p);
    p = putString(b, p + this.head.length, requestId);
    p = putAscii(b, p, '","method":"');
    p = putString(b, p, method);
    p = putAscii(b, p, '","path":"');
    p = putString(b, p, path);
    p = putAscii(b, p, '","status":');
    p = Number.isSafeInteger(status) && status >= 0 ? putUint(b, p, status) : putAscii(b, p, jsonNumber(status));
    p = putAscii(b, p, ',"duration_ms":');
    p = putMillis(b, p, durationMs);
    if (upstreamMs !== undefined) {
      p = putAscii(b, p, ',"upstream_ms":');
      p = putMillis(b, p, upstreamMs);
    }
    b.set(names.bytes, p);
    p += names.bytes.length;
    if (client !== undefined) {
      p = putAscii(b, p, ',"client":"');
      p = putString(b, p, client);
      b[p++] = 0x22;
    }
    if (operation !== undefined) {
      p = putAscii(b, p, ',"operation":"');
      p = putString(b, p, operation);
      b[p++] = 0x22;
    }
    b[p++] = 0x7d; // }
    b[p++] = 0x0a;
    this.used = p;
    this.wrote();
  }

  /** `text` (whole lines) into the batch; a batch it would overflow is written first. */
  private append(text: string): void {
    // UTF-8 takes at most 3 bytes per UTF-16 unit: the exact length only near the end.
    if (this.used + text.length * 3 > BATCH_BYTES) {
      const n = Buffer.byteLength(text);
      if (this.used + n > BATCH_BYTES) {
        this.flush();
        if (n > BATCH_BYTES) return this.emit(Buffer.from(text)); // a line longer than a batch, alone
      }
    }
    this.used += this.batch.write(text, this.used);
    this.wrote();
  }

  /** Lines went into the batch: a full one leaves now, else the timer is armed for it. */
  private wrote(): void {
    if (this.used === BATCH_BYTES) this.flush();
    else if (!this.armed) {
      this.armed = true;
      if (this.timer) this.timer.refresh();
      else (this.timer = setTimeout(this.flushCb, this.flushMs)).unref(); // never what keeps a process up
    }
  }

  // The timer is never cleared (a cleared Timeout cannot be refreshed): when a batch left earlier
  // (full, a flush), it fires on the next batch's lines or on nothing, which only makes the wait shorter.
  private readonly flushCb = () => {
    this.armed = false;
    this.flush();
  };

  /**
   * Takes the batch written so far. A small one (the timer's, at low rates) leaves as a copy and the
   * buffer is written into again; a large one leaves as it is, and a new buffer takes its place.
   */
  private take(): Buffer | undefined {
    const used = this.used;
    if (used === 0) return undefined;
    this.used = 0;
    if (used <= SMALL_BATCH) return Buffer.from(this.batch.subarray(0, used));
    const chunk = this.batch.subarray(0, used);
    this.batch = Buffer.allocUnsafeSlow(BATCH_BYTES);
    return chunk;
  }

  private emit(chunk: Buffer): void {
    if (this.maxWrite) for (const part of lineChunks(chunk, this.maxWrite)) this.out.write(part);
    else this.out.write(chunk);
    this.file?.write(chunk);
  }

  /** Writes the batch now (a reload's file change, shutdown). */
  flush(): void {
    const chunk = this.take();
    if (chunk) this.emit(chunk);
  }

  /** At process exit: the event loop is gone, so only synchronous writes still land. */
  flushSync(): void {
    const chunk = this.take();
    if (!chunk) return;
    if (this.maxWrite) for (const part of lineChunks(chunk, this.maxWrite)) this.out.write(part);
    else this.out.write(chunk);
    if (this.filePath) appendFileSync(this.filePath, chunk);
  }

  close(): Promise<void> {
    this.flush();
    open.delete(this);
    const f = this.file;
    this.file = undefined;
    this.filePath = undefined;
    return f ? new Promise((r) => f.end(r)) : Promise.resolve();
  }
}

/** `text` (whole lines) as buffers of at most `max` bytes, each ending at a line end (a longer line alone). */
export function lineChunks(text: string | Buffer, max: number): Buffer[] {
  const buf = typeof text === "string" ? Buffer.from(text) : text;
  const out: Buffer[] = [];
  let start = 0;
  while (start < buf.length) {
    let end = Math.min(start + max, buf.length);
    if (end < buf.length) {
      const nl = buf.lastIndexOf(0x0a, end - 1);
      end = nl >= start ? nl + 1 : buf.indexOf(0x0a, end) + 1 || buf.length;
    }
    out.push(buf.subarray(start, end));
    start = end;
  }
  return out;
}
