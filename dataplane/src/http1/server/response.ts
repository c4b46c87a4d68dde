/**
 * The response object of the llhttp server lane (http1/server/): a node:http ServerResponse whose
 * head is node's own (writeHead, setHeader and _storeHeader are not overridden: Date, Connection,
 * Keep-Alive, chunked framing and the decision to close come out byte for byte as node:http's),
 * and whose body goes straight to the socket: no outgoing queue, no 'finish' round trip through
 * the event loop, no per-response socket listeners. The connection (connection.ts) is told when
 * the last byte is written, and it re-emits the socket's 'drain' and 'close' on the response.
 */
import { ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { DIRECT_WRITES } from "../read-buffer.js";
import type { LaneRequest } from "./request.js";

/** What the connection learns from its response. */
export interface ResponseOwner {
  /** The response's last byte is written; `last`: node:http would close the connection after it. */
  responseDone(res: LaneResponse, last: boolean): void;
}

/** OutgoingMessage's own state that writeHead fills in; not in the typings. */
interface OutgoingState {
  _header: string | null;
  _hasBody: boolean;
  _last: boolean;
  _contentLength: number | null;
  _keepAliveTimeout: number;
}

type WriteCallback = (error?: Error | null) => void;

const uncork = (socket: Socket): void => socket.uncork();

export class LaneResponse extends ServerResponse<LaneRequest> {
  /** Lets the relay lend it read buffers (http1/read-buffer.ts): its writableLength is the socket's. */
  readonly [DIRECT_WRITES] = true;
  private headWritten = false;
  private flushed = false;

  constructor(
    req: LaneRequest,
    socket: Socket,
    keepAlive: boolean,
    keepAliveTimeoutMs: number,
    private readonly owner: ResponseOwner,
  ) {
    super(req);
    // What node:http's server sets on each response (parserOnIncoming in lib/_http_server.js).
    this.shouldKeepAlive = keepAlive;
    (this as unknown as OutgoingState)._keepAliveTimeout = keepAliveTimeoutMs;
    // assignSocket would also add a 'close' listener per response; the connection forwards one.
    (this as { socket: Socket | null }).socket = socket;
  }

  static {
    // node:http's getter reads a private symbol set by its own 'finish' path, which this class
    // does not take: true once the last byte went to the socket, as there.
    Object.defineProperty(LaneResponse.prototype, "writableFinished", {
      configurable: true,
      get(this: LaneResponse) {
        return this.flushed;
      },
    });
  }

  override write(chunk: string | Uint8Array, callback?: WriteCallback): boolean;
  override write(chunk: string | Uint8Array, encoding: BufferEncoding, callback?: WriteCallback): boolean;
  override write(
    chunk: string | Uint8Array,
    encodingOrCallback?: BufferEncoding | WriteCallback,
    callback?: WriteCallback,
  ): boolean {
    const encoding = typeof encodingOrCallback === "string" ? encodingOrCallback : undefined;
    const cb = typeof encodingOrCallback === "function" ? encodingOrCallback : callback;
    const socket = this.socket;
    if (this.destroyed || this.writableEnded || !socket || socket.destroyed) return false;
    const state = this as unknown as OutgoingState;
    if (!state._header) this.writeHead(this.statusCode); // node's implicit head: chunked, no length
    // As node:http: writes of one tick share one syscall (head, chunk framing, small bodies).
    if (!socket.writableCorked) {
      socket.cork();
      process.nextTick(uncork, socket);
    }
    this.writeHeadOnce(socket, state);
    // HEAD, 204 and 304 answers carry no body (node ignores such writes the same way).
    const length = !state._hasBody
      ? 0
      : typeof chunk === "string"
        ? Buffer.byteLength(chunk, encoding)
        : chunk.byteLength;
    if (length === 0) {
      if (cb) process.nextTick(cb);
      return socket.writableLength < socket.writableHighWaterMark;
    }
    if (!this.chunkedEncoding) return socket.write(chunk, encoding ?? "utf8", cb);
    socket.write(length.toString(16) + "\r\n", "latin1");
    socket.write(chunk, encoding ?? "utf8");
    return socket.write("\r\n", "latin1", cb);
  }

  override end(callback?: () => void): this;
  override end(chunk: string | Uint8Array, callback?: () => void): this;
  override end(chunk: string | Uint8Array, encoding: BufferEncoding, callback?: () => void): this;
  override end(
    chunkOrCallback?: string | Uint8Array | (() => void),
    encodingOrCallback?: BufferEncoding | (() => void),
    callback?: () => void,
  ): this {
    if (this.writableEnded) return this;
    const chunk = typeof chunkOrCallback === "function" ? undefined : chunkOrCallback;
    const encoding = typeof encodingOrCallback === "string" ? encodingOrCallback : undefined;
    const cb =
      typeof chunkOrCallback === "function"
        ? chunkOrCallback
        : typeof encodingOrCallback === "function"
          ? encodingOrCallback
          : callback;
    const state = this as unknown as OutgoingState;
    const socket = this.socket;
    if (!state._header) {
      // node:http's end(body) without writeHead: the length of that one body.
      state._contentLength = chunk
        ? typeof chunk === "string"
          ? Buffer.byteLength(chunk, encoding)
          : chunk.byteLength
        : 0;
      this.writeHead(this.statusCode);
    }
    if (socket && !socket.destroyed && !this.destroyed) {
      socket.cork();
      if (chunk) this.write(chunk, encoding ?? "utf8");
      this.writeHeadOnce(socket, state);
      if (state._hasBody && this.chunkedEncoding) socket.write("0\r\n\r\n", "latin1");
      socket.uncork();
    }
    this.finished = true;
    this.flushed = true;
    if (cb) process.nextTick(cb);
    // pipe() and a body timeout listen for it; node emits it once the bytes are out.
    this.emit("finish");
    this.owner.responseDone(this, state._last);
    // The request lets go of the connection, as node:http detaches a finished exchange: a late
    // req.destroy() must not cut it (it may be serving the client's next request by then).
    (this.req as { socket: Socket | null }).socket = null;
    return this;
  }

  /**
   * After the last byte a destroy() is only a mark, as on node:http's detached response: the
   * connection may be serving the client's next request. (`socket` itself stays: the relay's
   * CHUNK_RELEASED reads its writableLength after the end.)
   */
  override destroy(error?: Error): this {
    if (!this.flushed) return super.destroy(error);
    this.destroyed = true;
    return this;
  }

  private writeHeadOnce(socket: Socket, state: OutgoingState): void {
    if (this.headWritten) return;
    this.headWritten = true;
    socket.write(state._header!, "latin1");
  }
}
