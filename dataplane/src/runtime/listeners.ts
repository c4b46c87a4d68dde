/**
 * One network's listener: plain HTTP/1.1, HTTPS (TLS 1.2+), or HTTPS with HTTP/2 offered by ALPN
 * beside HTTP/1.1. A TLS listener's certificates (tls-certs.ts) follow file rotations and reloads
 * without a restart. A plain listener with force_https answers every request with a redirect.
 */
import { createHash } from "node:crypto";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { createSecureServer, type ServerHttp2Session } from "node:http2";
import { writeProblem } from "../pipeline/errors.js";
import type { AddressInfo, Server as NetServer, Socket } from "node:net";
import type { Server as TlsServer } from "node:tls";
import type { Logger } from "winston";
import type { ListenerSpec } from "../config/resolve.js";
import { listenerCerts } from "./tls-certs.js";

/**
 * Socket buffer before a write reports backpressure. Node's 16 KiB default is smaller than one
 * upstream read (64 KiB), so every chunk paused and resumed the upstream socket; 256 KiB lets a
 * chunk through and still bounds memory per connection (bench/README.md has the figures).
 */
const SOCKET_HIGH_WATER_MARK = 256 * 1024;

/** Node's HTTP/1.1 default (--max-http-header-size), applied to HTTP/2 as well. */
const MAX_HEADER_BYTES = 16 * 1024;

/** 431 for an HTTP/2 request whose header list is beyond MAX_HEADER_BYTES (RFC 9113 §6.5.2 counting). */
function limitHttp2Headers(handler: Handler): Handler {
  return (req, res) => {
    if (req.httpVersionMajor === 2) {
      let bytes = 0;
      for (let i = 0; i < req.rawHeaders.length; i += 2)
        bytes += req.rawHeaders[i]!.length + req.rawHeaders[i + 1]!.length + 32;
      if (bytes > MAX_HEADER_BYTES) {
        writeProblem(
          res,
          { status: 431, title: "Request Header Fields Too Large", detail: `headers exceed ${MAX_HEADER_BYTES} bytes` },
          "-",
        );
        return;
      }
    }
    handler(req, res);
  };
}

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export interface BoundListener {
  address(): AddressInfo | null;
  /**
   * TLS listeners: swaps in new key material for new handshakes (open connections keep theirs).
   * The gateway calls it for harmony_network listeners with what a config build validated.
   */
  setTls?(material: { cert: Buffer; key: Buffer; ca?: Buffer }): void;
  /**
   * TLS listeners: a reload's certificate settings (ListenerSpec's paths, pairs and SNI list) taken
   * in place, with the port open throughout; ListenerSet calls it when nothing else changed.
   */
  updateCertificates?(spec: ListenerSpec): void;
  /** Stops accepting; open connections get `graceMs` to finish. */
  close(graceMs: number): Promise<void>;
}

