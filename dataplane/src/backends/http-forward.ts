/**
 * One upstream exchange on undici's dispatch API, straight into the client response.
 *
 * `Pool.stream()` would do, but it needs an AbortController per request to notice a client that
 * leaves before the upstream answers, and that showed up in the passthrough profile. The dispatch
 * handler gets an abort handle for free and lets backpressure flow both ways: a slow client pauses
 * the upstream socket, a fast one resumes it.
 */
import type { Dispatcher } from "undici";
import type { OutgoingHttpHeaders, ServerResponse } from "node:http";
import { responseHeaders } from "./http-headers.js";
import { ClientGoneError } from "../pipeline/errors.js";

export interface ForwardState {
  /** True once the upstream's status and headers have gone to the client. */
  started: boolean;
  status: number;
}

/** Given status and client-bound headers (editable), a rewrite of the whole body or undefined to stream. */
export type ShapeResponse = (status: number, headers: OutgoingHttpHeaders) => ((body: Buffer) => Buffer) | undefined;

/** Bodies to rewrite are held whole up to this size; a larger one streams through as it came. */
const MAX_REWRITE_BYTES = 64 * 1024 * 1024;

/** Streams the upstream response into `res`; resolves when it has been fully written. */
export function forwardToClient(
  dispatcher: Dispatcher,
  opts: Dispatcher.DispatchOptions,
  res: ServerResponse,
  requestId: string,
  state: ForwardState,
  shape?: ShapeResponse,
  onTooLargeToRewrite?: (bytes: number) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let controller: Dispatcher.DispatchController | undefined;
    let held:
      { rewrite: (b: Buffer) => Buffer; headers: OutgoingHttpHeaders; chunks: Buffer[]; bytes: number } | undefined;
    let draining = false;
    const onDrain = () => controller?.resume();
    const onClose = () => {
      if (!res.writableFinished) controller?.abort(new ClientGoneError());
    };
    res.once("close", onClose);
    const settle = (err?: Error) => {
      res.off("close", onClose);
      if (draining) res.off("drain", onDrain);
      if (err) reject(err);
      else resolve();
    };

    dispatcher.dispatch(opts, {
      onRequestStart(c) {
        controller = c;
        if (res.destroyed) c.abort(new ClientGoneError());
      },
      onResponseStart(c, statusCode, headers) {
        if (statusCode < 200) return; // informational responses are not relayed
        // Something else answered the client meanwhile (a client body timeout's 408).
        if (res.headersSent) return c.abort(new ClientGoneError());
        state.status = statusCode;
        const out = responseHeaders(headers, requestId);
        const rewrite = shape?.(statusCode, out);
        if (rewrite && !out["content-encoding"]) {
          held = { rewrite, headers: out, chunks: [], bytes: 0 };
          return;
        }
        state.started = true;
        res.writeHead(statusCode, out);
      },
      onResponseData(c, chunk) {
        if (held) {
          held.chunks.push(chunk);
          held.bytes += chunk.length;
          if (held.bytes <= MAX_REWRITE_BYTES) return;
          // Too big to hold: send what came so far unchanged and stream the rest.
          onTooLargeToRewrite?.(held.bytes);
          const { headers: h, chunks } = held;
          held = undefined;
          state.started = true;
          res.writeHead(state.status, h);
          for (const x of chunks) res.write(x);
          return;
        }
        if (!res.write(chunk)) {
          c.pause();
          if (!draining) {
            draining = true;
            res.on("drain", onDrain);
          }
        }
      },
      onResponseEnd() {
        if (held) {
          let body: Buffer;
          try {
            body = held.rewrite(Buffer.concat(held.chunks, held.bytes));
          } catch (e) {
            settle(e as Error);
            return;
          }
          held.headers["content-length"] = String(body.length);
          state.started = true;
          res.writeHead(state.status, held.headers);
          held = undefined;
          res.end(body);
        } else {
          res.end();
        }
        settle();
      },
      onResponseError(_c, err) {
        settle(err);
      },
    });
  });
}
