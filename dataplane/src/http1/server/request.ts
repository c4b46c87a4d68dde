/**
 * The request object of the llhttp server lane (http1/server/): a node:http IncomingMessage, so
 * everything downstream (RequestContext, the backends, the access log) reads the fields it reads
 * today, built from one parsed head without node:http's server around it. The lane only serves
 * requests without a body, so the stream part is an empty one, ended only if someone reads it.
 */
import { IncomingMessage } from "node:http";
import type { Socket } from "node:net";

/**
 * IncomingMessage's own header intake (node's lib/_http_incoming.js): it keeps `rawHeaders` and
 * builds `headers` on first read with node:http's rules for repeated fields (joined with ", ",
 * Set-Cookie an array, Host and the like first-wins, Cookie joined with "; "). Not in the typings;
 * `laneRequestsSupported` checks it is there before a listener uses the lane.
 */
interface HeaderIntake {
  _addHeaderLines(headers: string[], n: number): void;
}

export class LaneRequest extends IncomingMessage {
  constructor(
    socket: Socket,
    versionMajor: number,
    versionMinor: number,
    method: string,
    url: string,
    rawHeaders: string[],
  ) {
    super(socket);
    this.httpVersionMajor = versionMajor;
    this.httpVersionMinor = versionMinor;
    this.httpVersion = versionMajor === 1 && versionMinor === 1 ? "1.1" : `${versionMajor}.${versionMinor}`;
    this.method = method;
    this.url = url;
    (this as unknown as HeaderIntake)._addHeaderLines(rawHeaders, rawHeaders.length);
    // No body: the message is complete with its head (node:http sets it at message end).
    this.complete = true;
  }

  /** The body is empty: a reader gets its end at once (node's own would resume the socket). */
  override _read(): void {
    this.push(null);
  }
}

/** This Node's IncomingMessage has the header intake LaneRequest relies on. */
export function laneRequestsSupported(): boolean {
  return typeof (IncomingMessage.prototype as unknown as Partial<HeaderIntake>)._addHeaderLines === "function";
}
