/**
 * The gateway's DIMSE listener: a TCP (or DICOM over TLS) server bound where the config says,
 * unlike dcmjs-dimse's own Server, which binds every interface. It caps connections, checks a
 * network peer's identity, applies the link-level timers and hands each association to a
 * GatewayScp (dimse-scp.ts). One per bound address; config generations re-point it.
 */
import { createServer, type Server as NetServer, type Socket } from "node:net";
import {
  createServer as createTlsServer,
  type Server as TlsServer,
  type TlsOptions as TlsServerOptions,
  type TLSSocket,
} from "node:tls";
import type { Logger } from "winston";
import type { InternalRun } from "../plugins/types.js";
import { acceptWith } from "./dimse-link.js";
import { AssociationSlots } from "./dimse-limits.js";
import { GatewayScp } from "./dimse-scp.js";
import type { DimseTls, ScpHost, ScpSettings } from "./dimse-scp-settings.js";
import { admitPeer } from "../network/dimse-gate.js";
import type { Identity } from "../network/identity.js";

export type { DimseTls, MoveDestination, ScpSettings } from "./dimse-scp-settings.js";

/** Refused connections allowed to linger beyond `maxAssociations` (see DimseListener.bound). */
const REFUSED_ROOM = 64;

/** One per bound address; config generations re-point it instead of re-binding. */
export class DimseListener implements ScpHost {
  private server: NetServer | undefined;
  private listening: Promise<void> | undefined;
  settings: ScpSettings | undefined;
  run: InternalRun | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly slots = new AssociationSlots();

  constructor(
    readonly host: string,
    readonly port: number,
    private readonly logger: Logger,
    /** DICOM over TLS with a client certificate required; updated by configure() on rotation. */
    private tls?: DimseTls,
  ) {}

  /** Binds once; rejects (and may be tried again) when the address cannot be bound. */
  bind(): Promise<void> {
    this.listening ??= this.listen().catch((e: unknown) => {
      this.listening = undefined;
      this.server = undefined;
      throw e;
    });
    return this.listening;
  }

  isListening(): boolean {
    return this.server?.listening === true;
  }

  configure(settings: ScpSettings, run: InternalRun, tls?: DimseTls): void {
    this.settings = settings;
    this.run = run;
    this.bound();
    if (tls && this.tls && !sameTls(tls, this.tls)) {
      // A rotated identity or bundle: new handshakes use it, associations already open go on.
      this.tls = tls;
      (this.server as TlsServer | undefined)?.setSecureContext(tlsOptions(tls));
      settings.logger.info("DICOM TLS certificate reloaded", { address: this.host, port: this.boundPort() });
    }
  }

  private listen(): Promise<void> {
    const accept = (socket: Socket) => {
      // Bound for a generation that has not gone live yet (its reload may still fail): not ours to serve.
      if (!this.settings || !this.run) return socket.destroy();
      const s = this.settings;
      let peer: Identity | undefined;
      if (this.tls) {
        peer = s.network ? admitPeer(s.network, socket as TLSSocket, s.logger) : undefined;
        if (!peer) return socket.destroy();
      }
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
      const full = this.slots.take(socket, { total: s.maxAssociations, perPeer: s.maxAssociationsPerPeer });
      if (full) {
        s.logger.warn("DICOM association refused: too many connections", { client: socket.remoteAddress, cap: full });
        return;
      }
      // Framing caps and the ARTIM, idle and lifetime timers of protocols/dimse-link.ts.
      acceptWith(socket, {
        artimMs: s.artimTimeoutMs,
        idleMs: s.associationTimeoutMs,
        maxMs: s.associationMaxMs,
        maxMessageBytes: s.maxInstanceBytes,
        log: (message, fields) => this.settings?.logger.warn(message, fields),
      });
      // The SCP reads settings and pipeline when each association arrives: reloads apply to new ones.
      new GatewayScp(
        socket,
        this,
        {
          associationTimeout: s.associationTimeoutMs,
          pduTimeout: s.associationTimeoutMs,
          connectTimeout: s.connectTimeoutMs,
        },
        peer,
      );
    };
    let server: NetServer;
    if (this.tls) {
      const tlsServer = createTlsServer(tlsOptions(this.tls));
      tlsServer.on("secureConnection", accept);
      tlsServer.on("tlsClientError", (e: Error, socket: TLSSocket) =>
        this.logger.debug("DICOM TLS handshake refused", { client: socket.remoteAddress, error: e.message }),
      );
      server = tlsServer;
    } else server = createServer(accept);
    this.server = server;
    this.bound();
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      // exclusive: in a worker of a group this process binds the port, not the cluster primary.
      server.listen({ port: this.port, host: this.host, exclusive: true }, () => {
        server.off("error", reject);
        // An error after listening (EMFILE on accept) must not become an uncaught exception.
        server.on("error", (e) => this.logger.error("DICOM listener error", { address: this.host, error: e.message }));
        this.logger.info("DICOM listener started", { address: this.host, port: this.boundPort() });
        resolve();
      });
    });
  }

  /**
   * Refused connections linger a moment to read their A-ASSOCIATE-RJ; past this many in all, the
   * kernel-level accept is dropped outright, so a flood costs no more descriptors than this.
   */
  private bound(): void {
    const cap = this.settings?.maxAssociations ?? 0;
    if (this.server) this.server.maxConnections = cap > 0 ? cap + REFUSED_ROOM : Infinity;
  }

  boundPort(): number | undefined {
    const a = this.server?.address();
    return typeof a === "object" && a ? a.port : undefined;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

function tlsOptions(t: DimseTls): TlsServerOptions {
  // The handshake itself refuses a peer without a certificate of the network's CAs.
  return { cert: t.cert, key: t.key, ca: t.ca, requestCert: true, rejectUnauthorized: true, minVersion: "TLSv1.2" };
}

const sameTls = (a: DimseTls, b: DimseTls) => a.cert.equals(b.cert) && a.key.equals(b.key) && a.ca.equals(b.ca);
