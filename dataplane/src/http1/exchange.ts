/**
 * One request and its answer, from dispatch to the last handler call. It is also the controller the
 * handler gets (undici's DispatchController): pause/resume act on the socket carrying the answer,
 * abort ends the exchange with the given reason.
 */
import type { Dispatcher } from "undici";
import type { Outgoing } from "./wire.js";

export interface ExchangeHost {
  /** Ends the exchange with `reason` (destroys its socket when it has one). */
  fail(ex: Exchange, reason: Error): void;
  /** Lets the socket's data flow again after a pause. */
  resumeReading(): void;
  pauseReading(): void;
}

export class Exchange implements Dispatcher.DispatchController {
  /** The connection carrying it, while it runs. */
  conn: ExchangeHost | undefined;
  /** No handler call follows. */
  done = false;
  /** onRequestStart has been called (once, even when a stale socket makes us send it again). */
  started = false;
  /** Some byte of the answer arrived. */
  gotBytes = false;
  /** Sent again once already, after a kept-alive socket turned out closed. */
  retried = false;
  rawHeaders = null;
  rawTrailers = null;
  #paused = false;
  #aborted = false;
  #reason: Error | null = null;

  constructor(
    readonly out: Outgoing,
    readonly handler: Dispatcher.DispatchHandler,
    readonly headersTimeout: number,
    readonly bodyTimeout: number,
    /** Idempotent and without a body: safe to send again on a fresh socket. */
    readonly replayable: boolean,
  ) {}

  get aborted(): boolean {
    return this.#aborted;
  }
  get paused(): boolean {
    return this.#paused;
  }
  get reason(): Error | null {
    return this.#reason;
  }

  pause(): void {
    this.#paused = true;
    this.conn?.pauseReading();
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.conn?.resumeReading();
  }

  abort(reason: Error): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    if (this.conn) this.conn.fail(this, reason);
    else this.error(reason); // still queued: nothing was sent
  }

  /** Tells the handler the exchange failed (once). */
  error(err: Error): void {
    if (this.done) return;
    this.done = true;
    this.conn = undefined;
    try {
      this.handler.onResponseError?.(this, err);
    } catch {
      // Nothing is left to tell: the handler failed while being told of a failure.
    }
  }
}
