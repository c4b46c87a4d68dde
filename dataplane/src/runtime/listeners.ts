/**
 * One network's listener: plain HTTP/1.1, HTTPS (TLS 1.2+), or HTTPS with HTTP/2 offered by ALPN
 * beside HTTP/1.1. A TLS listener's certificates (tls-certs.ts) follow file rotations and reloads
 * without a restart. A plain listener with force_https answers every request with a redirect. A
 * listener replacing another on the same address and port adopts its listening socket (adopt).
 */
import { createHash } from "node:crypto";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { createSecureServer, type ServerHttp2Session, type ServerHttp2Stream } from "node:http2";
import { writeProblem } from "../pipeline/errors.js";
import { requestId } from "../pipeline/trace.js";
import { Server as NetServer, type AddressInfo, type Socket } from "node:net";
import type { Server as TlsServer } from "node:tls";
import type { Logger } from "winston";
import type { ListenerSpec } from "../config/resolve.js";
import { answerClientError, clientErrorStatus } from "./client-error.js";
import { closeAfterResponse } from "./connection-close.js";
import { createLane, laneAvailable, type FastHandler, type Lane } from "./lane-listener.js";
import { oneInFlight } from "./one-in-flight.js";
import { watchSendStalls, type SendStallWatch } from "./send-stall.js";
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
  /** Shutdown: stops accepting, closes idle connections now; busy ones get `graceMs` to finish. */
  close(graceMs: number): Promise<void>;
  /**
   * A reload replaced it: stops accepting (if a successor has not taken the socket), each open
   * connection closes after its next response, and what is left is cut after `graceMs`.
   */
  retire(graceMs: number): Promise<void>;
}

function rejectMalformed(server: NetServer): void {
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) =>
    answerClientError(socket, clientErrorStatus(err.code)),
  );
  // An Expect other than 100-continue: node:http's own answer is a bare 417 with an empty body.
  // The body that may follow is never read, so the connection ends with the answer.
  server.on("checkExpectation", (req: IncomingMessage, res: ServerResponse) =>
    writeProblem(
      res,
      {
        status: 417,
        title: "Expectation Failed",
        detail: "the only expectation served is 100-continue",
        headers: { connection: "close" },
      },
      requestId(req.headers["x-request-id"]),
    ),
  );
}

/**
 * `handler` takes a server's requests one at a time per HTTP/1.1 connection (one-in-flight.ts); the
 * 100 of an `Expect: 100-continue` is written when its request's turn comes.
 */
