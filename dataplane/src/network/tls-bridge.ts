/**
 * DICOM over TLS to a peer gateway for the `dicom` backend. dcmjs-dimse's client can speak TLS
 * but cannot be given a server identity check (it passes a fixed set of TLS options), and peer
 * gateways are named by SPIFFE URI, not by host name. So the client talks plain DIMSE to this
 * loopback-only bridge, which opens the mutual-TLS connection itself, checks the server's
 * identity, and only then lets the first byte (the A-ASSOCIATE-RQ) through.
 */
import { createServer, type Server, type Socket } from "node:net";
import { connect } from "node:tls";
import { once } from "node:events";
import type { Logger } from "winston";
import type { PeerTls } from "./target.js";

export class TlsBridge {
  private readonly server: Server;
  private readonly ready: Promise<number>;
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly tls: PeerTls,
    private readonly connectTimeoutMs: number,
    private readonly logger: Logger,
  ) {
    this.server = createServer((plain) => this.bridge(plain));
    this.server.on("error", (e) => logger.error("DICOM TLS bridge error", { error: e.message }));
    // exclusive: in a worker of a group a port-0 listen would otherwise be one port shared by all workers.
    this.server.listen({ port: 0, host: "127.0.0.1", exclusive: true });
    this.ready = once(this.server, "listening").then(() => (this.server.address() as { port: number }).port);
  }

  /** The loopback port the DIMSE client connects to. */
  localPort(): Promise<number> {
    return this.ready;
  }

  private bridge(plain: Socket): void {
    plain.pause();
    this.sockets.add(plain);
    const secure = connect({
      host: this.host,
      port: this.port,
      cert: this.tls.cert,
      key: this.tls.key,
      ca: this.tls.ca,
      rejectUnauthorized: true,
      checkServerIdentity: this.tls.checkServerIdentity,
      minVersion: "TLSv1.2",
      timeout: this.connectTimeoutMs,
    });
    this.sockets.add(secure);
    const done = () => {
      plain.destroy();
      secure.destroy();
      this.sockets.delete(plain);
      this.sockets.delete(secure);
    };
    secure.once("timeout", () => secure.destroy(new Error("connect timeout")));
    secure.once("secureConnect", () => {
      secure.setTimeout(0);
      plain.pipe(secure);
      secure.pipe(plain);
      plain.resume();
    });
    secure.on("error", (e: Error) => {
      this.logger.warn("DICOM TLS connection to peer gateway failed", {
        peer: this.tls.identity,
        address: `${this.host}:${this.port}`,
        error: e.message,
      });
      done();
    });
    plain.on("error", done);
    secure.on("close", done);
    plain.on("close", done);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
