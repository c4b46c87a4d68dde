/**
 * One client connection of the llhttp server lane: Node's own HTTPParser (REQUEST mode, strict,
 * 16 KiB of head) reads it one request at a time. Each head is parsed up to its end and no further,
 * so the connection always knows where the next one starts: the parser is given the bytes up to the
 * head's end (strict llhttp ends a head at its first CRLF CRLF, nowhere else) and told the message
 * has no body, or, when that end is not in the read (split across reads), stopped there
 * (STOP_AFTER_HEAD, which needs a fresh start after it). A head the lane
 * serves (no body, no Expect, no Upgrade, HTTP/1.0 or 1.1, a route that takes it) gets a
 * LaneRequest/LaneResponse; for anything else the connection is handed to node:http for good,
 * with every byte from the start of that head put back to be read again.
 *
 * Its timers are one field on the listener's coarse clock (http1/deadlines.ts): the head's
 * deadline (headersTimeout, from the first byte of a head, or from accept for the first), then
 * the keep-alive idle deadline between requests; none while a response is under way (node:http's
 * requestTimeout is 0 on these listeners).
 */
import { maxHeaderSize } from "node:http";
import type { Socket } from "node:net";
import type { Deadlines, Expiring } from "../deadlines.js";
import { HTTPParser, METHODS, STOP_AFTER_HEAD, type LlhttpParser } from "../llhttp.js";
import { LaneRequest } from "./request.js";
import { LaneResponse, type ResponseOwner } from "./response.js";

/**
 * node:http's head limit (--max-http-header-size, 16 KiB by default): the binding counts the
 * target, names and values (not the whitespace and line ends) and answers HPE_HEADER_OVERFLOW past it.
 */
export const MAX_HEADER_BYTES = maxHeaderSize;
/**
 * node:http's server default for header lines (maxHeadersCount 1000, as pairs): the binding answers
 * HPE_HEADER_OVERFLOW past it too, reading it from the parser object.
 */
const MAX_HEADER_PAIRS = 2000;
/**
 * The raw bytes a head may take, whitespace and all. The binding's count skips optional whitespace,
 * so a head padded with it could otherwise grow (and be kept for a hand-off) without bound; no
 * head node:http accepts comes near it (1,000 lines at most, 16 KiB of names and values).
 */
const MAX_RAW_HEAD_BYTES = 2 * MAX_HEADER_BYTES;

/** What a connection needs from its listener. */
export interface LaneHost {
  readonly deadlines: Deadlines;
  readonly headersTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  /** Serves the request, or returns false having written nothing (the connection is then handed off). */
  serve(req: LaneRequest, res: LaneResponse): boolean;
  /** node:http takes the connection for good and reads `replay` first. */
  handOff(socket: Socket, replay: Buffer): void;
  /** Answers a bad head (400/431) or a late one (408) as node:http's clientError does here, and closes. */
  reject(socket: Socket, status: 400 | 408 | 431): void;
  /** The connection is no longer the lane's (closed or handed off). */
  released(conn: LaneConnection): void;
}

const enum Phase {
  /** Between requests: the keep-alive deadline runs. */
  Idle,
  /** A head is arriving (or the first is awaited): the headers deadline runs. */
  Head,
  /** A response is under way; bytes that arrive are kept for after it, and the socket paused. */
  Busy,
  /** Closed, rejected or handed off. */
  Gone,
}

const noop = (): void => {};

/** Where a head ends: strict llhttp takes CRLF line ends only, and no folded lines. */
const HEAD_END = Buffer.from("\r\n\r\n", "latin1");

/**
 * Where the head ends in `buf` (the index after its CRLF CRLF), or -1. `prev`, the read before it of
 * the same head, may hold the first 1–3 bytes of it. A scan of every other byte in JS: a head is a
 * few hundred bytes, where Buffer#indexOf's call costs more than the search (~0.1 µs here).
 */
