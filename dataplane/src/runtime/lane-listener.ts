/**
 * The listening side of a plain HTTP/1.1 listener with `proxy.http1_server = "llhttp"`: a
 * net.Server whose connections the llhttp lane (http1/server/) reads, serving body-less requests
 * to backend-only routes on a light request/response pair, and handing any other connection to the
 * listener's node:http server (which never listens itself) with the bytes of the request that made
 * it leave. One coarse clock per listener times every lane connection's head and idle keep-alive.
 */
import type { Server as HttpServer, IncomingMessage, ServerResponse } from "node:http";
import { Server as NetServer, type Socket } from "node:net";
import { Deadlines, tickFor } from "../http1/deadlines.js";
import { llhttpBinding } from "../http1/llhttp.js";
import { LaneConnection, type LaneHost } from "../http1/server/connection.js";
import { laneRequestsSupported } from "../http1/server/request.js";
import { answerClientError } from "./client-error.js";

export interface FastHandler {
  /**
   * Serves a request on the lane, or returns false having written nothing. `closeAfter`: the
   * listener is retiring, the response must end its connection.
   */
  serve(req: IncomingMessage, res: ServerResponse, closeAfter: boolean): boolean;
  /** A connection went to node:http (counted: harmony_http1_lane_handoffs_total). */
  handedOff(): void;
}

export interface Lane {
  /** The server that listens (bind, adopt and close act on it). */
  readonly server: NetServer;
  /** Closes the lane's idle keep-alive connections (node:http's closeIdleConnections does its own). */
  closeIdle(): void;
}

/** Node has what the lane runs on (its parser binding and IncomingMessage's header intake). */
export function laneAvailable(): boolean {
  return llhttpBinding() !== undefined && laneRequestsSupported();
}

export function createLane(
  http: HttpServer,
  opts: { headersTimeoutMs: number; keepAliveTimeoutMs: number; highWaterMark: number },
  serve: (req: IncomingMessage, res: ServerResponse) => boolean,
  handedOff: () => void,
): Lane {
  const connections = new Set<LaneConnection>();
  const host: LaneHost = {
    deadlines: new Deadlines(tickFor([opts.headersTimeoutMs, opts.keepAliveTimeoutMs])),
    headersTimeoutMs: opts.headersTimeoutMs,
    keepAliveTimeoutMs: opts.keepAliveTimeoutMs,
    // The lane's response is its own writer, not a ServerResponse: it has the part of that API
    // the routes the lane serves reach (http1/server/response.ts, LaneResponseApi).
    serve: serve as unknown as LaneHost["serve"],
    handOff(socket: Socket, replay: Buffer) {
      handedOff();
      // Paused, so the bytes put back wait for node:http's reader instead of flowing to nobody.
      socket.pause();
      socket.unshift(replay);
      http.emit("connection", socket);
      socket.resume();
    },
    reject: answerClientError,
    released: (c) => connections.delete(c),
  };
  // The options node:http gives its own listening socket (allowHalfOpen: it decides when to end).
  const server = new NetServer({ allowHalfOpen: true, noDelay: true, highWaterMark: opts.highWaterMark }, (socket) => {
    const c = new LaneConnection(socket, host);
    connections.add(c);
  });
  // node:http times the connections it is handed (headersTimeout on their next heads) with a sweep
  // it starts when it starts listening; it never listens here, so it starts when the lane's server
  // does (a listener that never binds starts none), and ends with it.
  server.once("listening", () => http.emit("listening"));
  server.on("close", () => http.close());
  return {
    server,
    closeIdle() {
      for (const c of connections) if (c.idle) c.destroy();
    },
  };
}
