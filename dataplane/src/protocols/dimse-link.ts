/**
 * One DICOM Upper Layer connection under dcmjs-dimse (installed by dimse-network.ts): framing by
 * PduFramer, with each header judged before its body is buffered (type allowed in the current
 * phase, length under the cap: 256 KiB for association PDUs, the advertised maximum for P-DATA); a
 * violation sends an A-ABORT and closes. PDUs go to the library one at a time, and the socket is
 * paused while a few wait, so a fast sender cannot queue unbounded work. On an accepted socket
 * (registered by `acceptWith` before the Scp is built): the ARTIM timer (PS3.8 §9.1.5: the
 * A-ASSOCIATE-RQ must arrive in time, and after we reject, release or abort, the peer must close in
 * time), an idle timer (no PDU either way while nothing is owed), a lifetime cap, and a cap on the
 * data set gathered from P-DATA fragments.
 */
import type { Socket } from "node:net";
import dimse from "dcmjs-dimse";
import { PduFramer, type Violation } from "./pdu-framer.js";

/** A-ASSOCIATE-RQ/AC/RJ: the fixed part, presentation contexts and user identity fit well within this. */
export const ASSOCIATE_PDU_MAX = 256 * 1024;
/** A-RELEASE-RQ/RP and A-ABORT have a 4-byte body (PS3.8 §9.3.6–9.3.8). */
const CONTROL_PDU_MAX = 64;
/** P-DATA when the advertised maximum is 0 ("unlimited", PS3.8 D.1): the library's own send ceiling. */
const UNLIMITED_PDATA = 4 * 1024 * 1024;
/** PDUs waiting for the library before the socket is paused. */
const QUEUE_HIGH = 8;

const T = { RQ: 0x01, AC: 0x02, RJ: 0x03, PDATA: 0x04, RELEASE_RQ: 0x05, RELEASE_RP: 0x06, ABORT: 0x07 };

/** A-ABORT reasons (PS3.8 Table 9-26), source 2 = service provider. */
const ABORT_REASON: Record<Violation["kind"], number> = {
  "unknown-type": 1, // unrecognized PDU
  "unexpected-type": 2, // unexpected PDU
  "too-long": 6, // invalid PDU parameter value
};

export function abortPdu(source: number, reason: number): Buffer {
  return Buffer.from([T.ABORT, 0, 0, 0, 0, 4, 0, 0, source, reason]);
}

export function rejectPdu(result: number, source: number, reason: number): Buffer {
  return Buffer.from([T.RJ, 0, 0, 0, 0, 4, 0, result, source, reason]);
}

export interface AcceptorLimits {
  /** ARTIM: connect → A-ASSOCIATE-RQ complete; and our end of the connection → the peer's. */
  artimMs: number;
  /** No PDU in either direction for this long on an association → A-ABORT. */
  idleMs: number;
  /** An association's whole life; 0: no limit. */
  maxMs: number;
  /** Largest DIMSE data set (a C-STORE instance) gathered from P-DATA fragments; 0: no limit. */
  maxMessageBytes?: number;
  /** Why a connection was cut (the peer's address only: never PDU content). */
  log: (message: string, fields: Record<string, unknown>) => void;
}

const acceptors = new WeakMap<Socket, AcceptorLimits>();

/** The limits `acceptWith` registered for `socket`; undefined for a socket we connected. */
export function acceptorOf(socket: Socket): AcceptorLimits | undefined {
  return acceptors.get(socket);
}

/** Marks an accepted socket; call before the Scp is constructed on it. */
export function acceptWith(socket: Socket, limits: AcceptorLimits): void {
  acceptors.set(socket, limits);
}

/** What of dcmjs-dimse's Network this module touches. */
export interface NetworkInternals {
  socket: Socket;
  association?: { getMaxPduLength(): number };
  connectTimeout: number;
  associationTimeout: number;
  pduTimeout: number;
  connected: boolean;
  connectedTime: number | undefined;
  lastPduTime: number | undefined;
  timeoutIntervalId: NodeJS.Timeout | undefined;
  logId: string;
  statistics: { addBytesReceived(n: number): void };
  emit(event: string, ...args: unknown[]): boolean;
  on(event: string, fn: (...args: unknown[]) => void): unknown;
  sendAbort(source?: number, reason?: number): void;
  _processPdu(pdu: Buffer): Promise<void> | void;
  _reset(): void;
  _wrapSocket(): void;
  [k: string]: unknown;
}

