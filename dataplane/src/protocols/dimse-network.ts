/**
 * dcmjs-dimse's socket handling, replaced. The library's Network reads its socket through a
 * private accumulator that trusts the length in each PDU header and concatenates the whole buffer
 * on every chunk (O(n²)), and its timers start only on a client socket's 'connect' event, so an
 * accepted socket had none. `_wrapSocket` is the one place the library attaches to its socket; on
 * the Network prototype that Scp and the Client's connection share it now hands the bytes to a Link
 * (dimse-link.ts). A requesting socket (our Client) keeps the library's own timeouts, unchanged.
 */
import { Link, acceptorOf, type DimseCommand, type NetworkInternals } from "./dimse-link.js";

const links = new WeakMap<object, Link>();

function linkOf(net: object): Link | undefined {
  return links.get(net);
}

/** Replaces dcmjs-dimse's socket wrapping on `network` (the Network prototype). Idempotent. */
export function installLink(network: object): void {
  const proto = network as NetworkInternals & { __harmonyLink?: true };
  if (proto.__harmonyLink) return;
  proto.__harmonyLink = true;

  proto._wrapSocket = function (this: NetworkInternals) {
    const socket = this.socket;
    const acceptor = acceptorOf(socket);
    const link = new Link(this, acceptor);
    links.set(this, link);
    // DIMSE is request/response, and each message leaves as one write (below): Nagle would hold a
    // message back until the peer ACKs the previous one, which a peer that has nothing to send
    // yet delays (40 ms and more on Linux), once per exchange (issue 18: C-FIND through the SCP).
    socket.setNoDelay(true);

    socket.on("data", (chunk: Buffer) => {
      this.statistics.addBytesReceived(chunk.length);
      link.push(chunk);
    });
    socket.on("error", (e: Error) => {
      this._reset();
      link.clearTimers();
      this.emit("networkError", new Error(`${this.logId} -> Connection error: ${e.message}`));
    });
    socket.on("close", () => {
      this._reset();
      link.clearTimers();
      this.emit("close");
    });

    if (acceptor) {
      // The library would leave a networkError (a PDU it could not parse) with the socket open.
      this.on("networkError", () => link.abort(0));
      link.startArtim();
      return;
    }

    // Requestor: the library's own timeouts, as it had them.
    socket.setTimeout(this.connectTimeout);
    socket.on("connect", () => {
      this.connected = true;
      this.connectedTime = Date.now();
      this.emit("connect");
    });
    socket.on("timeout", () => {
      this._reset();
      this.emit("networkError", new Error(`${this.logId} -> Connection timeout`));
    });
    this.timeoutIntervalId = setInterval(() => {
      const now = Date.now();
      let error: string | undefined;
      if (this.connected && !this.lastPduTime && now - this.connectedTime! >= this.associationTimeout)
        error = `Exceeded association timeout (${this.associationTimeout})`;
      else if (this.connected && this.lastPduTime && now - this.lastPduTime >= this.pduTimeout)
        error = `Exceeded PDU timeout (${this.pduTimeout})`;
      if (error) {
        this.sendAbort();
        this._reset();
        this.emit("networkError", new Error(`Connection timeout: ${this.logId} -> ${error}`));
      }
    }, 1000);
  };

  // The library writes a DIMSE message as one write per PDU (the command, then each data
  // fragment): corked, they leave as one writev, so a small message is one TCP segment. A caller
  // that sends several messages at once (the SCP's C-FIND matches) corks around them all.
  const sendPData = proto._sendPDataTF as (...args: unknown[]) => unknown;
  proto._sendPDataTF = function (this: NetworkInternals, ...args: unknown[]) {
    const socket = this.socket;
    socket.cork();
    try {
      return sendPData.apply(this, args);
    } finally {
      socket.uncork();
    }
  };

  // Every PDU we send counts as activity; accepting, rejecting, releasing and aborting move the phase.
  const wrap = (
    name: string,
    after: (link: Link, net: NetworkInternals, args: unknown[]) => void,
    first: "before" | "after" = "after",
  ) => {
    const original = proto[name] as (...args: unknown[]) => unknown;
    proto[name] = function (this: NetworkInternals, ...args: unknown[]) {
      const link = linkOf(this);
      if (link && first === "before") after(link, this, args);
      const r = original.apply(this, args);
      if (link && first === "after") after(link, this, args);
      return r;
    };
  };
  // Counted before the library hands a request on: a local answer (C-ECHO) is sent synchronously.
  wrap("_performDimse", (link, _net, args) => link.received(args[1] as DimseCommand), "before");
  wrap("_sendDimse", (link, _net, args) => link.sent((args[0] as { command: DimseCommand }).command));
  const recordMax = (link: Link, net: NetworkInternals) => {
    link.recvMax = net.association?.getMaxPduLength() ?? 0;
  };
  wrap("_sendPdu", (link) => link.activity());
  wrap("_sendPDataTF", (link) => link.activity());
  wrap("sendAssociationRequest", recordMax);
  wrap("sendAssociationAccept", recordMax);
  wrap("sendAssociationReject", (link) => link.acceptor && link.closing());
  wrap("sendAssociationReleaseResponse", (link) => link.acceptor && link.closing());
  wrap("sendAbort", (link) => link.acceptor && link.closing());
}
