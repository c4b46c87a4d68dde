/**
 * dcmjs-dimse, adapted for a gateway. The library parses every data set it receives into
 * "naturalized" elements and re-encodes them when it sends, and that round trip drops private
 * tags and rewrites values (dcmjs's naturalizer knows only the public dictionary). A gateway must
 * not edit what it forwards, so received data sets keep their wire bytes (RawDataset) and are
 * parsed only if someone asks for their elements; sending one that was not modified sends those
 * bytes again. The library's own logging (loglevel, to stdout) is turned down to errors.
 */
import { createRequire } from "node:module";
import dimse from "dcmjs-dimse";
import { installLink } from "./dimse-network.js";
import { DEFLATED_LE, EXPLICIT_LE, TranscodeError, canTranscode, topLevelValue, transcode } from "./transfer-syntax.js";
import { characterSets, redecode, usesCodeExtensions } from "./charset.js";

export const { Client, Server, Scp, Dataset, requests, responses, constants, association, Transcoding } = dimse;
export type DimseDataset = InstanceType<typeof Dataset>;

dimse.log.setLevel("error");
// dcmjs-dimse has a dcmjs of its own, whose log (to the console) warns about every data set with
// more than one character set; those are handled below, so only its errors are worth a line.
interface WriteStream {
  size: number;
  concat(other: WriteStream): void;
  getBuffer(): ArrayBuffer;
}
const innerDcmjs = createRequire(createRequire(import.meta.url).resolve("dcmjs-dimse"))("dcmjs") as {
  log: { setLevel(level: string): void };
  data: {
    DicomMetaDictionary: {
      nameMap: Record<string, unknown>;
      denaturalizeDataset(elements: unknown, nameMap?: Record<string, unknown>): Record<string, unknown>;
    };
    DicomMessage: {
      write(dict: Record<string, unknown>, stream: WriteStream, ts: string, options?: unknown): void;
      writeTagObject(stream: WriteStream, tag: string, vr: string, value: number, ts: string, options?: unknown): void;
    };
    WriteBufferStream: new (defaultSize?: number) => WriteStream;
  };
};
innerDcmjs.log.setLevel("error");

/**
 * Encoding a command or a data set built from elements (C-FIND matches, identifiers, every
 * command set): dcmjs-dimse writes each into fresh WriteBufferStreams of dcmjs's default 256 KiB,
 * zeroed, three per message with a data set. A 20-match C-FIND answer allocated ~26 MB that way,
 * and a CPU profile of C-FINDs through the SCP had that allocation as its largest self time
 * (issue 18). The same encoding, into streams that start at 8 KiB and grow as needed.
 */
const STREAM_CHUNK = 8 * 1024;
const { DicomMetaDictionary, DicomMessage, WriteBufferStream } = innerDcmjs.data;
const IMPLICIT_LE = "1.2.840.10008.1.2";
type Encodable = { getElements(): Record<string, unknown>; transferSyntaxUid: string };
const datasetProtoWrite = Dataset.prototype as unknown as {
  getDenaturalizedDataset(this: Encodable, writeOptions?: unknown, nameMap?: Record<string, unknown>): Buffer;
  getDenaturalizedCommandDataset(this: Encodable, writeOptions?: unknown): Buffer;
};
datasetProtoWrite.getDenaturalizedDataset = function (this: Encodable, writeOptions, nameMap) {
  const dict = nameMap
    ? DicomMetaDictionary.denaturalizeDataset(this.getElements(), { ...DicomMetaDictionary.nameMap, ...nameMap })
    : DicomMetaDictionary.denaturalizeDataset(this.getElements());
  const stream = new WriteBufferStream(STREAM_CHUNK);
  DicomMessage.write(dict, stream, this.transferSyntaxUid, writeOptions);
  return Buffer.from(stream.getBuffer());
};
datasetProtoWrite.getDenaturalizedCommandDataset = function (this: Encodable, writeOptions) {
  const dict = DicomMetaDictionary.denaturalizeDataset(this.getElements());
  const group = new WriteBufferStream(STREAM_CHUNK);
  const body = new WriteBufferStream(STREAM_CHUNK);
  DicomMessage.write(dict, body, IMPLICIT_LE, writeOptions);
  // CommandGroupLength (0000,0000) first: the length of what follows (PS3.7 E.1).
  DicomMessage.writeTagObject(group, "00000000", "UL", body.size, IMPLICIT_LE, writeOptions);
  group.concat(body);
  return Buffer.from(group.getBuffer());
};

/**
 * Every data set dcmjs-dimse parses (C-FIND responses, retrieved instances) goes through here.
 * dcmjs decodes strings with the first SpecificCharacterSet only; with ISO 2022 code extensions
 * (Japanese, Korean, Chinese, PS3.5 §6.1.2.5) the rest are decoded again from the bytes
 * (charset.ts). dcmjs reports the result as ISO_IR 192, which it then is.
 */
