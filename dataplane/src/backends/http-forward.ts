/**
 * One upstream exchange on undici's dispatch API, straight into the client response.
 *
 * `Pool.stream()` would do, but it needs an AbortController per request to notice a client that
 * leaves before the upstream answers, and that showed up in the passthrough profile. The dispatch
 * handler gets an abort handle for free and lets backpressure flow both ways: a slow client pauses
 * the upstream socket, a fast one resumes it.
 */
import type { Dispatcher } from "undici";
import { ServerResponse, type OutgoingHttpHeaders } from "node:http";
import { Duplex, pipeline, type Transform } from "node:stream";
import { createBrotliDecompress, createGunzip, createInflate } from "node:zlib";
import { responseHeaders } from "./http-headers.js";
import { ClientGoneError } from "../pipeline/errors.js";
import { CHUNK_RELEASED, DIRECT_WRITES, LENT_FROM, type ReleasingHandler } from "../http1/read-buffer.js";

export interface ForwardState {
  /** True once the upstream's status and headers have gone to the client. */
  started: boolean;
  status: number;
}

/**
 * Given status and client-bound headers (editable), a stream that rewrites the body, or undefined
 * to relay it untouched.
 */
export type ShapeResponse = (status: number, headers: OutgoingHttpHeaders) => Transform | undefined;

/**
 * The body pipeline for a rewrite: the upstream's content coding (we ask for identity, but a
 * server may compress anyway) is decoded first and the client gets the rewritten body
 * uncompressed; an unknown coding cannot be rewritten, so the body is relayed as it came.
 * Lengths change, so the body goes chunked.
 */
export function rewriteBody(headers: OutgoingHttpHeaders, rewrite: Transform): Duplex | undefined {
  const coding = String(headers["content-encoding"] ?? "identity")
    .toLowerCase()
    .trim();
  const decoder =
    coding === "identity"
      ? undefined
      : coding === "gzip" || coding === "x-gzip"
        ? createGunzip()
        : coding === "deflate"
          ? createInflate()
          : coding === "br"
            ? createBrotliDecompress()
            : null;
  if (decoder === null) return undefined;
  delete headers["content-encoding"];
  delete headers["content-length"];
  delete headers["content-md5"];
  if (!decoder) return rewrite;
  // One stream for the caller: writes go to the decoder, reads come from the rewrite; errors travel both ways.
  pipeline(decoder, rewrite, () => {});
  return Duplex.from({ writable: decoder, readable: rewrite });
}

/** HEAD answers and 204/304 carry no body: their headers (Content-Length included) stay as sent. */
export function hasBody(method: string, status: number): boolean {
  return method !== "HEAD" && status !== 204 && status !== 304;
}

/** A content-length value's byte count, or -1 when it is not a plain decimal number. */
function contentLength(v: string): number {
  if (v.length === 0 || v.length > 15) return -1;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
  }
  return Number(v);
}

/**
 * An upstream answer withheld from the client so that the request can be tried on another
 * target (retry_on_5xx); nothing of it was written.
 */
export class RetriableStatus extends Error {
  constructor(readonly status: number) {
    super(`upstream answered ${status}`);
    this.name = "RetriableStatus";
  }
}

/**
 * How an exchange reports its end: `a` and `b` are whatever the caller handed `forward` (a
 * promise's resolve and reject, or a request context and its callback), so the caller needs no
 * closure per request. `state` is the exchange's ForwardState.
 */
export type Settled<A, B> = (a: A, b: B, state: ForwardState, err: Error | undefined) => void;

/**
 * Streams the upstream response into `res`; resolves when it has been fully written. A status
 * `withhold` picks is not relayed: the exchange is aborted with a RetriableStatus instead.
 */