function rejectMalformed(server: NetServer): void {
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
    if (socket.writable && !socket.destroyed) {
      const status = err.code === "HPE_HEADER_OVERFLOW" ? 431 : err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400;
      const reason = { 400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large" }[status];
      socket.end(`HTTP/1.1 ${status} ${reason}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    } else socket.destroy();
  });
}

function forceHttps(port: number): Handler {
  return (req, res) => {
    const host = (req.headers.host ?? "").replace(/:\d+$/, "");
    if (!/^[A-Za-z0-9.-]+$|^\[[0-9A-Fa-f:.]+\]$/.test(host)) {
      res.writeHead(400, { "content-type": "text/plain", connection: "close" }).end("a Host header is required\n");
      return;
    }
    const location = `https://${host}${port === 443 ? "" : `:${port}`}${req.url ?? "/"}`;
    res.writeHead(301, { location, "content-length": "0" }).end();
  };
}

export async function bindListener(
  spec: ListenerSpec,
  handler: Handler,
  logger: Logger,
  network: string,
  /** A worker of a group (proxy.workers): each worker binds the port itself, the kernel spreads connections. */
  reusePort = false,
): Promise<BoundListener> {
  const sockets = new Set<Socket>();
  let server: NetServer & { closeIdleConnections?: () => void; closeAllConnections?: () => void };
  let stopReload: (() => void) | undefined;
  let update: ((spec: ListenerSpec) => void) | undefined;
  const headersTimeout = spec.headersTimeoutMs ?? 60_000;
  const opts = {
    keepAliveTimeout: 65_000,
    // No cap on a whole request: it would cut long uploads. A stalled or crawling body is cut by
    // proxy.client_body_timeout_ms / client_body_min_rate instead (pipeline/body-timeout.ts).
    requestTimeout: 0,
    headersTimeout,
    // How often Node looks for clients past headersTimeout (default 30 s, too coarse for short limits).
    connectionsCheckingInterval: Math.min(30_000, Math.max(100, Math.floor(headersTimeout / 4))),
    highWaterMark: SOCKET_HIGH_WATER_MARK,
  };

  if (spec.certPath && spec.keyPath) {
    const certs = listenerCerts(spec, logger, network);
    stopReload = certs.stop;
    update = certs.update;
    // The client certificate is requested and verified, but a handshake without one still
    // completes: the one unauthenticated path (the signed export) is served, everything else is
    // refused per request with a problem naming why (network/guard.ts), which a TLS alert cannot say.
    const mtls = spec.harmony?.caPath ? { requestCert: true, rejectUnauthorized: false } : {};
    const tls = { ...certs.options, ...mtls, minVersion: "TLSv1.2" as const };
    if (spec.http2) {
      server = createSecureServer(
        {
          ...tls,
          allowHTTP1: true,
          // The same bounds as the HTTP/1.1 listeners: 16 KiB of headers (advertised here and
          // enforced by limitHttp2Headers, as nghttp2 does not), 128 pairs (a refused stream), and
          // a cap on parallel streams so one connection cannot hold thousands.
          maxHeaderListPairs: 128,
          settings: { enableConnectProtocol: false, maxHeaderListSize: 16 * 1024, maxConcurrentStreams: 128 },
          maxSessionMemory: 10,
        },
        limitHttp2Headers(handler) as never,
      );
      // A session with no stream activity for as long as an HTTP/1.1 keep-alive lasts is closed,
      // which also bounds a client that opens a session and never sends a request.
      server.on("session", (session: ServerHttp2Session) => {
        session.setTimeout(Math.max(headersTimeout, opts.keepAliveTimeout), () => session.close());
      });
    } else {
      server = createHttpsServer({ ...tls, ...opts }, handler);
    }
    certs.attach(server as TlsServer);
    rejectMalformed(server);
    server.on("secureConnection", (s: Socket) => {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
    });
    server.on("tlsClientError", (e: Error) => logger.debug("TLS handshake failed", { network, error: e.message }));
  } else {
    server = createHttpServer(opts, spec.forceHttpsPort ? forceHttps(spec.forceHttpsPort) : handler);
    rejectMalformed(server);
    server.on("connection", (s: Socket) => {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
    });
  }

  await new Promise<void>((resolveP, reject) => {
    const failed = (e: Error) => {
      // A server that never listened must not keep re-reading its certificate.
      stopReload?.();
      reject(e);
    };
    server.once("error", failed);
    // `exclusive`: a cluster worker binds the socket itself instead of asking the primary for a
    // shared one (runtime/workers/README: why the primary stays out of the data path).
    server.listen({ port: spec.port, host: spec.address, exclusive: true, reusePort }, () => {
      server.off("error", failed);
      // An error after listening (EMFILE on accept) must not become an uncaught exception.
      server.on("error", (e: Error) => logger.error("listener error", { network, error: e.message }));
      resolveP();
    });
  });

  let applied = "";
  const setTls = (m: { cert: Buffer; key: Buffer; ca?: Buffer }) => {
    const h = createHash("sha256").update(m.cert).update(m.key);
    if (m.ca) h.update(m.ca);
    const digest = h.digest("hex");
    if (digest === applied) return;
    const first = applied === "";
    applied = digest;
    if (first) return; // what the listener was bound with
    (server as unknown as { setSecureContext(o: object): void }).setSecureContext({ ...m, minVersion: "TLSv1.2" });
    logger.info("TLS certificate reloaded", { network, cert: spec.certPath });
  };
  return {
    ...(spec.certPath ? { setTls } : {}),
    ...(update ? { updateCertificates: update } : {}),
    address: () => server.address() as AddressInfo | null,
    close: (graceMs) =>
      new Promise<void>((resolveP) => {
        stopReload?.();
        const timer = setTimeout(() => {
          server.closeAllConnections?.();
          for (const s of sockets) s.destroy();
        }, graceMs);
        server.close(() => {
          clearTimeout(timer);
          clearInterval(sweep);
          resolveP();
        });
        // Connections that finish a request during the grace period must not linger idle.
        const idle = () => server.closeIdleConnections?.();
        idle();
        const sweep = setInterval(idle, 50);
        if (!server.closeIdleConnections) {
          // HTTP/2 sessions have no idle sweep: ask them to finish (GOAWAY) and let the timer cut the rest.
          for (const s of sockets) (s as unknown as { session?: { close(): void } }).session?.close();
        }
      }),
  };
}