function servePipelined(server: NetServer, handler: Handler): void {
  const turns = oneInFlight(handler);
  server.on("request", turns.request);
  server.on("checkContinue", turns.checkContinue);
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

/**
 * A listener's server, built but not listening yet: it either binds a socket of its own or adopts
 * the listening socket of the listener it replaces on the same address and port (listener-set.ts).
 */
export interface PreparedListener {
  /** `reusePort`: a worker of a group (proxy.workers) binds the port itself, the kernel spreads connections. */
  bind(reusePort: boolean): Promise<BoundListener>;
  /**
   * Takes over `from`'s listening socket, synchronously: the kernel's accept queue and the port stay
   * as they are, so no connection is refused or reset; `from` keeps the connections it has.
   */
  adopt(from: BoundListener): BoundListener;
  /** Never used: stops its certificate re-reads. */
  discard(): void;
}

type HttpishServer = NetServer & { closeIdleConnections?: () => void; closeAllConnections?: () => void };

/** Each bound listener's server, for a successor on the same address and port to adopt its socket. */
const servers = new WeakMap<BoundListener, HttpishServer>();

export function prepareListener(
  spec: ListenerSpec,
  handler: Handler,
  logger: Logger,
  network: string,
  /** Serves a request on the llhttp lane (plain listeners, http1Server "llhttp"), or declines. */
  fast?: FastHandler,
): PreparedListener {
  const sockets = new Set<Socket>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  };
  let server: HttpishServer;
  let lane: Lane | undefined;
  let stopReload: (() => void) | undefined;
  let update: ((spec: ListenerSpec) => void) | undefined;
  // From bind or adoption until the listener has closed (send-stall.ts).
  let stalls: SendStallWatch | undefined;
  // Set once a reload replaced this listener: every response then ends its connection, so a
  // client's next request opens a new one (to the successor), and no idle connection has to be
  // cut under a request the client is just sending.
  let retiring = false;
  const serve: Handler = (req, res) => {
    if (retiring) closeAfterResponse(req, res);
    handler(req, res);
  };
  const headersTimeout = spec.headersTimeoutMs ?? 60_000;
  const opts = {
    keepAliveTimeout: spec.keepAliveTimeoutMs ?? 65_000,
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
      server = createSecureServer({
        ...tls,
        allowHTTP1: true,
        // The same bounds as the HTTP/1.1 listeners: 16 KiB of headers (advertised here and
        // enforced by limitHttp2Headers, as nghttp2 does not), 128 pairs (a refused stream), and
        // a cap on parallel streams so one connection cannot hold thousands.
        maxHeaderListPairs: 128,
        settings: { enableConnectProtocol: false, maxHeaderListSize: 16 * 1024, maxConcurrentStreams: 128 },
        maxSessionMemory: 10,
      });
      servePipelined(server, limitHttp2Headers(serve));
      server.on("stream", (stream: ServerHttp2Stream) => stalls?.stream(stream));
      // A session with no stream activity for as long as an HTTP/1.1 keep-alive lasts is closed,
      // which also bounds a client that opens a session and never sends a request.
      server.on("session", (session: ServerHttp2Session) => {
        session.setTimeout(Math.max(headersTimeout, opts.keepAliveTimeout), () => session.close());
      });
    } else {
      server = createHttpsServer({ ...tls, ...opts });
      servePipelined(server, serve);
    }
    certs.attach(server as TlsServer);
    rejectMalformed(server);
    server.on("secureConnection", (s: Socket) => {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
    });
    server.on("tlsClientError", (e: Error) => logger.debug("TLS handshake failed", { network, error: e.message }));
  } else {
    const http = createHttpServer(opts);
    if (spec.forceHttpsPort) http.on("request", forceHttps(spec.forceHttpsPort));
    else servePipelined(http, serve);
    rejectMalformed(http);
    server = http;
    if (fast && spec.http1Server === "llhttp" && !spec.forceHttpsPort && laneAvailable()) {
      // The lane's server listens; node:http gets the connections the lane hands it.
      lane = createLane(
        http,
        {
          headersTimeoutMs: headersTimeout,
          keepAliveTimeoutMs: opts.keepAliveTimeout,
          highWaterMark: opts.highWaterMark,
        },
        // `retiring` as `serve` applies it to node:http's requests.
        (req, res) => fast.serve(req, res, retiring),
        () => fast.handedOff(),
      );
      const netServer = lane.server as HttpishServer;
      netServer.closeIdleConnections = () => {
        http.closeIdleConnections();
        lane!.closeIdle();
      };
      netServer.closeAllConnections = () => http.closeAllConnections();
      server = netServer;
    }
    server.on("connection", track);
  }

  // An error after listening (EMFILE on accept) must not become an uncaught exception.
  const logErrors = () =>
    server.on("error", (e: Error) => logger.error("listener error", { network, error: e.message }));

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

  /**
   * Stops accepting (unless a successor took the socket already) and waits for the connections:
   * busy ones get `graceMs`. `idleNow` (shutdown): idle keep-alive connections are closed at once
   * and as they become idle. Otherwise (a reload replaced it) they are left to the next response's
   * `Connection: close` (or an HTTP/2 GOAWAY) and only cut when the grace ends: cutting one at a
   * random moment can cut a request the client is just sending on it.
   */
  const stop = (graceMs: number, idleNow: boolean) =>
    new Promise<void>((resolveP) => {
      stopReload?.();
      retiring = true;
      const timer = setTimeout(() => {
        server.closeAllConnections?.();
        for (const s of sockets) s.destroy();
      }, graceMs);
      let sweep: NodeJS.Timeout | undefined;
      const closed = () => {
        clearTimeout(timer);
        clearInterval(sweep);
        stalls?.stop();
        // Ends http's connections-check timer too (skipped below for a reload): nothing is left to close.
        if (!idleNow) server.close();
        resolveP();
      };
      if (idleNow) {
        server.close(closed);
        // Connections that finish a request during the grace period must not linger idle.
        const idle = () => server.closeIdleConnections?.();
        idle();
        sweep = setInterval(idle, 50);
      } else {
        // net's close, not http's: http's closes the idle connections at once. And not now but in
        // the check phase, after the poll phase has accepted every connection it saw: a reload
        // commits within one I/O callback, and closing a listening socket resets the connections
        // still queued on it, including ones that arrived before the reload was asked for.
        setImmediate(() => NetServer.prototype.close.call(server, closed));
      }
      // HTTP/2 sessions: ask them to finish (GOAWAY); the timer cuts the rest.
      for (const s of sockets) (s as unknown as { session?: { close(): void } }).session?.close();
    });

  const finish = (): BoundListener => {
    const sendTimeoutMs = spec.sendTimeoutMs ?? 60_000;
    stalls = watchSendStalls(sockets, sendTimeoutMs, (what, remote) =>
      logger.warn(`the client took none of an answer for ${sendTimeoutMs} ms: ${what} closed`, { network, remote }),
    );
    const bound: BoundListener = {
      ...(spec.certPath ? { setTls } : {}),
      ...(update ? { updateCertificates: update } : {}),
      address: () => server.address() as AddressInfo | null,
      close: (graceMs) => stop(graceMs, true),
      retire: (graceMs) => stop(graceMs, false),
    };
    servers.set(bound, server);
    return bound;
  };

  return {
    bind: async (reusePort) => {
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
          logErrors();
          resolveP();
        });
      });
      return finish();
    },
    adopt: (from) => {
      const old = servers.get(from);
      if (!old?.listening) throw new Error(`network "${network}": the listener to take over is not listening`);
      // Node's listen(handle): "a server ... (anything with an underlying _handle member)". The
      // handle is the listening socket itself, so the port never closes and connections waiting in
      // its accept queue are accepted by this server from now on (onconnection follows the handle's
      // owner). SO_REUSEPORT would bind a second socket instead, and the kernel resets the
      // connections queued on the old one when it closes.
      server.listen(old);
      // The socket is ours now: the old server's close must not close it. (net keeps the listening
      // handle in `_handle`; with none, its close only waits for its connections.)
      (old as unknown as { _handle: unknown })._handle = null;
      logErrors();
      return finish();
    },
    discard: () => stopReload?.(),
  };
}