export function forwardToClient(
  dispatcher: Dispatcher,
  opts: Dispatcher.DispatchOptions,
  res: ServerResponse,
  requestId: string,
  state: ForwardState,
  shape?: ShapeResponse,
  withhold?: (status: number) => boolean,
): Promise<void> {
  return new Promise((resolve, reject) => {
    forward(dispatcher, opts, res, requestId, settlePromise, resolve, reject, shape, withhold, state);
  });
}

const settlePromise: Settled<() => void, (e: Error) => void> = (resolve, reject, _state, err) =>
  err ? reject(err) : resolve();

/**
 * `forwardToClient` without a promise: `settled(a, b, state, err)` is called once when the
 * response has been written (err undefined) or the exchange failed. Without `state` the exchange
 * keeps its own (the object handed to `settled`).
 */
export function forward<A, B>(
  dispatcher: Dispatcher,
  opts: Dispatcher.DispatchOptions,
  res: ServerResponse,
  requestId: string,
  settled: Settled<A, B>,
  a: A,
  b: B,
  shape?: ShapeResponse,
  withhold?: (status: number) => boolean,
  state?: ForwardState,
): void {
  const exchange = new Exchange<A, B>(opts.method, res, requestId, state, shape, withhold, settled, a, b);
  res.on("close", exchange.onClose);
  dispatcher.dispatch(opts, exchange);
}

/**
 * One exchange's dispatch handler and state, as one object: undici calls its methods, so the
 * per-request cost is this object and the close listener, not a closure per callback (they were
 * a tenth of the lean path's allocation, bench/README.md).
 */
class Exchange<A, B> implements Dispatcher.DispatchHandler, ForwardState, ReleasingHandler {
  started = false;
  status = 0;
  private controller: Dispatcher.DispatchController | undefined;
  /** The rewrite stream, when the body is rewritten: upstream chunks go in, `res` reads from it. */
  private rewriting: Duplex | undefined;
  /** Set once a write reported backpressure: the drain listener that resumes the upstream. */
  private onDrain: (() => void) | undefined;
  /**
   * node:http's own response and write (not HTTP/2's, nothing wrapped), or the llhttp lane's
   * writer (DIRECT_WRITES, not a ServerResponse): its writableLength is the whole truth.
   */
  private readonly plain: boolean;
  /** Where started and status are kept: the caller's (shared across retries) or this object. */
  private readonly state: ForwardState;
  /** Cleared once called: the exchange ends once, whatever else undici or the client do after. */
  private settled: Settled<A, B> | undefined;
  /** Body bytes the upstream's content-length still announces; -1: no length to go by (or rewriting). */
  private left = -1;
  /** The body's last bytes, held for `res.end(last)` (see onResponseData). */
  private last: Buffer | undefined;

  constructor(
    private readonly method: string,
    private readonly res: ServerResponse,
    private readonly requestId: string,
    state: ForwardState | undefined,
    private readonly shape: ShapeResponse | undefined,
    private readonly withhold: ((status: number) => boolean) | undefined,
    settled: Settled<A, B>,
    private readonly a: A,
    private readonly b: B,
  ) {
    this.state = state ?? this;
    this.settled = settled;
    this.plain =
      (res as { [DIRECT_WRITES]?: boolean })[DIRECT_WRITES] === true ||
      (res instanceof ServerResponse && res.write === ServerResponse.prototype.write);
  }

  /** The client's connection closed: abort the upstream side unless the response was complete. */
  readonly onClose = (): void => {
    if (this.res.writableFinished) return;
    this.controller?.abort(new ClientGoneError());
    // The upstream may be done already, with the rest of the body waiting in the rewrite for a
    // client that is gone: nothing else would end this exchange.
    if (this.rewriting) this.settle(new ClientGoneError());
  };

  private pause(c: Dispatcher.DispatchController, from: NodeJS.EventEmitter): void {
    c.pause();
    if (!this.onDrain) {
      this.onDrain = () => this.controller?.resume();
      from.on("drain", this.onDrain);
    }
  }