type Phase = "awaiting" | "associated" | "closing";

export interface DimseCommand {
  getCommandFieldType(): number;
  getStatus?(): number;
}

/** One connection's framing, queue and timers. */
export class Link {
  phase: Phase = "awaiting";
  /** The largest P-DATA we said we accept; known once our AC (or RQ) is sent. */
  recvMax: number | undefined;
  private readonly framer: PduFramer;
  private queue: Promise<void> = Promise.resolve();
  private queued = 0;
  private readonly timers: NodeJS.Timeout[] = [];
  private idle: NodeJS.Timeout | undefined;

  constructor(
    private readonly net: NetworkInternals,
    readonly acceptor: AcceptorLimits | undefined,
  ) {
    this.framer = new PduFramer(
      (type) => this.limit(type),
      (pdu) => this.deliver(pdu),
      (v) => this.violation(v),
    );
  }

  get socket(): Socket {
    return this.net.socket;
  }

  push(chunk: Buffer): void {
    this.framer.push(chunk);
  }

  /** The cap for a PDU of `type` in the current phase; undefined: not allowed now. */
  private limit(type: number): number | undefined {
    if (type === T.ABORT || type === T.RELEASE_RP) return CONTROL_PDU_MAX;
    if (this.phase === "awaiting") {
      if (this.acceptor) return type === T.RQ ? ASSOCIATE_PDU_MAX : undefined;
      return type === T.AC || type === T.RJ ? ASSOCIATE_PDU_MAX : undefined;
    }
    if (type === T.RELEASE_RQ) return CONTROL_PDU_MAX;
    if (type === T.PDATA && this.recvMax !== undefined) return this.recvMax || UNLIMITED_PDATA;
    return undefined;
  }

  /** Data set bytes of the DIMSE message being received. */
  private messageBytes = 0;

  /**
   * The library gathers a message's fragments in memory until the last one, so each PDU is small
   * but the message is not: its data set is counted here, PDV by PDV (PS3.8 9.3.5.1, E.2).
   * False when it went over the cap.
   */
  private countMessage(pdu: Buffer): boolean {
    const cap = this.acceptor?.maxMessageBytes ?? 0;
    if (!cap) return true;
    for (let at = 6; at + 6 <= pdu.length;) {
      const length = pdu.readUInt32BE(at);
      const control = pdu[at + 5]!;
      if (!(control & 1)) this.messageBytes += Math.max(0, length - 2); // a data set fragment
      if (this.messageBytes > cap) return false;
      if (!(control & 1) && control & 2) this.messageBytes = 0; // its last fragment
      at += 4 + length;
    }
    return true;
  }

  private deliver(pdu: Buffer): void {
    const type = pdu[0]!;
    if (type === T.PDATA && !this.countMessage(pdu)) {
      this.acceptor!.log("DICOM association aborted: data set too large", {
        client: this.socket.remoteAddress,
        limit: this.acceptor!.maxMessageBytes,
      });
      return this.abort(0);
    }
    this.activity();
    if (this.phase === "awaiting" && (type === T.RQ || type === T.AC)) this.associated();
    this.queued++;
    if (this.queued >= QUEUE_HIGH) this.socket.pause();
    this.queue = this.queue
      .then(() => {
        this.net.lastPduTime = Date.now();
        return this.net._processPdu(pdu);
      })
      .catch((e: unknown) => {
        this.net.emit("networkError", e instanceof Error ? e : new Error(String(e)));
      })
      .finally(() => {
        this.queued--;
        if (this.queued < QUEUE_HIGH) this.socket.resume();
        // A peer's A-ABORT ends the association at once (PS3.8 AA-3); nothing is owed to it.
        if (type === T.ABORT && this.acceptor) this.socket.destroy();
      });
  }

