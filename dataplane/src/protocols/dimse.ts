/**
 * dcmjs-dimse, adapted for a gateway. The library parses every data set it receives into
 * "naturalized" elements and re-encodes them when it sends, and that round trip drops private
 * tags and rewrites values (dcmjs's naturalizer knows only the public dictionary). A gateway must
 * not edit what it forwards, so received data sets keep their wire bytes (RawDataset) and are
 * parsed only if someone asks for their elements; sending one that was not modified sends those
 * bytes again. The library's own logging (loglevel, to stdout) is turned down to errors.
 */
import dimse from "dcmjs-dimse";
import { installLink } from "./dimse-network.js";

export const { Client, Server, Scp, Dataset, requests, responses, constants, association } = dimse;
export type DimseDataset = InstanceType<typeof Dataset>;

dimse.log.setLevel("error");

/** A data set as received: its encoded bytes, parsed lazily. */
export class RawDataset extends Dataset {
  private raw: Buffer | undefined;
  private parsed = false;

  /** `known`: elements already known from elsewhere (the File Meta), answered without a parse. */
  constructor(
    raw: Buffer,
    transferSyntaxUid: string,
    private readonly known: Record<string, string> = {},
  ) {
    super({}, transferSyntaxUid);
    this.raw = raw;
  }

  /** The encoded data set as received (undefined once modified). */
  get bytes(): Buffer | undefined {
    return this.raw;
  }

  private ensureParsed(): void {
    if (this.parsed || !this.raw) return;
    this.parsed = true;
    const full = new Dataset(this.raw, this.getTransferSyntaxUid());
    Object.assign(super.getElements(), full.getElements());
  }

  /**
   * Seals a data set that is only to be relayed: asking for its elements then fails. dcmjs-dimse
   * asks only when the peer accepted none of the proposed contexts in the data set's own transfer
   * syntax and it wants to transcode, which (through its naturalizer) would drop private tags;
   * failing that one C-STORE is better than storing an altered instance.
   */
  seal(): this {
    this.sealed = true;
    return this;
  }
  private sealed = false;

  override getElements(): Record<string, unknown> {
    if (this.sealed)
      throw new Error("not transcoding a relayed data set: the peer accepted none of its transfer syntax");
    this.ensureParsed();
    return super.getElements();
  }

  override getElement(tag: string): string | undefined {
    if (!this.parsed && this.known[tag] !== undefined) return this.known[tag];
    this.ensureParsed();
    return super.getElement(tag);
  }

  override setElement(tag: string, value: string): void {
    this.ensureParsed();
    this.raw = undefined; // modified: from now on it is encoded from its elements
    super.setElement(tag, value);
  }

  override getDenaturalizedDataset(writeOptions?: Record<string, unknown>, nameMap?: Record<string, unknown>): Buffer {
    return this.raw ?? super.getDenaturalizedDataset(writeOptions, nameMap);
  }
}

// Every received C-STORE data set (SCP side, and C-GET sub-operations on the SCU side) becomes a
// RawDataset. Network is the common base of Scp and of the Client's connection.
interface StoreStream {
  toBuffer(): Buffer;
}
type NetworkProto = {
  createDatasetFromStoreWritableStream(
    w: StoreStream,
    ctx: { getAcceptedTransferSyntaxUid(): string },
    cb: (d: DimseDataset) => void,
  ): void;
};
const network = Object.getPrototypeOf(Scp.prototype) as NetworkProto;
network.createDatasetFromStoreWritableStream = function (w, ctx, cb) {
  cb(new RawDataset(w.toBuffer(), ctx.getAcceptedTransferSyntaxUid()));
};

// The socket, framing and timers are ours (protocols/dimse-network.ts, dimse-link.ts). A peer's
// A-ABORT closes the connection there; the library's default Scp.abort would only log that nobody
// implemented it.
installLink(network);
Scp.prototype.abort = () => undefined;

/** DIMSE status classes (PS3.7 Annex C). */
export const isPending = (s: number) => s === 0xff00 || s === 0xff01;
export const isSuccess = (s: number) => s === 0x0000;
export const isWarning = (s: number) => s === 0x0001 || (s & 0xf000) === 0xb000 || s === 0x0107 || s === 0x0116;
export const hex = (s: number) => "0x" + s.toString(16).padStart(4, "0").toUpperCase();