  private settle(err?: Error): void {
    this.res.off("close", this.onClose);
    if (this.onDrain) (this.rewriting ?? this.res).off("drain", this.onDrain);
    if (err) this.rewriting?.destroy(); // its held bytes go with it
    const settled = this.settled;
    if (!settled) return;
    this.settled = undefined;
    settled(this.a, this.b, this.state, err);
  }

  onRequestStart(c: Dispatcher.DispatchController): void {
    this.controller = c;
    if (this.res.destroyed) c.abort(new ClientGoneError());
  }

  onResponseStart(
    c: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    if (statusCode < 200) return; // informational responses are not relayed
    const { res, state } = this;
    // Something else answered the client meanwhile (a client body timeout's 408).
    if (res.headersSent) return c.abort(new ClientGoneError());
    if (this.withhold?.(statusCode)) return c.abort(new RetriableStatus(statusCode));
    state.status = statusCode;
    const out = responseHeaders(headers, this.requestId);
    const rewrite = this.shape?.(statusCode, out); // also rewrites URL headers, so called for every response
    const rewriting = rewrite && hasBody(this.method, statusCode) ? rewriteBody(out, rewrite) : undefined;
    this.rewriting = rewriting;
    if (!rewriting) {
      state.started = true;
      const length = headers["content-length"];
      if (typeof length === "string" && hasBody(this.method, statusCode)) this.left = contentLength(length);
      res.writeHead(statusCode, out);
      return;
    }
    // The head goes out with the first rewritten bytes (or at the end of an empty body): a body
    // that fails to decode before then is still answered with a proper error status.
    const start = () => {
      if (state.started) return;
      state.started = true;
      res.writeHead(statusCode, out);
    };
    rewriting.once("data", start); // before pipe()'s own listeners, so the head goes first
    rewriting.once("end", start);
    // pipe() carries backpressure from the client back to the rewrite; see onResponseData for the rest.
    rewriting.pipe(res);
    rewriting.on("error", (e) => {
      this.controller?.abort(e);
      this.settle(e);
    });
  }

  onResponseData(c: Dispatcher.DispatchController, chunk: Buffer): void {
    const rewriting = this.rewriting;
    if (rewriting) {
      if (!rewriting.write(chunk)) this.pause(c, rewriting);
      return;
    }
    const left = this.left;
    if (left >= 0) {
      // The chunk that completes a counted body (a small answer's only one) waits for onResponseEnd,
      // which follows at once: res.end(chunk) writes head, body and end in one corked go, where
      // write() then end() cork the socket and uncork it on a tick of its own (node:http). A small
      // chunk is the handler's own copy (read-buffer.ts), so holding it is safe.
      if (left === chunk.length && chunk.length < LENT_FROM) {
        this.left = -1;
        this.last = chunk;
        return;
      }
      this.left = left - chunk.length;
    }
    const res = this.res;
    const ok = res.write(chunk);
    // node:http corks the socket on a write and uncorks it on the next tick. A large chunk gains
    // nothing from waiting: uncorked now, it goes to the kernel at once (so CHUNK_RELEASED can
    // tell), in the same one syscall. Small ones wait, to share a write with the head or the end.
    const socket = res.socket;
    if (this.plain && chunk.length >= LENT_FROM && socket?.writableCorked === 1) socket.uncork();
    if (!ok) this.pause(c, res);
  }

  /** The last chunk went to the kernel whole: nothing here holds it (read-buffer.ts). */
  [CHUNK_RELEASED](): boolean {
    return this.plain && !this.rewriting && this.res.writableLength === 0;
  }

  onResponseEnd(): void {
    const rewriting = this.rewriting;
    if (!rewriting) {
      const last = this.last;
      if (last) {
        this.last = undefined;
        this.res.end(last);
      } else this.res.end();
      this.settle();
      return;
    }
    // Done once the rewrite has handed its last bytes to `res` (pipe ends it).
    rewriting.once("end", () => this.settle());
    rewriting.end();
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    this.settle(err);
  }
}
