/**
 * The response writer of the llhttp server lane (http1/server/). Not a node:http ServerResponse
 * (whose constructor, head code and private fields cost about 1.5 µs a request and may change with
 * Node): the part of its API that a lane route's response meets (LaneResponseApi below: the
 * executor, http-forward's exchange and a rewrite's pipe(), problem and OperationOutcome answers,
 * closeAfterResponse), with node:http's behaviour for each, and its head byte for byte: status
 * line, the fields as set, Date, Connection and Keep-Alive, Content-Length or chunked, HEAD, 204
 * and 304 without a body, and the decision to close after it (fields.ts builds it, head.ts has
 * node's rules per field).
 * Chunked writes of one tick go out as one chunk, as node's (it corks the response per tick).
 *
 * The body goes straight to the socket. Unlike node:http's, 'finish' is emitted when end() has
 * written the last byte (not when the socket took it), the connection (connection.ts) is told at
 * once, it re-emits the socket's 'drain', and 'close' only when the client left before the end.
 */
import type { ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { DIRECT_WRITES } from "../read-buffer.js";
import { ResponseFields } from "./fields.js";
import { httpError, teChunked } from "./head.js";
import type { LaneRequest } from "./request.js";

/** What the connection learns from its response. */
export interface ResponseOwner {
  /** The response's last byte is written; `last`: node:http would close the connection after it. */
  responseDone(res: LaneResponse, last: boolean): void;
}

/**
 * The ServerResponse API the lane's routes reach (grep of dataplane/src: pipeline/executor.ts,
 * pipeline/errors.ts, protocols/fhir-outcome.ts, backends/http-forward.ts, runtime/connection-close.ts),
 * checked against node's typings where they can be (the chainable ones return a ServerResponse
 * there: setHeader, appendHeader, writeHead, end, destroy have node's signatures). A route whose response needs more is not served on the lane
 * (RequestEntry.serveFast takes backend-only routes).
 */
export type LaneResponseApi = Pick<
  ServerResponse<LaneRequest>,
  | "statusCode"
  | "statusMessage"
  | "sendDate"
  | "req"
  | "getHeader"
  | "getHeaders"
  | "getHeaderNames"
  | "hasHeader"
  | "removeHeader"
  | "flushHeaders"
  | "addTrailers"
  | "headersSent"
  | "writableEnded"
  | "writableFinished"
  | "writableLength"
  | "writableHighWaterMark"
  | "writableNeedDrain"
  | "destroyed"
>;

type WriteCallback = (error?: Error | null) => void;
type Chunk = string | Uint8Array;

const CRLF = Buffer.from("\r\n");
const nop = (): void => {};

/** process.nextTick target: the tick's cork ends (node's connectionCorkNT). */
const uncorkTick = (res: LaneResponse): void => {
  if (res.corked) res.uncork();
};

function byteLength(chunk: Chunk, encoding: BufferEncoding | undefined): number {
  return typeof chunk === "string" ? Buffer.byteLength(chunk, encoding) : chunk.byteLength;
}

export class LaneResponse extends ResponseFields implements LaneResponseApi {
  destroyed = false;
  private finished = false;
  private flushed = false;
  private needDrain = false;
  /** Corks of this response (node's kCorked): chunked writes wait in `chunks` while there are any. */
  corked = 0;
  /** node's kChunkedBuffer: chunk, encoding, callback, ... */
  private chunks: (Chunk | WriteCallback | undefined)[] = [];
  private chunkLength = 0;

  constructor(
    readonly req: LaneRequest,
    readonly socket: Socket,
    keepAlive: boolean,
    keepAliveTimeoutMs: number,
    private readonly owner: ResponseOwner,
  ) {
    super(keepAlive, keepAliveTimeoutMs);
    if (req.method === "HEAD") this.hasBody = false;
    // node's ServerResponse for HTTP/1.0: chunks only for a client that asked for them.
    if (req.httpVersionMinor < 1) this.useChunkedEncodingByDefault = teChunked(req.headers.te as string | undefined);
  }

  static {
    // Lets the relay lend it read buffers (http1/read-buffer.ts): its writableLength is the whole truth.
    Object.defineProperty(LaneResponse.prototype, DIRECT_WRITES, { value: true });
  }

  get connection(): Socket {
    return this.socket;
  }

  get writableEnded(): boolean {
    return this.finished;
  }

  /** True once end() wrote the last byte to the socket. */
  get writableFinished(): boolean {
    return this.flushed;
  }

  get writableLength(): number {
    let buffered = this.chunkLength;
    if (buffered !== 0) {
      buffered += buffered.toString(16).length + 4 + (!this.headSent && this.head !== null ? this.head.length : 0);
    }
    return buffered + this.socket.writableLength;
  }

  get writableHighWaterMark(): number {
    return this.socket.writableHighWaterMark;
  }

  get writableNeedDrain(): boolean {
    return !this.destroyed && !this.finished && this.needDrain;
  }

  protected flushHead(): void {
    this.send("", "latin1", undefined);
  }

  flushHeaders(): void {
    if (this.head === null) this.writeHead(this.statusCode);
    this.send("", "latin1", undefined);
  }

  /** node's _send: the head goes with the first bytes (in one string with a text chunk, as there). */
  private send(data: Chunk, encoding: BufferEncoding | undefined, cb: WriteCallback | undefined): boolean {
    const socket = this.socket;
    if (!this.headSent && this.head !== null) {
      this.headSent = true;
      if (typeof data === "string" && (encoding === "utf8" || encoding === "latin1" || !encoding)) {
        data = this.head + data;
      } else if (!socket.destroyed) socket.write(this.head, "latin1");
    }
    if (socket.destroyed) return false;
    return socket.write(data, encoding as BufferEncoding, cb);
  }

  cork(): void {
    this.corked++;
    this.socket.cork();
  }

  /** node's uncork: the tick's chunked writes go out as one chunk. */
  uncork(): void {
    this.corked--;
    const socket = this.socket;
    try {
      if (this.corked || this.chunks.length === 0) return;
      const buf = this.chunks;
      const length = this.chunkLength;
      this.chunks = [];
      this.chunkLength = 0;
      if (this.destroyed || socket.destroyed) {
        const error = httpError("ERR_STREAM_DESTROYED", "Cannot call write after a stream was destroyed");
        for (let n = 2; n < buf.length; n += 3) if (buf[n]) process.nextTick(buf[n] as WriteCallback, error);
        return;
      }
      this.send(length.toString(16), "latin1", undefined);
      this.send(CRLF, undefined, undefined);
      let callbacks: WriteCallback[] | undefined;
      for (let n = 0; n < buf.length; n += 3) {
        this.send(buf[n] as Chunk, buf[n + 1] as BufferEncoding | undefined, undefined);
        if (buf[n + 2]) (callbacks ??= []).push(buf[n + 2] as WriteCallback);
      }
      this.send(CRLF, undefined, callbacks && ((err) => callbacks.forEach((cb) => cb(err))));
    } finally {
      socket.uncork();
    }
    if (this.needDrain && this.writableLength === 0) {
      this.needDrain = false;
      this.emit("drain");
    }
  }

  write(chunk: Chunk, callback?: WriteCallback): boolean;
  write(chunk: Chunk, encoding: BufferEncoding, callback?: WriteCallback): boolean;
  write(chunk: Chunk, encoding?: BufferEncoding | WriteCallback, callback?: WriteCallback): boolean {
    if (typeof encoding === "function") {
      callback = encoding;
      encoding = undefined;
    }
    const ok = this.writeChunk(chunk, encoding, callback, false);
    if (!ok) this.needDrain = true;
    return ok;
  }

  /** node's write_. */
  private writeChunk(
    chunk: Chunk,
    encoding: BufferEncoding | undefined,
    callback: WriteCallback | undefined,
    fromEnd: boolean,
  ): boolean {
    if (chunk === null) throw httpError("ERR_STREAM_NULL_VALUES", "May not write null values to stream");
    if (typeof chunk !== "string" && !(chunk instanceof Uint8Array))
      throw httpError(
        "ERR_INVALID_ARG_TYPE",
        'The "chunk" argument must be of type string or an instance of Uint8Array',
      );
    if (this.finished || this.destroyed) {
      // node also emits 'error' for a write after end (an uncaught one, with no listener): not here.
      if (callback)
        process.nextTick(callback, httpError("ERR_STREAM_DESTROYED", "Cannot call write after a stream was destroyed"));
      return false;
    }
    let len = -1;
    if (this.head === null) {
      if (fromEnd) this.contentLength = len = byteLength(chunk, encoding);
      this.writeHead(this.statusCode);
    }
    if (!this.hasBody) {
      // HEAD, 204 and 304 answers carry no body: node ignores such writes the same way.
      process.nextTick(callback ?? nop);
      return true;
    }
    if (this.chunkedEncoding && typeof chunk === "string" && encoding && !Buffer.isEncoding(encoding))
      throw httpError("ERR_UNKNOWN_ENCODING", `Unknown encoding: ${String(encoding)}`);
    if (!fromEnd && !this.socket.writableCorked) {
      // Writes of one tick share one syscall (head, chunk framing, small bodies), as node:http's.
      this.cork();
      process.nextTick(uncorkTick, this);
    }
    if (this.chunkedEncoding && chunk.length !== 0) {
      if (len < 0) len = byteLength(chunk, encoding);
      if (this.corked) {
        this.chunks.push(chunk, encoding, callback);
        this.chunkLength += len;
        return this.writableLength < this.socket.writableHighWaterMark;
      }
      this.send(len.toString(16), "latin1", undefined);
      this.send(CRLF, undefined, undefined);
      this.send(chunk, encoding, undefined);
      return this.send(CRLF, undefined, callback);
    }
    if (this.chunkedEncoding && this.corked && this.chunks.length !== 0) {
      this.chunks.push(chunk, encoding, callback);
      return this.writableLength < this.socket.writableHighWaterMark;
    }
    return this.send(chunk, encoding, callback);
  }

  end(callback?: () => void): this;
  end(chunk: Chunk, callback?: () => void): this;
  end(chunk: Chunk, encoding: BufferEncoding, callback?: () => void): this;
  end(chunk?: Chunk | (() => void), encoding?: BufferEncoding | (() => void), callback?: () => void): this {
    if (typeof chunk === "function") {
      callback = chunk;
      chunk = undefined;
      encoding = undefined;
    } else if (typeof encoding === "function") {
      callback = encoding;
      encoding = undefined;
    }
    const socket = this.socket;
    if (chunk) {
      if (this.finished) return this;
      socket.cork();
      if (!this.destroyed && this.head === null) {
        // end(body) without writeHead: the length of that one body.
        this.contentLength = byteLength(chunk, encoding);
        this.writeHead(this.statusCode);
      }
      this.writeChunk(chunk, encoding, undefined, true);
    } else if (this.finished) {
      if (callback) process.nextTick(callback);
      return this;
    } else if (this.head === null) {
      socket.cork();
      this.contentLength = 0;
      this.writeHead(this.statusCode);
    }
    if (this.chunks.length !== 0) {
      socket.cork();
      this.corked = 1;
      this.uncork();
    }
    if (this.hasBody && this.chunkedEncoding) this.send("0\r\n" + this.trailer + "\r\n", "latin1", undefined);
    else if (!this.headSent) this.send("", "latin1", undefined);
    while (socket.writableCorked) socket.uncork(); // fully, as node's end()
    this.corked = 1;
    this.uncork();
    this.finished = true;
    this.flushed = true;
    if (callback) process.nextTick(callback);
    // pipe() and a body timeout listen for it.
    this.emit("finish");
    this.owner.responseDone(this, this.last);
    // The request lets go of the connection, as node:http detaches a finished exchange: a late
    // req.destroy() must not cut it (it may be serving the client's next request by then).
    (this.req as { socket: Socket | null }).socket = null;
    return this;
  }

  /**
   * Before the end: the connection goes (node's destroy; its 'close' comes through connection.ts).
   * After it, only a mark, as on node:http's detached response: the connection may be serving
   * the client's next request. (`socket` stays: the relay's CHUNK_RELEASED reads its writableLength.)
   */
  destroy(error?: Error): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    if (this.flushed) return this;
    if (this.chunks.length !== 0) {
      this.corked = 1;
      this.uncork();
    }
    this.socket.destroy(error);
    return this;
  }

  /** The socket drained (node's socketOnDrain): 'drain' for a writer that was told to wait. */
  socketDrained(): void {
    if (!this.finished && this.needDrain && this.writableLength === 0) {
      this.needDrain = false;
      this.emit("drain");
    }
  }
}
