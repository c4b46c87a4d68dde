/**
 * The answer to a request head that cannot be served at all (a parse error, a head past 16 KiB, a
 * head not complete in time): a bare status with `connection: close`, then the connection ends.
 * node:http's clientError on every HTTP/1.1 listener and the llhttp lane both answer with it, so
 * the bytes are the same whichever read the head.
 */
import type { Socket } from "node:net";

export type ClientErrorStatus = 400 | 408 | 431;

const REASONS: Record<ClientErrorStatus, string> = {
  400: "Bad Request",
  408: "Request Timeout",
  431: "Request Header Fields Too Large",
};

/**
 * How long a connection answered this way may stay half-open for the client to read the answer.
 * The listeners allow half-open connections (node:http decides when to end them), so `end()` alone
 * leaves the socket to the client: one that never closes would hold it for good. Destroying at
 * once could reset the connection under an answer the client has not read yet (a client still
 * sending), so it is destroyed after this.
 */
const LINGER_MS = 5000;

/**
 * Connections answered and lingering. node:http's parser fails every read after its first error
 * and emits clientError again for each: destroying then (as this did, and as node:http does
 * without a handler) closes with the client's bytes unread, a reset that takes the answer from a
 * client still sending (RFC 9112 §9.6). Those reads are discarded instead, as the lane does.
 */
const lingering = new WeakSet<Socket>();

export function answerClientError(socket: Socket, status: ClientErrorStatus): void {
  if (lingering.has(socket)) return;
  if (socket.writable && !socket.destroyed) {
    lingering.add(socket);
    socket.end(`HTTP/1.1 ${status} ${REASONS[status]}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    const linger = setTimeout(() => socket.destroy(), LINGER_MS).unref();
    socket.once("close", () => clearTimeout(linger));
  } else socket.destroy();
}

/** The status for a node:http clientError's error code. */
export function clientErrorStatus(code: string | undefined): ClientErrorStatus {
  return code === "HPE_HEADER_OVERFLOW" ? 431 : code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400;
}
