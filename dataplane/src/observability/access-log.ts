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
import { jsonMillis, jsonNumber, jsonStringBody as str } from "./json-line.js";

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
  /**
   * The route names of the last line and their escaped JSON: a data plane serves a handful of
   * routes, so most lines reuse the previous one's (three escape checks and six concatenations
   * fewer per line). Comparing the same string objects is a pointer compare.
   */
  private names = { pipeline: "", endpoint: "", backend: "", json: ',"pipeline":"","endpoint":"","backend":""' };

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
    // Hand-assembled in the order winston's format had; every string a client can reach (path,
    // request id, method, names, address) goes through jsonStringBody (`str`), and the quotes are
    // part of the template, so a value that needs no escaping is not copied into a new string.
    const now = Date.now();
    if (now !== this.stampMs) {
      this.stampMs = now;
      this.stamp = new Date(now).toISOString();
    }
    let names = this.names;
    if (pipeline !== names.pipeline || endpoint !== names.endpoint || backend !== names.backend) {
      names = this.names = {
        pipeline,
        endpoint,
        backend,
        json: `,"pipeline":"${str(pipeline)}","endpoint":"${str(endpoint)}","backend":"${str(backend)}"`,
      };
    }
    this.append(
      `{"level":"info","message":"access","component":"dataplane","timestamp":"${this.stamp}"` +
        `,"request_id":"${str(requestId)}","method":"${str(method)}"` +
        `,"path":"${str(path)}","status":${jsonNumber(status)},"duration_ms":${jsonMillis(durationMs)}` +
        (upstreamMs === undefined ? "" : `,"upstream_ms":${jsonMillis(upstreamMs)}`) +
        names.json +
        (client === undefined ? "" : `,"client":"${str(client)}"`) +
        (operation === undefined ? "" : `,"operation":"${str(operation)}"`) +
        "}\n",
    );
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
