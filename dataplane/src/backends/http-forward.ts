/**
 * One upstream exchange on undici's dispatch API, straight into the client response.
 *
 * `Pool.stream()` would do, but it needs an AbortController per request to notice a client that
 * leaves before the upstream answers, and that showed up in the passthrough profile. The dispatch
 * handler gets an abort handle for free and lets backpressure flow both ways: a slow client pauses
 * the upstream socket, a fast one resumes it.
 */
import type { Dispatcher } from "undici";
import type { ServerResponse } from "node:http";
import { responseHeaders } from "./http-headers.js";
import { ClientGoneError } from "../pipeline/errors.js";

export interface ForwardState {
  /** True once the upstream's status and headers have gone to the client. */
  started: boolean;
  status: number;
}

/** Streams the upstream response into `res`; resolves when it has been fully written. */
export function forwardToClient(
  dispatcher: Dispatcher,
  opts: Dispatcher.DispatchOptions,
  res: ServerResponse,
  requestId: string,
  state: ForwardState,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let controller: Dispatcher.DispatchController | undefined;
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
      onResponseStart(_c, statusCode, headers) {
        if (statusCode < 200) return; // informational responses are not relayed
        state.started = true;
        state.status = statusCode;
        res.writeHead(statusCode, responseHeaders(headers, requestId));
      },
      onResponseData(c, chunk) {
        if (!res.write(chunk)) {
          c.pause();
          if (!draining) {
            draining = true;
            res.on("drain", onDrain);
          }
        }
      },
      onResponseEnd() {
        res.end();
        settle();
      },
      onResponseError(_c, err) {
        settle(err);
      },
    });
  });
}