type DatasetProto = {
  _fromElementsBuffer: (this: unknown, b: Buffer, ts: string, opts: unknown) => Record<string, unknown>;
};
const datasetProto = Dataset.prototype as unknown as DatasetProto;
const fromElementsBuffer = datasetProto._fromElementsBuffer;
datasetProto._fromElementsBuffer = function (this: unknown, b: Buffer, ts: string, opts: unknown) {
  const elements = fromElementsBuffer.call(this, b, ts, opts);
  const declared = topLevelValue(b, ts, 0x0008, 0x0005);
  const sets = declared ? characterSets(declared.toString("latin1").replace(/[\0 ]+$/, "")) : [];
  if (usesCodeExtensions(sets)) redecode(elements, sets);
  return elements;
};

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

  /** The element values dcmjs-dimse was given, for a copy in another syntax. */
  get knownElements(): Record<string, string> {
    return this.known;
  }

  private ensureParsed(): void {
    if (this.parsed || !this.raw) return;
    this.parsed = true;
    // dcmjs-dimse reads a Deflated data set as if it were plain Explicit VR Little Endian.
    const ts = this.getTransferSyntaxUid();
    const full =
      ts === DEFLATED_LE
        ? new Dataset(transcode(this.raw, DEFLATED_LE, EXPLICIT_LE), EXPLICIT_LE)
        : new Dataset(this.raw, ts);
    Object.assign(super.getElements(), full.getElements());
  }

  /**
   * The same data set in another transfer syntax, when that is lossless (between the uncompressed
   * syntaxes, see transfer-syntax.ts); undefined when it is not, or the data set was modified.
   */
  transcodedTo(ts: string): RawDataset | undefined {
    if (!this.raw || !canTranscode(this.getTransferSyntaxUid(), ts)) return undefined;
    return new RawDataset(transcode(this.raw, this.getTransferSyntaxUid(), ts), ts, this.known);
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

// When the accepted context's syntax differs from a data set's, dcmjs-dimse transcodes through
// Transcoding.transcodeDataset (a naturalize/denaturalize round trip, which drops private tags).
// A RawDataset is transcoded on its bytes instead, losslessly, or not at all: a compressed
// instance is never decoded into another syntax (dcmjs-dimse then skips that one C-STORE, and the
// sub-operation counts as failed).
const transcodeDataset = Transcoding.transcodeDataset.bind(Transcoding);
Transcoding.transcodeDataset = (ds: DimseDataset, ts: string, options?: Record<string, unknown>) => {
  if (!(ds instanceof RawDataset)) return transcodeDataset(ds, ts, options);
  const copy = ds.transcodedTo(ts);
  if (copy) return copy;
  if (ds.bytes) throw new TranscodeError(`not transcoding ${ds.getTransferSyntaxUid()} to ${ts}: not lossless`);
  return transcodeDataset(ds, ts, options);
};

// Every received C-STORE data set (SCP side, and C-GET sub-operations on the SCU side) becomes a
// RawDataset. Network is the common base of Scp and of the Client's connection.
interface StoreStream {
  toBuffer(): Buffer;
}
type NetworkProto = {
  sendAssociationRequest: unknown;
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

export { isPending, isSuccess, isWarning, hex } from "./dimse-status.js";

/**
 * A C-GET's instances come back as C-STORE sub-operations on the same association, for which the
 * requestor must offer the SCP role of each storage SOP class (PS3.4 C.4.3.1, PS3.7 D.3.3.4).
 * dcmjs-dimse sets that role only on the storage contexts it adds itself (Implicit and Explicit
 * VR Little Endian for every class); contexts added for other syntaxes lose it. So an association
 * that proposes a C-GET gets the role on every storage context, once per SOP class: role
 * selection is per SOP class, and one item per class is what peers expect.
 */
const GET_SOP_CLASSES = new Set(["1.2.840.10008.5.1.4.1.2.1.3", "1.2.840.10008.5.1.4.1.2.2.3"]);
const STORAGE_ROOT = "1.2.840.10008.5.1.4.1.1.";
type AnyAssociation = InstanceType<typeof association.Association>;
type RequestorProto = { sendAssociationRequest(a: AnyAssociation): void };
const sendAssociationRequest = network.sendAssociationRequest as RequestorProto["sendAssociationRequest"];
(network as unknown as RequestorProto).sendAssociationRequest = function (this: unknown, a: AnyAssociation) {
  const contexts = a.getPresentationContexts().map((c: { id: number }) => a.getPresentationContext(c.id));
  if (contexts.some((c) => GET_SOP_CLASSES.has(c.getAbstractSyntaxUid()))) {
    const seen = new Set<string>();
    for (const c of contexts) {
      const uid = c.getAbstractSyntaxUid();
      if (!uid.startsWith(STORAGE_ROOT)) continue;
      if (seen.has(uid)) {
        c.setUserRole(undefined as unknown as boolean);
        c.setProviderRole(undefined as unknown as boolean);
      } else {
        seen.add(uid);
        c.setUserRole(false);
        c.setProviderRole(true);
      }
    }
  }
  sendAssociationRequest.call(this, a);
};
