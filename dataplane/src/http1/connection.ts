/**
 * One keep-alive connection to the upstream: writes a request, parses its answer with Node's llhttp
 * binding, one exchange at a time (never pipelined).
 *
 * A body with a content-length is not run through the parser: the parser sees only the head, and
 * the socket's own buffers are handed on ("bypass", see bench/http-passthrough/floor-raw.mjs),
 * because the binding copies every body chunk into JS. Chunked and close-delimited bodies are
 * decoded by the parser. Errors are undici's classes, so the backend maps them to the same
 * 502/504 answers whichever engine runs.
 */
import { connect, type Socket } from "node:net";
import { maxHeaderSize } from "node:http";
import type { IncomingHttpHeaders } from "node:http";
import { errors } from "undici";
import { HTTPParser, type LlhttpParser, type OnHeadersComplete } from "./llhttp.js";
import { frame } from "./wire.js";
import { writeBody } from "./body-writer.js";
import { ReadBuffer } from "./read-buffer.js";
import type { Exchange, ExchangeHost } from "./exchange.js";

export interface ConnectionOwner {
  readonly host: string;
  readonly port: number;
  readonly connectTimeout: number;
  /** Idle time before a parked connection closes, unless the upstream's Keep-Alive header says less. */
  readonly keepAliveTimeout: number;
  /** The connection finished an exchange and can carry another. */
  release(c: Connection): void;
  /** The connection is closed. */
  forget(c: Connection): void;
  /** A kept-alive socket was found closed before any answer: send `ex` again elsewhere. */
  retry(ex: Exchange): void;
}

const EMPTY = Buffer.alloc(0);
/** undici's margin below the upstream's announced keep-alive timeout, and its cap. */
const KEEP_ALIVE_THRESHOLD = 2000;
const KEEP_ALIVE_MAX = 600_000;

/** undici's parse error, code HPE_<code> (its typings omit the constructor's code argument). */
function parserError(reason: string, code: string): Error {
  const e = new errors.HTTPParserError(`Response does not match the HTTP/1.1 protocol (${reason})`);
  return Object.assign(e, { code: `HPE_${code}` });
}

export class Connection implements ExchangeHost {
  readonly socket: Socket;
  private readonly parser: LlhttpParser = new HTTPParser();
  private readonly reads = new ReadBuffer();
  private ex: Exchange | undefined;
  /** Exchanges completed on this socket. */
  private used = 0;
  private connected = false;
  private keepAlive = true;
  /** Not to be reused after the current exchange (a HEAD, a Keep-Alive timeout too short to use). */
  private closeAfter = false;
  /** Nothing of the current answer's head has been parsed yet: it may be isolated for the bypass. */
  private fresh = true;
  /** The parser is executing a head cut out of the buffer. */
  private isolated = false;
  /** The parser ran over more than an isolated head: reset it before the next exchange. */
  private dirty = false;
  /** Bytes of a counted body still to hand on past the parser. */
  private bodyLeft = 0;
  /** The current message is informational (1xx): a final answer follows. */
  private info = false;
  private headSeen = false;
  /** Header fields the parser flushed before the head ended (more than 32 of them). */
  private fields: string[] = [];
  private bodyPending = false;
  private detachBody: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private bodyPhase = false;
  private idleTimer: NodeJS.Timeout | undefined;
  private idleFor: number;
  /** Completed inside a data event: handed back to the pool once the event's bytes are all seen. */
  private releasing = false;
  private error: Error | undefined;

