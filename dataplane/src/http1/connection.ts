/**
 * One keep-alive connection to the upstream: its socket's life, the request written onto it, and
 * its timeouts (on the pool's Deadlines); the answer is read by its AnswerReader half. One
 * exchange at a time, never pipelined. Errors are undici's classes, so the backend maps them to
 * the same 502/504 answers whichever engine runs.
 */
import type { Socket } from "node:net";
import { errors } from "undici";
import { AnswerReader } from "./answer-reader.js";
import { frame } from "./wire.js";
import { writeBody } from "./body-writer.js";
import type { Exchange, ExchangeHost } from "./exchange.js";
import type { Deadlines, Expiring } from "./deadlines.js";
import type { Connect } from "./connect.js";
import { trailersOf } from "./trailers.js";

export interface ConnectionOwner {
  readonly host: string;
  readonly port: number;
  readonly connectTimeout: number;
  /** Opens the socket (TCP or TLS, connect.ts). */
  readonly openSocket: Connect;
  /** Idle time before a parked connection closes, unless the upstream's Keep-Alive header says less. */
  readonly keepAliveTimeout: number;
  /** The pool's one clock for the timeouts of all its connections. */
  readonly deadlines: Deadlines;
  /** The connection finished an exchange and can carry another. */
  release(c: Connection): void;
  /** The connection is closed. */
  forget(c: Connection): void;
  /** A kept-alive socket was found closed before any answer: send `ex` again elsewhere. */
  retry(ex: Exchange): void;
}

/** undici's empty context (onRequestStart) and trailers (onResponseEnd): one object, never written. */
const NOTHING = Object.freeze({}) as Record<string, never>;

/** What the connection's one deadline is for. */
const NONE = 0;
const CONNECT = 1;
const HEAD = 2;
const BODY = 3;
const IDLE = 4;

export class Connection extends AnswerReader implements ExchangeHost, Expiring {
  readonly socket: Socket;
  deadline = 0;
  /** What `deadline` is for (NONE, CONNECT, HEAD, BODY, IDLE). */
  private phase = NONE;
  /** Exchanges completed on this socket. */
  private used = 0;
  private connected = false;
  private bodyPending = false;
  private detachBody: (() => void) | undefined;
  private error: Error | undefined;

  constructor(
    private readonly owner: ConnectionOwner,
    first: Exchange,
  ) {
    super(owner.keepAliveTimeout);
    this.ex = first;
    const { socket, readsInto } = owner.openSocket(() => {
      this.disarm();
      this.connected = true;
      socket.setKeepAlive(true, 60_000);
      const ex = this.ex!;
      this.ex = undefined;
      this.start(ex);
    }, this.readInto);
    this.socket = socket;
    this.arm(CONNECT, owner.connectTimeout);
    // A plain TCP socket reads into the connection's own buffer (read-buffer.ts); TLS emits 'data'.
    if (!readsInto) socket.on("data", (buf: Buffer) => this.onData(buf, 0, buf.length));
    socket.on("end", () => this.onEnd());
    socket.on("error", (e) => (this.error ??= e));
    socket.on("close", () => this.onClose());
  }

  /** Sends `ex` on this (connected, idle) socket. */
  start(ex: Exchange): void {
    this.disarm();
    if (ex.done) return this.owner.release(this);
    this.ex = ex;
    ex.conn = this;
    ex.gotBytes = false;
    this.expectAnswer(ex.out.method === "HEAD");
    this.socket.resume(); // a handler may have paused it during the previous answer
    if (!ex.started) {
      ex.started = true;
      try {
        ex.handler.onRequestStart?.(ex, NOTHING);
      } catch (e) {
        return this.fail(ex, e as Error);
      }
      if (ex.done) return;
    }
    this.arm(HEAD, ex.headersTimeout);
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

  /** Parks the socket: closes it after the idle time (from `now`, a performance.now() just read). */
  park(now: number): void {
    this.socket.resume(); // so that the upstream closing it is noticed
    this.arm(IDLE, this.idleFor, now);
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
      this.disarm();
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

  private arm(phase: number, ms: number, now?: number): void {
    this.phase = phase;
    if (ms > 0) this.owner.deadlines.arm(this, ms, now);
    else this.owner.deadlines.disarm(this);
  }

  private disarm(): void {
    this.phase = NONE;
    this.owner.deadlines.disarm(this);
  }

  protected bodyStarts(ex: Exchange): void {
    this.arm(BODY, ex.bodyTimeout);
  }

  protected bodyArrived(ex: Exchange): void {
    if (this.phase === BODY) this.owner.deadlines.refresh(this, ex.bodyTimeout);
  }

  protected reusable(): void {
    this.owner.release(this);
  }

  /** The deadline of the current phase passed (called by the pool's Deadlines). */
  expire(): void {
    const phase = this.phase;
    this.phase = NONE;
    if (phase === IDLE) return void this.socket.destroy();
    if (phase === CONNECT) {
      const { host, port, connectTimeout } = this.owner;
      const msg = `Connect Timeout Error (attempted address: ${host}:${port}, timeout: ${connectTimeout}ms)`;
      return void this.socket.destroy(new errors.ConnectTimeoutError(msg));
    }
    const ex = this.ex;
    if (!ex) return;
    if (phase === HEAD) return this.fail(ex, new errors.HeadersTimeoutError());
    // As undici: a body paused by a slow client is not the upstream's fault.
    if (ex.paused) return this.arm(BODY, ex.bodyTimeout);
    this.fail(ex, new errors.BodyTimeoutError());
  }

  protected complete(ex: Exchange, trailers?: string[]): void {
    this.ex = undefined;
    ex.conn = undefined;
    ex.done = true;
    this.disarm();
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
      ex.handler.onResponseEnd?.(ex, trailers ? trailersOf(trailers) : NOTHING);
    } catch {
      // The answer is complete; a handler failing to take its end has nobody left to tell.
    }
  }

  private onClose(): void {
    this.disarm();
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
