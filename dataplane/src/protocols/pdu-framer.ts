/**
 * DICOM Upper Layer framing (PS3.8 §9.3): cuts a TCP byte stream into whole PDUs. Every PDU starts
 * with a 6-byte header — type (1 byte), reserved (1), length of the rest (4, big-endian) — and the
 * header is judged before a single byte of the body is kept: a type the state does not allow, or a
 * length over the cap, is a violation and the framer stops. A 2 GiB length sent alone therefore
 * costs six bytes, not 2 GiB of buffering.
 *
 * The body is collected as a list of the received chunks and joined once when complete, so a PDU
 * of n bytes costs O(n) copies however it is split (dcmjs-dimse's own accumulator concatenated the
 * whole buffer again on every chunk: O(n²)).
 */

export type Violation =
  | { kind: "unknown-type"; type: number }
  | { kind: "unexpected-type"; type: number }
  | { kind: "too-long"; type: number; length: number; limit: number };

/** The largest length allowed for a PDU of `type` now, or undefined when that type may not arrive now. */
export type PduLimit = (type: number) => number | undefined;

/** The seven PDU types of PS3.8 Table 9-11; anything else is not DICOM. */
export const KNOWN_TYPES = new Set([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07]);

const HEADER = 6;

export class PduFramer {
  private header = Buffer.alloc(HEADER);
  private headerFill = 0;
  /** Body length announced by the current header; -1 while reading a header. */
  private expected = -1;
  private chunks: Buffer[] = [];
  private received = 0;
  private stopped = false;

  constructor(
    private readonly limit: PduLimit,
    private readonly onPdu: (pdu: Buffer) => void,
    private readonly onViolation: (v: Violation) => void,
  ) {}

  /** True while part of a PDU has arrived and the rest has not. */
  get partial(): boolean {
    return this.headerFill > 0 || this.expected >= 0;
  }

  /** Bytes held for the PDU in progress. */
  get buffered(): number {
    return this.headerFill + this.received;
  }

  /** After a violation nothing more is read: the connection is being aborted. */
  stop(): void {
    this.stopped = true;
    this.chunks = [];
    this.received = 0;
  }

  push(chunk: Buffer): void {
    let at = 0;
    while (!this.stopped && at < chunk.length) {
      if (this.expected < 0) {
        const n = Math.min(HEADER - this.headerFill, chunk.length - at);
        chunk.copy(this.header, this.headerFill, at, at + n);
        // The type is judged on its first byte: no need to wait for a length to refuse a non-DICOM peer.
        if (this.headerFill === 0 && !this.judgeType(chunk[at]!)) return;
        this.headerFill += n;
        at += n;
        if (this.headerFill < HEADER) return;
        const type = this.header[0]!;
        const length = this.header.readUInt32BE(2);
        const limit = this.limit(type)!;
        if (length > limit) return this.violate({ kind: "too-long", type, length, limit });
        this.expected = length;
        this.received = 0;
        this.chunks = [];
        if (length === 0) this.complete();
        continue;
      }
      const n = Math.min(this.expected - this.received, chunk.length - at);
      // A view, not a copy: the chunk is not reused by the socket, and the join below copies once.
      this.chunks.push(chunk.subarray(at, at + n));
      this.received += n;
      at += n;
      if (this.received === this.expected) this.complete();
    }
  }

  private judgeType(type: number): boolean {
    if (!KNOWN_TYPES.has(type)) {
      this.violate({ kind: "unknown-type", type });
      return false;
    }
    if (this.limit(type) === undefined) {
      this.violate({ kind: "unexpected-type", type });
      return false;
    }
    return true;
  }

  private complete(): void {
    const pdu = Buffer.concat([this.header, ...this.chunks], HEADER + this.expected);
    this.headerFill = 0;
    this.expected = -1;
    this.chunks = [];
    this.received = 0;
    this.onPdu(pdu);
  }

  private violate(v: Violation): void {
    this.stop();
    this.onViolation(v);
  }
}