function headEnd(prev: Buffer | undefined, buf: Buffer): number {
  const n = buf.length;
  if (prev !== undefined) {
    for (let k = 3; k >= 1; k--) {
      if (prev.length < k || n < 4 - k) continue;
      let match = true;
      for (let i = 0; i < 4 && match; i++) {
        match = (i < k ? prev[prev.length - k + i] : buf[i - k]) === HEAD_END[i];
      }
      if (match) return 4 - k;
    }
  }
  // Every CR LF CR LF has an odd index on one of its CRs or LFs: look there, then around.
  for (let i = 1; i < n; i += 2) {
    const v = buf[i];
    if (v === 10) {
      if (i >= 3 && buf[i - 1] === 13 && buf[i - 2] === 10 && buf[i - 3] === 13) return i + 1;
      if (i + 2 < n && buf[i + 2] === 10 && buf[i + 1] === 13 && buf[i - 1] === 13) return i + 3;
    } else if (v === 13) {
      if (i >= 2 && i + 1 < n && buf[i + 1] === 10 && buf[i - 1] === 10 && buf[i - 2] === 13) return i + 2;
      if (i + 3 < n && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i + 4;
    }
  }
  return -1;
}

/** kOnHeadersComplete's answer for a head parsed to its exact end: no body, the message is complete. */
const SKIP_BODY = 1;

/** Bytes other than the CR/LF llhttp skips before a request line. */
function begunHead(chunk: Buffer): boolean {
  for (let i = 0; i < chunk.length; i++) if (chunk[i] !== 13 && chunk[i] !== 10) return true;
  return false;
}

/** The async resource every lane parser is initialized with (async_hooks see one per connection). */
const RESOURCE = Object.freeze({ type: "HARMONY_LANE_REQUEST" });

export class LaneConnection implements Expiring, ResponseOwner {
  deadline = 0;
  private phase = Phase.Head;
  /**
   * The head deadline is armed (from accept for the first head, from the first read of a later
   * one). A later head that arrives whole in one read, the common case, never arms it.
   */
  private headTimed = true;
  private readonly parser: LlhttpParser;
  /** Every read since the current head began: what node:http gets on a hand-off. */
  private chunks: Buffer[] = [];
  /** Bytes of the current head read so far (MAX_RAW_HEAD_BYTES). */
  private headBytes = 0;
  /** Bytes read while a response was under way (pipelined requests), parsed after it. */
  private pending: Buffer | undefined;
  private response: LaneResponse | undefined;
  /** Fields of a head with more than 32 of them, as kOnHeaders flushed them; and its target. */
  private flushedHeaders: string[] | undefined;
  private flushedUrl = "";
  // The head just parsed (kOnHeadersComplete), read by dispatch().
  private complete = false;
  private major = 0;
  private minor = 0;
  private method = 0;
  private url = "";
  private headers: string[] = [];
  private upgrade = false;
  private keepAlive = false;
  /** The bytes given to the parser end where the head ends: it completes the message there. */
  private exact = false;
  /**
   * The parser needs a fresh start before the next head: a head was stopped (llhttp then treats
   * the message as an upgrade until the next head completes, and reports no error on the way: a
   * 17 KiB head would pass), or it flushed its fields early (the binding keeps doing so after).
   */
  private stale = false;
  /** A second head completed in one execute (not expected of strict llhttp): node:http takes over. */
  private twice = false;

  constructor(
    private readonly socket: Socket,
    private readonly host: LaneHost,
  ) {
    const p = new HTTPParser();
    (p as LlhttpParser & { maxHeaderPairs: number }).maxHeaderPairs = MAX_HEADER_PAIRS;
    p.initialize(HTTPParser.REQUEST, RESOURCE, MAX_HEADER_BYTES, 0);
    p[HTTPParser.kOnHeaders] = this.onHeaders;
    p[HTTPParser.kOnHeadersComplete] = this.onHeadersComplete;
    this.parser = p;
    host.deadlines.arm(this, host.headersTimeoutMs);
    socket.on("data", this.onData);
    socket.on("drain", this.onDrain);
    socket.on("end", this.onEnd);
    socket.on("close", this.onClose);
    socket.on("error", noop); // a reset: 'close' follows
  }

  /** No request is under way or arriving (node:http's closeIdleConnections closes such ones). */
  get idle(): boolean {
    return this.phase === Phase.Idle;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private readonly onHeaders = (headers: string[], url: string): void => {
    const kept = (this.flushedHeaders ??= []);
    for (let i = 0; i < headers.length; i++) kept.push(headers[i]!);
    this.flushedUrl += url;
  };

  private readonly onHeadersComplete = (
    versionMajor: number,
    versionMinor: number,
    headers: string[] | undefined,
    method: number | undefined,
    url: string | undefined,
    _status: number,
    _message: string,
    upgrade: boolean,
    keepAlive: boolean,
  ): number => {
    if (this.complete) {
      this.twice = true;
      return STOP_AFTER_HEAD;
    }
    if (headers === undefined) {
      // More than 32 fields: they came through kOnHeaders, and so did the target.
      headers = this.flushedHeaders ?? [];
      url = this.flushedUrl;
      this.flushedHeaders = undefined;
      this.flushedUrl = "";
      this.stale = true;
    }
    this.complete = true;
    this.major = versionMajor;
    this.minor = versionMinor;
    this.method = method ?? 0;
    this.url = url ?? "";
    this.headers = headers;
    this.upgrade = upgrade;
    this.keepAlive = keepAlive;
    // A head the lane serves has no body; one with a body is handed off, parser and all.
    if (this.exact) return SKIP_BODY;
    this.stale = true;
    return STOP_AFTER_HEAD;
  };

  private readonly onData = (chunk: Buffer): void => {
    if (this.phase === Phase.Busy) {
      this.pending = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
      this.socket.pause(); // one request at a time, as node:http pauses a pipelining client
      return;
    }
    if (this.phase !== Phase.Gone) this.parse(chunk);
  };

  private parse(buf: Buffer): void {
    for (;;) {
      if (this.phase === Phase.Idle) {
        // The idle deadline stands until this head proves incomplete (below) or is dispatched.
        this.phase = Phase.Head;
        this.headTimed = false;
      }
      const chunks = this.chunks;
      // Up to the head's end when it is in this read (usually the whole read), else all of it.
      const end = headEnd(chunks.length === 0 ? undefined : chunks[chunks.length - 1], buf);
      chunks.push(buf);
      const cut = end < 0 ? buf.length : end;
      this.exact = end >= 0;
      const n = this.parser.execute(cut === buf.length ? buf : buf.subarray(0, cut));
      if (typeof n !== "number") {
        this.release();
        this.host.reject(this.socket, n.code === "HPE_HEADER_OVERFLOW" ? 431 : 400);
        return;
      }
      this.headBytes += n;
      if (this.headBytes > MAX_RAW_HEAD_BYTES) {
        this.release();
        this.host.reject(this.socket, 431);
        return;
      }
      if (!this.complete && n < buf.length) {
        if (!this.exact || n === 0) {
          // Not a state strict llhttp leaves a head in; refused as a bad head rather than guessed at.
          this.release();
          this.host.reject(this.socket, 400);
          return;
        }
        // Empty lines before a request line (llhttp skips them): the head starts after them.
        chunks.length = 0;
        this.headBytes = 0;
        buf = buf.subarray(n);
        continue;
      }
      if (!this.complete) {
        // The head goes on in the next read; its time runs from this one (never re-armed, so a
        // client dripping a head cannot push its deadline on).
        if (!this.headTimed) {
          this.headTimed = true;
          this.host.deadlines.arm(this, this.host.headersTimeoutMs);
        }
        return;
      }
      this.complete = false;
      this.headBytes = 0;
      if (this.stale) {
        // 0.2–0.5 µs: only after a head split across reads, or one of more than 32 fields.
        this.stale = false;
        this.parser.initialize(HTTPParser.REQUEST, RESOURCE, MAX_HEADER_BYTES, 0);
      }
      if (this.twice || !this.dispatch()) {
        const replay = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
        this.release();
        this.host.handOff(this.socket, replay);
        return;
      }
      chunks.length = 0;
      if (n === buf.length) return;
      const rest = buf.subarray(n);
      if (this.phase === Phase.Gone) return;
      if (this.phase === Phase.Busy) {
        this.pending = rest;
        this.socket.pause();
        return;
      }
      buf = rest; // answered already: the next pipelined head
    }
  }

  /** Serves the head just parsed on the lane; false: it is not one the lane serves. */
  private dispatch(): boolean {
    if (!this.servable()) return false;
    const socket = this.socket;
    const req = new LaneRequest(socket, this.major, this.minor, METHODS[this.method] ?? "GET", this.url, this.headers);
    const res = new LaneResponse(req, socket, this.keepAlive, this.host.keepAliveTimeoutMs, this);
    this.response = res;
    this.phase = Phase.Busy;
    this.host.deadlines.disarm(this);
    if (this.host.serve(req, res)) return true;
    this.response = undefined;
    this.phase = Phase.Head;
    return false;
  }

  /**
   * A body-less request of HTTP/1.0 or 1.1 with nothing node:http treats specially: no Expect
   * (100-continue), no Upgrade or CONNECT, and a Host on HTTP/1.1 (node:http answers 400 without).
   */
  private servable(): boolean {
    if (this.major !== 1 || this.upgrade) return false;
    const h = this.headers;
    let host = this.minor === 0;
    for (let i = 0; i < h.length; i += 2) {
      const name = h[i]!;
      switch (name.length) {
        case 4:
          if (name.toLowerCase() === "host") host = true;
          break;
        case 6:
          if (name.toLowerCase() === "expect") return false;
          break;
        case 7:
          if (name.toLowerCase() === "upgrade") return false;
          break;
        case 14:
          if (name.toLowerCase() === "content-length" && h[i + 1] !== "0") return false;
          break;
        case 17:
          if (name.toLowerCase() === "transfer-encoding") return false;
          break;
      }
    }
    return host;
  }

  responseDone(res: LaneResponse, last: boolean): void {
    if (res !== this.response) return;
    this.response = undefined;
    if (this.phase === Phase.Gone) return;
    if (last) {
      // node:http's destroySoon: the bytes written go out, then the connection closes (end()
      // alone would leave a half-open connection to a client that never closes its side).
      this.release();
      const s = this.socket;
      s.end();
      if (s.writableFinished) s.destroy();
      else s.once("finish", () => s.destroy());
      return;
    }
    this.phase = Phase.Idle;
    this.headTimed = false;
    this.host.deadlines.arm(this, this.host.keepAliveTimeoutMs);
    const pending = this.pending;
    if (pending) {
      this.pending = undefined;
      // After the current call stack (the exchange settling, its access line): then the next head.
      process.nextTick(this.resume, pending);
    }
  }

  private readonly resume = (pending: Buffer): void => {
    if (this.phase === Phase.Gone) return;
    this.socket.resume();
    this.parse(pending);
  };

  private readonly onDrain = (): void => {
    this.response?.socketDrained();
  };

  /**
   * The client ended its side. As node:http here (httpAllowHalfOpen off): a response under way is
   * abandoned with the connection, a head cut short is a 400, otherwise the connection is ended.
   */
  private readonly onEnd = (): void => {
    if (this.phase === Phase.Gone) return;
    const phase = this.phase;
    // llhttp takes empty lines between messages: only a head begun is cut short.
    const partial = phase === Phase.Head && this.chunks.some(begunHead);
    this.release();
    if (phase === Phase.Busy) this.socket.destroy();
    else if (partial) this.host.reject(this.socket, 400);
    else this.socket.end();
  };

  private readonly onClose = (): void => {
    this.release();
    const res = this.response;
    if (res && !res.writableFinished) {
      // node:http's onServerResponseClose: the client left mid-answer; the exchange aborts on it.
      res.destroyed = true;
      res.emit("close");
    }
  };

  /** Deadline passed: a head not complete in time is a 408; an idle keep-alive is closed. */
  expire(): void {
    if (this.phase === Phase.Head) {
      this.release();
      this.host.reject(this.socket, 408);
    } else if (this.phase === Phase.Idle) {
      this.release();
      this.socket.destroy();
    }
  }

  /** The lane is done with this connection: listeners, timer and parser go; the socket stays open. */
  private release(): void {
    if (this.phase === Phase.Gone) return;
    this.phase = Phase.Gone;
    this.host.deadlines.disarm(this);
    const s = this.socket;
    s.off("data", this.onData);
    s.off("drain", this.onDrain);
    s.off("end", this.onEnd);
    this.parser.close();
    this.chunks = [];
    this.host.released(this);
  }
}
