/**
 * Where a connection's socket reads land (issue 18, the 1 MiB path). Node gives every read a new
 * 64 KiB buffer: a malloc, external memory that drives full GCs at the rate bytes move, and memory
 * the CPU cache has not seen. nginx reads into the same buffers again and again. A connection
 * here reads into one buffer of its own (`net.connect`'s `onread`) and reads into it again as long
 * as whoever got the bytes says they are gone (written to the kernel, not kept): a handler that
 * implements CHUNK_RELEASED. Any other handler may keep what it is given (undici's request(),
 * a buffered exchange), so it gets the buffer itself and the next read goes to a new one. Small
 * chunks are copies for everyone. Bytes the parser reads (heads, chunked bodies) are copied by the
 * binding.
 */

/** A handler's `[CHUNK_RELEASED]()`: true when the chunk it was last given is referenced by nobody. */
export const CHUNK_RELEASED = Symbol("harmony.h1.chunkReleased");

/**
 * Set (true) on a response whose writes go straight to its socket, so that its `writableLength`
 * is the whole truth about what still holds a written chunk (the llhttp server lane's response).
 */
export const DIRECT_WRITES = Symbol("harmony.h1.directWrites");

export interface ReleasingHandler {
  [CHUNK_RELEASED]?(): boolean;
}

/** One socket read: libuv's and Node's own size. */
export const READ_SIZE = 64 * 1024;
/**
 * Smaller chunks are handed on as copies, whatever the handler: a copy costs less than a new
 * read buffer, and a handler may then leave them corked for the next tick's batch (1 KiB answers:
 * head and body in one write). From this size on, the buffer itself is lent.
 */
export const LENT_FROM = READ_SIZE / 4;

export class ReadBuffer {
  private buf: Buffer | undefined;

  /** The buffer the next read goes to (net's `onread.buffer` function). */
  readonly next = (): Buffer => (this.buf ??= Buffer.allocUnsafeSlow(READ_SIZE));

  /** What a handler gets for `buf[from, to)` (bytes of the last read): a copy when small, else the bytes themselves. */
  chunk(buf: Buffer, from: number, to: number): Buffer {
    const n = to - from;
    if (n < LENT_FROM) {
      const copy = Buffer.allocUnsafe(n);
      buf.copy(copy, 0, from, to);
      return copy;
    }
    return from === 0 && to === buf.length ? buf : buf.subarray(from, to);
  }

  /** `handler` has had `chunk`: unless it released it, the next read goes to a new buffer. */
  delivered(handler: object, chunk: Buffer): void {
    if (chunk.length < LENT_FROM) return;
    const released = (handler as ReleasingHandler)[CHUNK_RELEASED];
    if (!released?.call(handler)) this.buf = undefined;
  }
}