  constructor(
    private readonly owner: ConnectionOwner,
    first: Exchange,
  ) {
    this.idleFor = owner.keepAliveTimeout;
    this.ex = first;
    this.parser.initialize(HTTPParser.RESPONSE, {}, maxHeaderSize, 0);
    this.parser[HTTPParser.kOnHeaders] = (f: string[]) => void this.fields.push(...f);
    this.parser[HTTPParser.kOnHeadersComplete] = this.onHeadersComplete;
    this.parser[HTTPParser.kOnBody] = (chunk: Buffer) => this.onBody(chunk);
    this.parser[HTTPParser.kOnMessageComplete] = () => this.onMessageComplete();
    const socket = connect({
      host: owner.host,
      port: owner.port,
      noDelay: true,
      // Reads go to the connection's own buffer, handed straight to onData (no 'data' event).
      onread: {
        buffer: this.reads.next,
        callback: (n: number, buf: Uint8Array) => {
          this.onData((buf as Buffer).subarray(0, n));
          return true; // a handler that wants the socket paused pauses it itself
        },
      },
    });
    this.socket = socket;
    this.timer = setTimeout(() => {
      const msg = `Connect Timeout Error (attempted address: ${owner.host}:${owner.port}, timeout: ${owner.connectTimeout}ms)`;
      socket.destroy(new errors.ConnectTimeoutError(msg));
    }, owner.connectTimeout);
    socket.once("connect", () => {
      clearTimeout(this.timer);
      this.connected = true;
      socket.setKeepAlive(true, 60_000);
      const ex = this.ex!;
      this.ex = undefined;
      this.start(ex);
    });
    socket.on("end", () => this.onEnd());
    socket.on("error", (e) => (this.error ??= e));
    socket.on("close", () => this.onClose());
  }

  /** Sends `ex` on this (connected, idle) socket. */
  start(ex: Exchange): void {
    clearTimeout(this.idleTimer);
    if (ex.done) return this.owner.release(this);
    if (this.dirty) this.parser.initialize(HTTPParser.RESPONSE, {}, maxHeaderSize, 0);
    this.dirty = false;
    this.ex = ex;
    ex.conn = this;
    ex.gotBytes = false;
    this.fresh = true;
    this.keepAlive = true;
    this.info = false;
    this.headSeen = false;
    this.fields = [];
    this.closeAfter = ex.out.method === "HEAD";
    this.socket.resume(); // a handler may have paused it during the previous answer
    if (!ex.started) {
      ex.started = true;
      try {
        ex.handler.onRequestStart?.(ex, {});
      } catch (e) {
        return this.fail(ex, e as Error);
      }
      if (ex.done) return;
    }
    this.arm(ex.headersTimeout, false);
    const out = ex.out;
    const head = frame(out);
    if (out.body === null || Buffer.isBuffer(out.body)) {
      if (out.body) {
        this.socket.cork();
        this.socket.write(head, "latin1");
        this.socket.write(out.body);
        this.socket.uncork();
      } else this.socket.write(head, "latin1");
      return;
    }
    this.socket.write(head, "latin1");
    this.bodyPending = true;
    this.detachBody = writeBody(this.socket, out.body, out.length, (err) => {
      this.detachBody = undefined;
      this.bodyPending = false;
      if (err) this.fail(ex, err);
    });
  }

  /** Parks the socket: closes it after the idle time. */
  park(): void {
    this.socket.resume(); // so that the upstream closing it is noticed
    this.idleTimer = setTimeout(() => this.socket.destroy(), this.idleFor);
  }

  pauseReading(): void {
    this.socket.pause();
  }

  resumeReading(): void {
    this.socket.resume();
  }

  fail(ex: Exchange, err: Error): void {
    if (ex.done) return;
    if (this.ex === ex) {
      this.ex = undefined;
      clearTimeout(this.timer);
      this.detachBody?.();
      this.detachBody = undefined;
      this.bodyPending = false;
      this.socket.destroy();
    }
    ex.error(err);
  }

  /** Closes the socket, failing the exchange it carries with `err`. */
  destroy(err: Error): void {
    if (this.ex) this.fail(this.ex, err);
    else if (!this.connected) this.socket.destroy(err);
    else this.socket.destroy();
  }

