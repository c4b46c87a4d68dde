/**
 * Ending a client's connection after the current response, so its next request opens a new one:
 * during shutdown (the load balancer sends it to a replica that stays) and on a listener a reload
 * replaced (it reaches the new listener).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest } from "node:http2";

/**
 * HTTP/1.1 by `Connection: close`; HTTP/2 has no such header (Node drops it with a warning) and
 * gets a graceful GOAWAY instead: the streams already open finish, new ones go to a new connection.
 */
export function closeAfterResponse(req: IncomingMessage, res: ServerResponse): void {
  if (req.httpVersionMajor < 2) {
    res.setHeader("connection", "close");
    return;
  }
  const session = (req as unknown as Http2ServerRequest).stream?.session;
  if (session && !session.closed) session.close();
}
