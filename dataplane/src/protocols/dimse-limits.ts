/**
 * How many DIMSE connections one listener holds at once, in all and per peer address. A
 * connection takes a slot from the moment it is accepted (a half-sent association request holds
 * memory and a descriptor like an association does) until it closes. Beyond a cap the connection
 * gets an A-ASSOCIATE-RJ, rejected-transient / service provider (presentation) / local limit
 * exceeded (PS3.8 Table 9-21), so a well-behaved SCU knows to retry later, and is closed.
 */
import type { Socket } from "node:net";
import { rejectPdu } from "./dimse-link.js";

export interface SlotCaps {
  /** Connections on this listener; 0: no cap. */
  total: number;
  /** Connections from one peer address; 0: no cap. */
  perPeer: number;
}

/** How long a refused connection may take to read our A-ASSOCIATE-RJ and close before we cut it. */
const REFUSED_LINGER_MS = 2000;

/** ::ffff:127.0.0.1 and 127.0.0.1 are the same peer. */
function peerOf(socket: Socket): string {
  const a = socket.remoteAddress ?? "";
  return a.startsWith("::ffff:") ? a.slice(7) : a;
}

export class AssociationSlots {
  private total = 0;
  private readonly perPeer = new Map<string, number>();

  get inUse(): number {
    return this.total;
  }

  /**
   * Takes a slot for `socket` (given back when it closes), or says which cap is full; the socket is
   * then refused here and must not be used further.
   */
  take(socket: Socket, caps: SlotCaps): "listener" | "peer" | undefined {
    const peer = peerOf(socket);
    const fromPeer = this.perPeer.get(peer) ?? 0;
    const full = caps.total > 0 && this.total >= caps.total ? "listener" : undefined;
    const peerFull = caps.perPeer > 0 && fromPeer >= caps.perPeer ? "peer" : undefined;
    if (full ?? peerFull) {
      refuse(socket);
      return full ?? peerFull;
    }
    this.total++;
    this.perPeer.set(peer, fromPeer + 1);
    socket.once("close", () => {
      this.total--;
      const n = (this.perPeer.get(peer) ?? 1) - 1;
      if (n > 0) this.perPeer.set(peer, n);
      else this.perPeer.delete(peer);
    });
    return undefined;
  }
}

/**
 * A-ASSOCIATE-RJ (transient) without reading the request: the peer reads it once its request is
 * sent. Its bytes are drained and dropped so its close is seen and no reset races our answer.
 */
function refuse(socket: Socket): void {
  socket.on("error", () => socket.destroy());
  socket.resume();
  socket.end(rejectPdu(2, 3, 2));
  const t = setTimeout(() => socket.destroy(), REFUSED_LINGER_MS);
  t.unref();
  socket.once("close", () => clearTimeout(t));
}