  private arm(ms: number, body: boolean): void {
    clearTimeout(this.timer);
    this.timer = ms > 0 ? setTimeout(this.onTimeout, ms) : undefined;
    this.bodyPhase = body;
  }

  private readonly onTimeout = () => {
    const ex = this.ex;
    if (!ex) return;
    if (!this.bodyPhase) return this.fail(ex, new errors.HeadersTimeoutError());
    // As undici: a body paused by a slow client is not the upstream's fault.
    if (ex.paused) return void this.timer?.refresh();
    this.fail(ex, new errors.BodyTimeoutError());
  };

  private onData(buf: Buffer): void {
    const ex = this.ex;
    // Bytes nobody asked for: an upstream out of step with us is not trusted with the next request.
    if (!ex) return void this.socket.destroy();
    ex.gotBytes = true;
    if (this.bodyPhase) this.timer?.refresh();
    while (buf.length > 0 && this.ex === ex) {
      if (this.bodyLeft > 0) {
        buf = this.bypass(ex, buf);
        continue;
      }
      if (this.fresh) {
        const end = buf.indexOf("\r\n\r\n");
        if (end >= 0) {
          this.fresh = false;
          this.isolated = true;
          const r = this.parser.execute(end + 4 === buf.length ? buf : buf.subarray(0, end + 4));
          this.isolated = false;
          if (r instanceof Error) return this.parseError(ex, r);
          buf = buf.subarray(end + 4);
          if (this.bodyLeft > 0) this.parser.initialize(HTTPParser.RESPONSE, {}, maxHeaderSize, 0);
          continue;
        }
      }
      this.fresh = false;
      this.dirty = true;
      const r = this.parser.execute(buf);
      if (r instanceof Error) return this.parseError(ex, r);
      buf = EMPTY;
    }
    if (!this.releasing) return;
    this.releasing = false;
    if (buf.length > 0 || this.socket.destroyed)
      this.socket.destroy(); // bytes after the answer
    else this.owner.release(this);
  }

  private bypass(ex: Exchange, buf: Buffer): Buffer {
    const n = Math.min(buf.length, this.bodyLeft);
    this.bodyLeft -= n;
    // The socket's own bytes, not run through the parser: lent to the handler (read-buffer.ts).
    const chunk = this.reads.chunk(n === buf.length ? buf : buf.subarray(0, n));
    this.deliver(ex, chunk);
    this.reads.delivered(ex.handler, chunk);
    if (this.bodyLeft === 0 && this.ex === ex) this.complete(ex);
    return buf.subarray(n);
  }

  private parseError(ex: Exchange, r: Error & { code?: string; reason?: string }): void {
    const code = (r.code ?? "").replace(/^HPE_/, "");
    this.fail(ex, parserError(r.reason ?? r.message, code));
  }

  private readonly onHeadersComplete: OnHeadersComplete = (
    _maj,
    _min,
    list,
    _method,
    _url,
    status,
    statusMessage,
    upgrade,
    keepAlive,
  ) => {
    const ex = this.ex;
    if (!ex) {
      this.socket.destroy(); // a second answer to one request
      return 1;
    }
    const raw = list ?? this.fields;
    this.fields = [];
    if (upgrade || status === 101) {
      this.fail(ex, new errors.SocketError("bad upgrade"));
      return 1;
    }
    const headers: IncomingHttpHeaders = {};
    let lengths = 0;
    let length = -1;
    let chunked = false;
    for (let i = 0; i < raw.length; i += 2) {
      const key = raw[i]!.toLowerCase();
      const v = raw[i + 1]!;
      const cur = headers[key];
      if (cur === undefined) headers[key] = v;
      else if (Array.isArray(cur)) cur.push(v);
      else headers[key] = [cur, v];
      if (key === "content-length") {
        lengths++;
        length = /^\d+$/.test(v) ? Number(v) : -1;
      } else if (key === "transfer-encoding") chunked = true;
      else if (key === "keep-alive" && status >= 200) this.keepAliveHint(v);
    }
    if (status < 200) {
      this.info = true;
      this.call(ex, () => ex.handler.onResponseStart?.(ex, status, headers, statusMessage));
      return 1;
    }
    // llhttp refuses these itself; checked again because the bypass trusts the length.
    if (lengths > 1 || (lengths === 1 && (chunked || length < 0))) {
      this.fail(ex, parserError("content-length", "UNEXPECTED_CONTENT_LENGTH"));
      return 1;
    }
    this.keepAlive = keepAlive;
    this.headSeen = true;
    this.arm(ex.bodyTimeout, true);
    this.call(ex, () => ex.handler.onResponseStart?.(ex, status, headers, statusMessage));
    if (this.ex !== ex) return 1;
    if (ex.out.method === "HEAD" || status === 204 || status === 304) return 1;
    if (this.isolated && length > 0 && !chunked) this.bodyLeft = length;
    return 0;
  };

