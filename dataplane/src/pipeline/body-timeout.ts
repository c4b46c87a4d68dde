/**
 * The client body timeout (`proxy.client_body_timeout_ms`, `proxy.client_body_min_rate`).
 *
 * Two limits, as Apache's mod_reqtimeout has them, because either alone lets a slow client hold a
 * connection (and whatever it feeds, such as an upstream socket) for as long as it likes:
 * - idle: no body byte for `idleMs` (nginx's client_body_timeout: the time between two reads).
 *   A body at 1 byte / 5 s passes any idle limit above 5 s, so:
 * - rate: the whole body must arrive within `idleMs` plus 1 s for every `minRate` bytes received.
 *   At the default 500 B/s a 1 GiB upload may take 24 days but 1 byte / 59 s is cut at ~60 s.
 *
 * Activity is read from the socket's byte counter on a timer, so the hot path adds no per-chunk
 * work and nothing here consumes the body (which must stay a stream for the backend). While the
 * socket is paused the proxy is the slow side (an upstream applying backpressure), and neither
 * limit runs. HTTP/2 streams share one session socket whose counter says nothing about one
 * stream, so they are left to the session timeout.
 */
import type { IncomingMessage } from "node:http";

export interface BodyTimeoutLimits {
  /** Longest time without a body byte; 0 disables both limits. */
  idleMs: number;
  /** Bytes per second the body must average (after the first `idleMs`); 0 disables the rate limit. */
  minRate: number;
}

/** True while a request still has body bytes on the way. */
function bodyPending(req: IncomingMessage): boolean {
  if (req.complete) return false;
  const h = req.headers;
  return h["transfer-encoding"] !== undefined || (h["content-length"] !== undefined && h["content-length"] !== "0");
}

/**
 * True when `watchBody` would watch this request: its body is still on the way over HTTP/1.1 and
 * the limits are on. A caller checks it first so that a request without a body (most of them)
 * builds no callback for it.
 */
export function bodyMayStall(req: IncomingMessage, limits: BodyTimeoutLimits): boolean {
  return limits.idleMs > 0 && req.httpVersionMajor === 1 && bodyPending(req);
}

/**
 * Calls `onTimeout` once if the request's body stalls or crawls past the limits; does nothing
 * for a request whose body already arrived (most of them: it came with the headers).
 */
export function watchBody(req: IncomingMessage, limits: BodyTimeoutLimits, onTimeout: (why: string) => void): void {
  if (!bodyMayStall(req, limits)) return;
  const socket = req.socket;
  const base = socket.bytesRead;
  // Checked four times per idle period, so a stall is noticed within 1.25 × idleMs.
  const every = Math.max(25, Math.floor(limits.idleMs / 4));
  let seen = base;
  let lastActive = Date.now();
  let lastCheck = lastActive;
  let budgetStart = lastActive;
  let timer: NodeJS.Timeout | undefined;

  const stop = () => {
    clearTimeout(timer);
    timer = undefined;
    req.off("end", stop).off("close", stop);
  };
  const check = () => {
    const now = Date.now();
    const read = socket.bytesRead;
    if (socket.isPaused()) {
      // Backpressure from our side: the client is not late. Move both clocks on.
      budgetStart += now - lastCheck;
      lastActive = now;
    } else if (read !== seen) lastActive = now;
    seen = read;
    lastCheck = now;
    let why: string | undefined;
    if (now - lastActive >= limits.idleMs) why = `no request body byte for ${limits.idleMs} ms`;
    else if (limits.minRate > 0) {
      const allowed = limits.idleMs + ((read - base) * 1000) / limits.minRate;
      if (now - budgetStart >= allowed) why = `request body slower than ${limits.minRate} bytes/s`;
    }
    if (why) {
      stop();
      onTimeout(why);
      return;
    }
    timer = setTimeout(check, every);
    timer.unref();
  };
  req.once("end", stop).once("close", stop);
  timer = setTimeout(check, every);
  timer.unref();
}
