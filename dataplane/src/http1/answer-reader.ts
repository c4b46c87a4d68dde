/**
 * The reading half of a connection: the upstream's answer, from the socket's bytes to the handler's
 * calls, with Node's llhttp binding.
 *
 * A body with a content-length is not run through the parser: the parser sees only the head (it is
 * told the message has no body, so it is ready for the next head as it is), and the socket's own
 * buffers are handed on ("bypass", see bench/http-passthrough/floor-raw.mjs), because the binding
 * copies every body chunk into JS. Chunked and close-delimited bodies are decoded by the parser.
 */
import type { Socket } from "node:net";
import { maxHeaderSize } from "node:http";
import { errors } from "undici";
import { HTTPParser, type LlhttpParser, type OnHeadersComplete } from "./llhttp.js";
import type { Exchange } from "./exchange.js";
import { keepAliveHint, newFraming, parserError, readHead } from "./response-head.js";
import { ReadBuffer } from "./read-buffer.js";
import type { ReadInto } from "./connect.js";

const NO_FIELDS: string[] = [];

/**
 * Where the first CRLF CRLF of `buf[from, to)` starts, or -1: `buf.indexOf("\r\n\r\n")`, which
 * converts its string needle on every call (the third-largest self time of this file in the 1 KiB
 * profile). A head has a handful of LFs; each is found by a memchr (a number needle) and its
 * neighbours checked. The bounds let a read be searched in place in the connection's read buffer,
 * without a view of it per read.
 */
export function headEnd(buf: Buffer, from = 0, to = buf.length): number {
  let i = buf.indexOf(10, from);
  while (i >= 0 && i + 2 < to) {
    if (buf[i + 2] === 10 && buf[i + 1] === 13 && i > from && buf[i - 1] === 13) return i - 1;
    i = buf.indexOf(10, i + 1);
  }
  return -1;
}

export abstract class AnswerReader {
  abstract readonly socket: Socket;
  /** The exchange whose answer is being read. */
  protected ex: Exchange | undefined;
  protected readonly parser: LlhttpParser = new HTTPParser();
  /** The parser's async resource: one per connection, not one per reset. */
  private readonly resource = {};
  private readonly framing = newFraming();
  /** The answer allows the socket to be reused (its shouldKeepAlive). */
  protected keepAlive = true;
  /** Not to be reused after the current exchange (a HEAD, a Keep-Alive timeout too short to use). */
  protected closeAfter = false;
  /** Idle time before a parked socket closes: the pool's, or less if the upstream says so. */
  protected idleFor: number;
  /** Completed inside a data event: handed back to the pool once the event's bytes are all seen. */
  protected releasing = false;
  /** The final answer's head has been read. */
  protected headSeen = false;
  /** Nothing of the current answer's head has been parsed yet: it may be isolated for the bypass. */
  private fresh = true;
  /** The parser is executing a head cut out of the buffer. */
  private isolated = false;
  /** The parser ran over more than an isolated head: reset it before the next exchange. */
  private dirty = false;
  /** Bytes of a counted body still to hand on past the parser. */
  private bodyLeft = 0;
  /** Bytes after the isolated head in the read being parsed (body bytes already here). */
  private after = 0;
  /** The current message is informational (1xx): a final answer follows. */
  private info = false;
  /** Header fields the parser flushed before the head ended (more than 32 of them). */
  private fields = NO_FIELDS;
  /** Where a plain TCP socket's reads land: one buffer, reused while handlers release it. */
  private readonly reads = new ReadBuffer();
  protected readonly readInto: ReadInto = {
    buffer: this.reads.next,
    callback: (n, buf) => {
      this.onData(buf, 0, n);
      return true; // a handler that wants the socket paused pauses it itself
    },
  };
  private readonly messageComplete = (): void => this.onMessageComplete();
  /**
   * The parser calls messageComplete (kOnMessageComplete is set). Not while answers come with
   * bypassed bodies: the binding calls it right after every such head (the head "has no body"),
   * a call into JS with its callback scope for nothing (−0.4 µs per execute in isolation, a fifth
   * of the call). Unset, the binding skips it; set again for any answer the parser completes.
   */
  private completeWired = true;
  /** The last Keep-Alive value read, so that the same hint on every answer is parsed once. */
  private lastHint: string | undefined;

