/**
 * The access log: one JSON line per request, written in batches.
 *
 * Application logs go through winston. Access lines do not: winston formats every line through an
 * object-mode stream, a timestamp transform and safe-stable-stringify, then writes it with one
 * synchronous syscall. Profiling the passthrough benchmark put that at about a tenth of the
 * proxy's CPU per request (bench/README.md). Here a line is one JSON.stringify of a flat object
 * and the lines of one event-loop turn leave in a single write. The line shape matches winston's
 * JSON format (level, message, timestamp), so one parser reads both.
 */
import { createWriteStream, type WriteStream } from "node:fs";

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
}

const FLUSH_BYTES = 64 * 1024;

export class AccessLog {
  private pending = "";
  private scheduled = false;
  private file: WriteStream | undefined;
  private filePath: string | undefined;
  private stampMs = 0;
  private stamp = "";

  constructor(private readonly out: NodeJS.WritableStream = process.stdout) {}

  /** Also append lines to `path` (logging.log_to_file), or stop doing so when undefined. */
  setFile(path: string | undefined): void {
    if (path === this.filePath) return;
    this.flush();
    this.file?.end();
    this.filePath = path;
    this.file = path ? createWriteStream(path, { flags: "a" }) : undefined;
  }

  write(r: AccessRecord): void {
    // Hand-assembled: only the strings a client controls go through JSON.stringify.
    const now = Date.now();
    if (now !== this.stampMs) {
      this.stampMs = now;
      this.stamp = new Date(now).toISOString();
    }
    this.pending +=
      `{"level":"info","message":"access","component":"dataplane","timestamp":"${this.stamp}"` +
      `,"request_id":${JSON.stringify(r.request_id)},"method":${JSON.stringify(r.method)}` +
      `,"path":${JSON.stringify(r.path)},"status":${r.status},"duration_ms":${r.duration_ms}` +
      (r.upstream_ms === undefined ? "" : `,"upstream_ms":${r.upstream_ms}`) +
      `,"pipeline":${JSON.stringify(r.pipeline)},"endpoint":${JSON.stringify(r.endpoint)}` +
      `,"backend":${JSON.stringify(r.backend)}` +
      (r.client === undefined ? "" : `,"client":${JSON.stringify(r.client)}`) +
      "}\n";
    if (this.pending.length >= FLUSH_BYTES) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushCb);
    }
  }

  private readonly flushCb = () => this.flush();

  flush(): void {
    this.scheduled = false;
    if (!this.pending) return;
    const chunk = this.pending;
    this.pending = "";
    this.out.write(chunk);
    this.file?.write(chunk);
  }

  close(): Promise<void> {
    this.flush();
    const f = this.file;
    this.file = undefined;
    this.filePath = undefined;
    return f ? new Promise((r) => f.end(r)) : Promise.resolve();
  }
}
