/**
 * One request in flight per HTTP/1.1 connection on the listeners node:http serves (TLS ones,
 * `http1_server = "node"`, connections the llhttp lane hands off), as the lane serves its own.
 *
 * node:http emits each pipelined request as soon as its head is parsed and queues only the
 * answers; it stops reading only once those queued answers hold more than the socket's high-water
 * mark. So a client that pipelines requests and never reads had all of them forwarded at once (one
 * connection held a backend's whole pool, and the memory of every answer it left unread). Here a
 * request whose connection has one under way waits, not dispatched, until that one's response
 * closes (finished, or the connection gone), and the connection is not read while MAX_WAITING
 * wait (beyond it, only the rest of the read that brought them). A client that reads nothing then gets
 * no more forwarded than its socket buffers hold answers (a response finishes when the kernel took
 * its last byte).
 * (lib/_http_server.js in Node 24 is what this cooperates with: its own pause, `socket._paused`,
 * is left to it; see `hold`.)
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * Requests that may wait on one connection before it is no longer read. Reading on below it keeps
 * the client's end of the connection in view (a client that leaves or half-closes is seen, and
 * what waits is dropped, as the lane does), and costs a request's two objects each.
 */
export const MAX_WAITING = 16;

interface Waiting {
  req: IncomingMessage;
  res: ServerResponse;
  /** Sent `Expect: 100-continue`: the 100 goes out when its turn comes, not behind another's answer. */
  expect: boolean;
}

/** One connection's turn-taking. */
interface Turns {
  busy: boolean;
  waiting: Waiting[];
  /** Not read: MAX_WAITING requests wait. */
  held: boolean;
  /** Its 'resume' listener is on (added when first held). */
  watched: boolean;
}

export interface OneInFlight {
  /** The server's 'request' listener. */
  request: Handler;
  /** Its 'checkContinue' listener: node:http would otherwise write the 100 for a request that waits. */
  checkContinue: Handler;
}

export function oneInFlight(handler: Handler): OneInFlight {
  const connections = new WeakMap<Socket, Turns>();

  const start = (turns: Turns, socket: Socket, w: Waiting) => {
    turns.busy = true;
    // 'close' follows 'finish' by a tick (node:http has handed the socket to the next answer by
    // then, and the finished exchange has settled), or comes alone when the connection is gone.
    w.res.once("close", () => next(turns, socket));
    if (w.expect) w.res.writeContinue();
    handler(w.req, w.res);
  };

  const next = (turns: Turns, socket: Socket) => {
    turns.busy = false;
    // The connection is gone, or ending: after a `Connection: close` answer, or the client's end
    // (node:http ends its side then). node:http aborts what it queued; none is to be served.
    if (!socket.writable) {
      turns.waiting.length = 0;
      return;
    }
    const w = turns.waiting.shift();
    if (!w) return;
    if (turns.held && turns.waiting.length < MAX_WAITING) {
      turns.held = false;
      // (If node:http paused the socket for its own reasons, its 'resume' handler keeps it paused.)
      socket.resume();
    }
    start(turns, socket, w);
  };

  const admit = (req: IncomingMessage, res: ServerResponse, expect: boolean) => {
    if (req.httpVersionMajor !== 1) {
      // HTTP/2 (an allowHTTP1 server's other half): its streams are bounded by maxConcurrentStreams.
      if (expect) res.writeContinue();
      handler(req, res);
      return;
    }
    const socket = req.socket;
    let turns = connections.get(socket);
    if (!turns) connections.set(socket, (turns = { busy: false, waiting: [], held: false, watched: false }));
    const w = { req, res, expect };
    if (!turns.busy) {
      start(turns, socket, w);
      return;
    }
    if (turns.waiting.push(w) >= MAX_WAITING && !turns.held) hold(socket, turns);
  };

  return { request: (req, res) => admit(req, res, false), checkContinue: (req, res) => admit(req, res, true) };
}

/**
 * Stops reading `socket` while MAX_WAITING requests wait on it. node:http's own flag (`socket._paused`) is left
 * alone: with it set, node:http pauses the parser after the read, and a TLS socket still hands the
 * parser the rest of the records it decrypted from that read, which a paused parser fails
 * (HPE_PAUSED, a 400). Paused this way, those records are parsed (their requests wait too) and no
 * further read is made. Whatever resumes the socket meanwhile (an IncomingMessage asking for body,
 * node:http's answer queue draining) emits 'resume' a tick later, before any read; node:http's
 * listener has restarted the read then, and this one stops it again.
 */
function hold(socket: Socket, turns: Turns): void {
  turns.held = true;
  socket.pause();
  if (turns.watched) return;
  turns.watched = true;
  socket.on("resume", () => {
    if (turns.held && !socket.destroyed) socket.pause();
  });
}