  constructor(idleFor: number) {
    this.idleFor = idleFor;
    this.parser.initialize(HTTPParser.RESPONSE, this.resource, maxHeaderSize, 0);
    this.parser[HTTPParser.kOnHeaders] = (f: string[]) => {
      if (this.fields === NO_FIELDS) this.fields = [];
      this.fields.push(...f);
    };
    this.parser[HTTPParser.kOnHeadersComplete] = this.onHeadersComplete;
    this.parser[HTTPParser.kOnBody] = (chunk: Buffer) => this.onBody(chunk);
    this.parser[HTTPParser.kOnMessageComplete] = this.messageComplete;
  }

  /** Ends `ex` with `err` (and the socket with it). */
  abstract fail(ex: Exchange, err: Error): void;
  /** The answer to `ex` is complete. */
  /** The answer to `ex` is complete; `trailers` are the fields after a chunked body. */
  protected abstract complete(ex: Exchange, trailers?: string[]): void;
  /** The final head is read: the body's time starts. */
  protected abstract bodyStarts(ex: Exchange): void;
  /** Bytes arrived for `ex`. */
  protected abstract bodyArrived(ex: Exchange): void;
  /** Completed with no stray bytes after the answer: the socket may carry another exchange. */
  protected abstract reusable(): void;

  /** Ready to read the answer to a new exchange. */
  protected expectAnswer(head: boolean): void {
    if (this.dirty) this.parser.initialize(HTTPParser.RESPONSE, this.resource, maxHeaderSize, 0);
    this.dirty = false;
    this.fresh = true;
    this.keepAlive = true;
    this.info = false;
    this.headSeen = false;
    this.fields = NO_FIELDS;
    this.closeAfter = head;
  }

  /**
   * The socket's bytes `buf[at, end)`: a read into the connection's buffer is taken in place, so
   * that a small answer costs one view (its head, for the parser) and the body's copy, not a view
   * per read, per head and per rest as well.
   */
  protected onData(buf: Buffer, at: number, end: number): void {
    const ex = this.ex;
    // Bytes nobody asked for: an upstream out of step with us is not trusted with the next request.
    if (!ex) return void this.socket.destroy();
    ex.gotBytes = true;
    this.bodyArrived(ex);
    while (at < end && this.ex === ex) {
      if (this.bodyLeft > 0) {
        at = this.bypass(ex, buf, at, end);
        continue;
      }
      if (this.fresh) {
        const h = headEnd(buf, at, end);
        if (h >= 0) {
          this.fresh = false;
          this.isolated = true;
          this.after = end - h - 4;
          const r = this.parser.execute(at === 0 && h + 4 === buf.length ? buf : buf.subarray(at, h + 4));
          this.isolated = false;
          if (r instanceof Error) return this.parseError(ex, r);
          // A counted body was skipped by the parser (see onHeadersComplete): it is ready for the next head.
          at = h + 4;
          continue;
        }
      }
      this.fresh = false;
      this.dirty = true;
      const r = this.parser.execute(at === 0 && end === buf.length ? buf : buf.subarray(at, end));
      if (r instanceof Error) return this.parseError(ex, r);
      at = end;
    }
    if (!this.releasing) return;
    this.releasing = false;
    if (at < end || this.socket.destroyed)
      this.socket.destroy(); // bytes after the answer
    else this.reusable();
  }