  private violation(v: Violation): void {
    const fields = { client: this.socket.remoteAddress, ...v };
    if (this.acceptor) this.acceptor.log("DICOM connection aborted: bad PDU", fields);
    else dimse.log.error(`${this.net.logId} -> PDU refused: ${JSON.stringify(v)}`);
    this.abort(ABORT_REASON[v.kind]);
    if (!this.acceptor) this.net.emit("networkError", new Error(`PDU refused (${v.kind}, type ${v.type})`));
  }

  /**
   * Sends an A-ABORT (source: service provider) and closes without waiting for the peer: whoever
   * broke the protocol or went quiet gets no more of our time (a reset may overtake the A-ABORT).
   */
  abort(reason: number): void {
    if (this.phase === "closing") return;
    this.stopReading();
    const socket = this.socket;
    if (socket.destroyed || !socket.writable) return void socket.destroy();
    socket.end(abortPdu(2, reason));
    socket.once("finish", () => socket.destroy());
    this.after(this.artimMs, () => socket.destroy());
  }

  /**
   * An orderly end (we rejected or released): our side is done, the peer closes its side on
   * reading our last PDU; ARTIM bounds the wait (PS3.8 §9.1.5, Sta13). Whatever still arrives is
   * read and dropped, so the peer's close is seen.
   */
  closing(): void {
    if (this.phase === "closing") return;
    this.stopReading();
    this.socket.resume();
    this.socket.end();
    const socket = this.socket;
    this.after(this.artimMs, () => socket.destroy());
  }

  private stopReading(): void {
    this.phase = "closing";
    this.framer.stop();
    this.clearTimers();
  }

  private get artimMs(): number {
    return this.acceptor?.artimMs ?? this.net.associationTimeout;
  }

  /** Acceptor: ARTIM runs from the connection until the A-ASSOCIATE-RQ is complete. */
  startArtim(): void {
    const a = this.acceptor!;
    this.after(a.artimMs, () => {
      a.log("DICOM connection closed: no association request in time (ARTIM)", {
        client: this.socket.remoteAddress,
        partial_pdu: this.framer.partial,
        timeout_ms: a.artimMs,
      });
      // Sta2 ARTIM expiry closes the transport; there is no association to abort (PS3.8 AA-2).
      this.stopReading();
      this.socket.destroy();
    });
  }

  private associated(): void {
    this.phase = "associated";
    this.clearTimers();
    const a = this.acceptor;
    if (!a) return;
    this.idle = this.after(a.idleMs, () => {
      // Waiting on the backend for an answer we owe is not idleness (the pipeline's own timeouts
      // and association_max_ms bound that wait); a peer stuck half-way through a PDU is.
      if (this.busy > 0 && !this.framer.partial) return void this.idle?.refresh();
      a.log("DICOM association aborted: idle", {
        client: this.socket.remoteAddress,
        partial_pdu: this.framer.partial,
        timeout_ms: a.idleMs,
      });
      this.abort(0);
    });
    if (a.maxMs > 0)
      this.after(a.maxMs, () => {
        a.log("DICOM association aborted: lasted too long", { client: this.socket.remoteAddress, limit_ms: a.maxMs });
        this.abort(0);
      });
  }

  /** A PDU went either way: the association is not idle. */
  activity(): void {
    this.idle?.refresh();
  }

  /** DIMSE requests received and not yet answered with a final response. */
  private busy = 0;

  /** A DIMSE message came in (before the library hands it on). */
  received(command: DimseCommand): void {
    const field = command.getCommandFieldType();
    // Responses have bit 0x8000 set (PS3.7 E.1); C-CANCEL (0x0FFF) gets no response of its own.
    if (!(field & 0x8000) && field !== 0x0fff) this.busy++;
  }

  /** A DIMSE message went out. */
  sent(command: DimseCommand): void {
    const field = command.getCommandFieldType();
    if (!(field & 0x8000)) return;
    const status = command.getStatus?.();
    if (status === 0xff00 || status === 0xff01) return; // pending: more to come
    this.busy = Math.max(0, this.busy - 1);
    this.activity();
  }

  private after(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(fn, ms);
    t.unref();
    this.timers.push(t);
    return t;
  }

  clearTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.length = 0;
    this.idle = undefined;
  }
}