  /** `Keep-Alive: timeout=N`: the upstream closes idle sockets after N s; stop using them 2 s before. */
  private keepAliveHint(v: string): void {
    const m = /timeout=(\d+)/i.exec(v);
    if (!m) return;
    const ms = Number(m[1]) * 1000 - KEEP_ALIVE_THRESHOLD;
    if (ms <= 0) this.closeAfter = true;
    else this.idleFor = Math.min(ms, KEEP_ALIVE_MAX);
  }

  private onBody(chunk: Buffer): void {
    const ex = this.ex;
    if (!ex) return void this.socket.destroy();
    this.deliver(ex, chunk);
  }

  private onMessageComplete(): void {
    const ex = this.ex;
    if (!ex) return void this.socket.destroy();
    if (this.info) {
      this.info = false;
      if (this.isolated) this.fresh = true; // the final answer's head may be isolated in turn
      return;
    }
    this.complete(ex);
  }

  private deliver(ex: Exchange, chunk: Buffer): void {
    this.call(ex, () => ex.handler.onResponseData?.(ex, chunk));
  }

  /** Runs a handler callback; one that throws ends the exchange, as in undici. */
  private call(ex: Exchange, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.fail(ex, e as Error);
    }
  }

  private complete(ex: Exchange): void {
    this.ex = undefined;
    ex.conn = undefined;
    ex.done = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.used++;
    let reusable = this.keepAlive && !this.closeAfter;
    if (this.bodyPending) {
      // Answered before the request body was all sent: the rest is not sent, the socket not reused.
      this.detachBody?.();
      this.detachBody = undefined;
      this.bodyPending = false;
      reusable = false;
    }
    if (reusable) this.releasing = true;
    else this.socket.destroy();
    try {
      ex.handler.onResponseEnd?.(ex, {});
    } catch {
      // The answer is complete; a handler failing to take its end has nobody left to tell.
    }
  }

  /** The upstream closed its side: ends a close-delimited body. */
  private onEnd(): void {
    if (!this.ex || !this.headSeen) return;
    this.parser.finish(); // an incomplete answer is reported by onClose
    this.releasing = false; // an answer framed by the close leaves nothing to reuse
  }

  private onClose(): void {
    clearTimeout(this.timer);
    clearTimeout(this.idleTimer);
    this.parser.close();
    this.owner.forget(this);
    const ex = this.ex;
    if (!ex || ex.done) return;
    this.ex = undefined;
    ex.conn = undefined;
    this.detachBody?.();
    this.detachBody = undefined;
    if (this.connected && this.used > 0 && !ex.gotBytes && ex.replayable && !ex.retried) {
      // A kept-alive socket the upstream closed while we picked it: undici's classic stale-socket race.
      ex.retried = true;
      return this.owner.retry(ex);
    }
    ex.error(this.error ?? new errors.SocketError("other side closed"));
  }
}