  /** Hands on body bytes from `buf[at, end)` past the parser; returns where the rest starts. */
  private bypass(ex: Exchange, buf: Buffer, at: number, end: number): number {
    const n = Math.min(end - at, this.bodyLeft);
    this.bodyLeft -= n;
    // The socket's own bytes, not run through the parser: lent to the handler (read-buffer.ts).
    const chunk = this.reads.chunk(buf, at, at + n);
    this.deliver(ex, chunk);
    this.reads.delivered(ex.handler, chunk);
    if (this.bodyLeft === 0 && this.ex === ex) this.complete(ex);
    return at + n;
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
    this.fields = NO_FIELDS;
    if (upgrade || status === 101) {
      this.fail(ex, new errors.SocketError("bad upgrade"));
      return 1;
    }
    const f = this.framing;
    const headers = readHead(raw, f);
    if (status < 200) {
      this.info = true;
      this.wireComplete(true);
      this.respond(ex, status, headers, statusMessage);
      return 1;
    }
    // llhttp refuses these itself; checked again because the bypass trusts the length.
    if (f.lengths > 1 || (f.lengths === 1 && (f.chunked || f.length < 0))) {
      this.fail(ex, parserError("content-length", "UNEXPECTED_CONTENT_LENGTH"));
      return 1;
    }
    if (f.keepAlive !== undefined) this.hint(f.keepAlive);
    this.keepAlive = keepAlive;
    this.headSeen = true;
    const noBody = ex.out.method === "HEAD" || status === 204 || status === 304;
    const bypass = !noBody && this.isolated && f.length > 0 && !f.chunked;
    // A body that is already here whole (a small answer's usual case) is handed on in this same
    // call, so no body timeout is armed for it (a clock read and a Set insert saved per answer).
    if (!(bypass && this.after >= f.length)) this.bodyStarts(ex);
    // Before the handler's call: the binding looks the callback up after this function returns.
    this.wireComplete(!bypass);
    this.respond(ex, status, headers, statusMessage);
    if (this.ex !== ex) return 1;
    if (noBody) return 1;
    if (bypass) {
      // The bypass hands the body on; the parser skips it (1: no body), so that it is ready for the
      // next head without a reset.
      this.bodyLeft = f.length;
      return 1;
    }
    return 0;
  };

  /** Whether the parser calls messageComplete (see completeWired). */
  private wireComplete(on: boolean): void {
    if (this.completeWired === on) return;
    this.completeWired = on;
    this.parser[HTTPParser.kOnMessageComplete] = on ? this.messageComplete : undefined;
  }

  /** A Keep-Alive hint: the idle time it leaves, or no reuse at all. */
  private hint(v: string): void {
    if (v === this.lastHint) return;
    this.lastHint = v;
    const ms = keepAliveHint(v);
    if (ms === 0) this.closeAfter = true;
    else if (ms !== undefined) this.idleFor = ms;
  }

  private onBody(chunk: Buffer): void {
    const ex = this.ex;
    if (!ex) return void this.socket.destroy();
    this.deliver(ex, chunk);
  }

  private onMessageComplete(): void {
    if (this.bodyLeft > 0) return; // the head of a bypassed body: the bypass completes the exchange
    const ex = this.ex;
    if (!ex) return void this.socket.destroy();
    if (this.info) {
      this.info = false;
      if (this.isolated) this.fresh = true; // the final answer's head may be isolated in turn
      return;
    }
    // Fields after a chunked body are its trailers (the binding flushes them just before this call).
    this.complete(ex, this.fields === NO_FIELDS ? undefined : this.fields);
  }

  /** The handler calls: one that throws ends the exchange, as in undici. */
  private respond(ex: Exchange, status: number, headers: Record<string, string | string[] | undefined>, msg: string) {
    try {
      ex.handler.onResponseStart?.(ex, status, headers, msg);
    } catch (e) {
      this.fail(ex, e as Error);
    }
  }

  protected deliver(ex: Exchange, chunk: Buffer): void {
    try {
      ex.handler.onResponseData?.(ex, chunk);
    } catch (e) {
      this.fail(ex, e as Error);
    }
  }

  /** The upstream closed its side: ends a close-delimited body. */
  protected onEnd(): void {
    if (!this.ex || !this.headSeen) return;
    this.parser.finish(); // an incomplete answer is reported by the close
    this.releasing = false; // an answer framed by the close leaves nothing to reuse
  }
}
