/**
 * A keep-alive HTTP/1.1 connection pool on Node's own llhttp binding, behind undici's Dispatcher
 * interface (the part the http backend uses: dispatch with the new handler API, request(), close,
 * destroy), so the backend can run on either engine (`client = "llhttp"`).
 *
 * Why: undici costs ~20 µs of CPU per small proxied request over a minimal client on the same
 * parser (bench/README.md, "A lean upstream client"). http:// and https:// upstreams: the socket
 * comes from a connect function (connect.ts) given the same TLS settings as undici's Pool.
 */
import { Dispatcher, errors } from "undici";
import { Connection, type ConnectionOwner } from "./connection.js";
import { Deadlines, tickFor } from "./deadlines.js";
import { Exchange } from "./exchange.js";
import { connector, type Connect } from "./connect.js";
import { serialize } from "./wire.js";

export interface H1PoolOptions {
  /** Most sockets open at once; further requests wait for one. */
  connections: number;
  keepAliveTimeout: number;
  headersTimeout: number;
  /** 0: no limit. */
  bodyTimeout: number;
  connectTimeout: number;
  /** Opens a socket to the origin (default: plain TCP, or TLS with default settings for https://). */
  connect?: Connect;
}

/** undici's two calling conventions: a promise, or a callback. */
function settle(p: Promise<void>, callback: (() => void) | undefined): Promise<void> | void {
  if (!callback) return p;
  void p.then(callback);
}

const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

export class H1Pool extends Dispatcher implements ConnectionOwner {
  readonly host: string;
  readonly port: number;
  readonly connectTimeout: number;
  readonly keepAliveTimeout: number;
  readonly deadlines: Deadlines;
  readonly openSocket: Connect;
  private readonly hostHeader: string;
  private readonly all = new Set<Connection>();
  /** Most recently used last: the warm sockets are reused, the cold ones time out. */
  private readonly idle: Connection[] = [];
  private readonly queue: Exchange[] = [];
  /** Sockets between their answer and their reuse (see release): checked together, once per turn. */
  private validating: Connection[] = [];
  private checkScheduled = false;
  private closed = false;
  private destroyed = false;
  private emptied: Promise<void> | undefined;
  private onEmpty: (() => void) | undefined;

  constructor(
    origin: string | URL,
    private readonly opts: H1PoolOptions,
  ) {
    super();
    const url = new URL(origin);
    if (url.protocol !== "http:" && url.protocol !== "https:")
      throw new errors.InvalidArgumentError("the llhttp client speaks http:// and https:// only");
    this.host = url.hostname.replace(/^\[(.*)\]$/, "$1");
    this.port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
    this.openSocket = opts.connect ?? connector(url);
    this.hostHeader = url.host;
    this.connectTimeout = opts.connectTimeout;
    this.keepAliveTimeout = opts.keepAliveTimeout;
    this.deadlines = new Deadlines(
      tickFor([opts.connectTimeout, opts.headersTimeout, opts.bodyTimeout, opts.keepAliveTimeout]),
    );
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    try {
      if (this.destroyed) throw new errors.ClientDestroyedError();
      if (this.closed) throw new errors.ClientClosedError();
      const out = serialize(opts, this.hostHeader);
      const ex = new Exchange(
        out,
        handler,
        opts.headersTimeout ?? this.opts.headersTimeout,
        opts.bodyTimeout ?? this.opts.bodyTimeout,
        IDEMPOTENT.has(out.method) && out.body === null,
      );
      // The handler gets its controller now, not when a socket is free (undici hands it over only
      // then): a client that leaves while its request waits for a socket ends it at once, and its
      // abort never costs the socket that would have carried it.
      ex.started = true;
      try {
        handler.onRequestStart?.(ex, {});
      } catch (e) {
        ex.error(e as Error);
        return true;
      }
      if (ex.done) return true;
      this.run(ex);
    } catch (err) {
      // As undici's DispatcherBase: a request refused up front is reported to the handler.
      if (typeof handler.onResponseError !== "function") throw err;
      handler.onResponseError(null as unknown as Dispatcher.DispatchController, err as Error);
    }
    return true;
  }

  private run(ex: Exchange): void {
    while (this.queue[0]?.done) this.queue.shift(); // aborted while waiting: nothing left to send
    const idle = this.idle.pop();
    if (idle) return idle.start(ex);
    // A socket being checked (and not yet claimed) is free within this turn of the event loop:
    // wait for it rather than open one.
    if (this.queue.length >= this.validating.length && this.all.size < this.opts.connections) {
      this.all.add(new Connection(this, ex));
      return;
    }
    this.queue.push(ex);
  }

  retry(ex: Exchange): void {
    if (this.destroyed) return ex.error(new errors.ClientDestroyedError());
    this.run(ex);
  }

  /**
   * As undici (GHSA-35p6-xmwp-9g52): a socket is reused only after one turn of the event loop, so
   * that bytes, a FIN or a reset the upstream sent after its answer are seen (and the socket
   * dropped) before the next request is written, never read as that request's answer.
   */
  release(c: Connection): void {
    this.validating.push(c);
    if (this.checkScheduled) return;
    // One immediate for all the sockets released in this turn, not one (and a closure) per answer.
    this.checkScheduled = true;
    setImmediate(this.checkReleased);
  }

  private readonly checkReleased = (): void => {
    this.checkScheduled = false;
    const list = this.validating;
    this.validating = [];
    // One clock read for every socket parked in this turn (a busy pool parks dozens at once).
    const now = performance.now();
    for (const c of list) {
      if (c.socket.destroyed)
        this.forget(c); // forget is idempotent; it serves the queue
      else this.ready(c, now);
    }
  };

  private ready(c: Connection, now: number): void {
    let next = this.queue.shift();
    while (next?.done) next = this.queue.shift(); // aborted while waiting
    if (next) return c.start(next);
    if (this.closed) return void c.socket.destroy();
    c.park(now);
    this.idle.push(c);
  }

  forget(c: Connection): void {
    this.all.delete(c);
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
    // A socket fewer: a waiting request may open one.
    while (this.queue.length > 0 && this.all.size < this.opts.connections) {
      const ex = this.queue.shift()!;
      if (!ex.done) this.all.add(new Connection(this, ex));
    }
    if (this.all.size === 0) this.onEmpty?.();
  }

  /** Lets running and waiting requests finish, then closes every socket. */
  override close(callback: () => void): void;
  override close(): Promise<void>;
  override close(callback?: () => void): Promise<void> | void {
    this.closed = true;
    for (const c of [...this.idle]) c.socket.destroy();
    return settle(this.whenEmpty(), callback);
  }

  /** Closes every socket now; running and waiting requests fail with `err`. */
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null): Promise<void>;
  override destroy(): Promise<void>;
  override destroy(a?: Error | null | (() => void), b?: () => void): Promise<void> | void {
    const err = typeof a === "function" ? null : a;
    this.destroyed = this.closed = true;
    const reason = err ?? new errors.ClientDestroyedError();
    for (const ex of this.queue.splice(0)) ex.error(reason);
    for (const c of [...this.all]) c.destroy(reason);
    return settle(this.whenEmpty(), typeof a === "function" ? a : b);
  }

  private whenEmpty(): Promise<void> {
    if (this.all.size === 0 && this.queue.length === 0) return Promise.resolve();
    this.emptied ??= new Promise((resolve) => (this.onEmpty = resolve));
    return this.emptied;
  }
}
