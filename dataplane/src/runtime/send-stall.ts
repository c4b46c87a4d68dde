/**
 * `proxy.client_send_timeout_ms` (nginx's send_timeout): a client that takes none of an answer's
 * bytes for that long loses the connection (HTTP/2: the stream), and with it the upstream request
 * feeding the answer. Without it a client that asks and never reads holds an upstream connection for
 * as long as it likes: the upstream's pause is ours (backpressure), so its body timeout never fires.
 * A pool's worth of such clients (`max_connections`, 128) starve every other caller of a backend,
 * and one HTTP/2 connection holds up to maxConcurrentStreams of them.
 *
 * Judged by progress, not age: only a connection or stream with bytes waiting to be sent is looked
 * at, so idle keep-alives, long polls and slow uploads are left alone, and a slow but steady reader
 * is never cut. One sweep per listener every quarter of the timeout; nothing per HTTP/1.1 request.
 */
import type { Socket } from "node:net";
import { constants, type ServerHttp2Stream } from "node:http2";

/** Where an answer's bytes wait, and what moves when the client takes some. */
interface Gauge {
  /** Bytes written by the answer and not yet taken by the transport. */
  pending: number;
  /** Only ever grows while the client takes bytes. */
  taken: number;
  /** Shrinks while the client takes part of a write (a partial write to the kernel, a flow-control window). */
  level: number;
}

interface Seen {
  taken: number;
  level: number;
  since: number;
}

/** libuv's bytes of the current write not yet in the kernel; a TLS socket's TCP socket is its `_parent`. */
type Queued = { _handle?: { writeQueueSize?: number } | null };
const queued = (s: Queued | null | undefined) => s?._handle?.writeQueueSize ?? 0;

function socketGauge(s: Socket): Gauge {
  const pending = s.writableLength;
  if (pending === 0) return { pending, taken: 0, level: 0 };
  // bytesWritten counts what was written into the socket, taken or not; writableLength what was not.
  // A write completes whole (TLS: 64 KiB each), the queues shrink as the kernel takes part of one.
  const parent = (s as Socket & { _parent?: Queued | null })._parent;
  return { pending, taken: s.bytesWritten - pending, level: queued(s as Queued) + queued(parent) };
}

export interface SendStallWatch {
  /** An HTTP/2 stream of this listener's, judged until it closes. */
  stream(stream: ServerHttp2Stream): void;
  stop(): void;
}

/**
 * Sweeps `sockets` (the listener's connections: the lane's, node:http's and TLS ones alike) and the
 * HTTP/2 streams handed to `stream()`. `onCut` hears of each cut, after it was made.
 */
export function watchSendStalls(
  sockets: ReadonlySet<Socket>,
  timeoutMs: number,
  onCut: (what: "connection" | "stream", remote: string | undefined) => void,
): SendStallWatch {
  if (timeoutMs <= 0) return { stream: () => undefined, stop: () => undefined };
  const seen = new WeakMap<object, Seen>();
  const streams = new Map<ServerHttp2Stream, { drains: number }>();

  /** True when `key` has had bytes waiting and none taken for the whole timeout. */
  const stalled = (key: object, g: Gauge, now: number): boolean => {
    if (g.pending === 0) {
      seen.delete(key);
      return false;
    }
    const last = seen.get(key);
    if (!last || g.taken !== last.taken || g.level < last.level) {
      seen.set(key, { taken: g.taken, level: g.level, since: now });
      return false;
    }
    // A write added meanwhile raises the level: no progress, but the next sample compares with it.
    last.level = g.level;
    if (now - last.since < timeoutMs) return false;
    seen.delete(key);
    return true;
  };

  const sweep = () => {
    const now = performance.now();
    for (const s of sockets) {
      if (s.destroyed || !stalled(s, socketGauge(s), now)) continue;
      const remote = s.remoteAddress; // gone with the handle once destroyed
      s.destroy();
      onCut("connection", remote);
    }
    for (const [st, counts] of streams) {
      if (st.destroyed) continue;
      // An Http2Stream's writes complete as the peer's flow-control window lets nghttp2 take them;
      // bufferSize adds what nghttp2 holds of the current one.
      if (!stalled(st, { pending: st.bufferSize, taken: counts.drains, level: st.bufferSize }, now)) continue;
      const remote = st.session?.socket?.remoteAddress;
      st.close(constants.NGHTTP2_CANCEL);
      onCut("stream", remote);
    }
  };
  // Checked four times per timeout, so a stall is cut within 1.25 × the timeout.
  const timer = setInterval(sweep, Math.max(25, Math.floor(timeoutMs / 4)));
  timer.unref();

  return {
    stream(st) {
      const counts = { drains: 0 };
      streams.set(st, counts);
      st.on("drain", () => counts.drains++);
      st.once("close", () => streams.delete(st));
    },
    stop: () => clearInterval(timer),
  };
}
