/**
 * One request in flight per HTTP/1.1 connection on the listeners node:http serves (TLS ones,
 * `http1_server = "node"`, connections the llhttp lane hands off), as the lane serves its own.
 *
 * node:http emits each pipelined request as soon as its head is parsed and queues only the
 * answers; it stops reading only once those queued answers hold more than the socket's high-water
 * mark. So a client that pipelines requests and never reads had all of them forwarded at once (one
 * connection held a backend's whole pool, and the memory of every answer it left unread). Here a
 * request that node:http queued behind an answer under way is not dispatched until node:http gives
 * it the socket (the answer before it finished: its last byte taken by the kernel), and the
 * connection is not read while MAX_WAITING wait (beyond it, only the rest of the read that brought
 * them). A client that reads nothing then gets no more forwarded than its socket buffers hold
 * answers. What it cooperates with is lib/_http_server.js in Node 24 (parserOnIncoming,
 * resOnFinish, onSocketResume); node:http's own pause (`socket._paused`) is left to it (`hold`).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * Requests that may wait on one connection before it is no longer read. Reading on below it keeps
 * the client's end of the connection in view (a client that leaves or half-closes is seen, and
 * what waits is dropped, as the lane does), and costs a request's two objects each.
 */
const MAX_WAITING = 16;

export interface OneInFlight {
  /** The server's 'request' listener. */
  request: Handler;
  /** Its 'checkContinue' listener: node:http would otherwise write the 100 for a request that waits. */
  checkContinue: Handler;
}

/** A connection with requests waiting. */
class Waiting {
  count = 0;
  /** Not read: MAX_WAITING requests wait. */
  private held = false;
  /** Its 'resume' listener is on (added when first held). */
  private watched = false;

  constructor(private readonly socket: Socket) {}

  add(): void {
    if (++this.count >= MAX_WAITING && !this.held) this.hold();
  }

  remove(): void {
    if (--this.count < MAX_WAITING && this.held) {
      this.held = false;
      // (If node:http paused the socket for its own reasons, its 'resume' handler keeps it paused.)
      this.socket.resume();
    }
  }

  /**
   * Stops reading the connection. node:http's own flag (`socket._paused`) is left alone: with it
   * set, node:http pauses the parser after the read, and a TLS socket still hands the parser the
   * rest of the records it decrypted from that read, which a paused parser fails (HPE_PAUSED, a
   * 400). Paused this way, those records are parsed (their requests wait too) and no further read
   * is made. Whatever resumes the socket meanwhile (an IncomingMessage asking for body, node:http's
   * answer queue draining) emits 'resume' a tick later, before any read; node:http's listener has
   * restarted the read then, and this one stops it again.
   */
  private hold(): void {
    this.held = true;
    this.socket.pause();
    if (this.watched) return;
    this.watched = true;
    this.socket.on("resume", () => {
      if (this.held && !this.socket.destroyed) this.socket.pause();
    });
  }
}

export function oneInFlight(handler: Handler): OneInFlight {
  const connections = new WeakMap<Socket, Waiting>();

  const run = (req: IncomingMessage, res: ServerResponse, expect: boolean) => {
    if (expect) res.writeContinue();
    handler(req, res);
  };

  /**
   * node:http's turn: the answer before this one finished and node:http gave this one the socket
   * (its resOnFinish); run after the current tick, so that exchange's own 'finish' listeners
   * (access line, metrics) come first, as with a request of its own.
   */
  const turn = (req: IncomingMessage, res: ServerResponse, expect: boolean, waiting: Waiting) => {
    waiting.remove();
    process.nextTick(() => {
      // Ending meanwhile (the client's end: node:http ends its side): nobody to answer.
      if (req.socket.writable) run(req, res, expect);
    });
  };

  const admit = (req: IncomingMessage, res: ServerResponse, expect: boolean) => {
    // node:http gives a response the socket at once when no earlier answer is under way on it;
    // otherwise it queues the response, and gives it the socket when the one before finishes.
    // (An HTTP/2 request, an allowHTTP1 server's other half, has a socket: its streams are bounded
    // by maxConcurrentStreams.)
    if (res.socket !== null) {
      run(req, res, expect);
      return;
    }
    const socket = req.socket;
    let waiting = connections.get(socket);
    if (!waiting) connections.set(socket, (waiting = new Waiting(socket)));
    waiting.add();
    const w = waiting;
    // Never emitted when the connection closes first: node:http aborts the response instead. Nor
    // after an answer that ends the connection (`Connection: close`): node:http gives none the socket.
    res.once("socket", () => turn(req, res, expect, w));
  };

  return { request: (req, res) => admit(req, res, false), checkContinue: (req, res) => admit(req, res, true) };
}
