/**
 * How the llhttp engine opens a socket to its upstream: plain TCP for http://, TLS for https://.
 *
 * The TLS settings are the very object upstream-set.ts gives undici's Pool as `connect` (CA, client
 * certificate and key, servername, rejectUnauthorized, a peer gateway's checkServerIdentity), and
 * they are applied the way undici's connector (lib/core/connect.js) applies them, so that both
 * engines trust, name and present the same things: the servername defaults to the URL's host name
 * unless that is an IP address (no SNI then), ALPN offers http/1.1 only (this engine speaks nothing
 * else), and the last TLS session is offered again on the next connection (resumption, as undici's
 * session cache does for one origin).
 */
import { connect as netConnect, isIP, type Socket } from "node:net";
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from "node:tls";

/** Where a plain TCP socket's reads go (net's `onread`: the connection's own buffer, read-buffer.ts). */
export interface ReadInto {
  buffer: () => Buffer;
  callback: (n: number, buf: Buffer) => boolean;
}

/**
 * Opens a socket; `ready` runs once it can carry a request (after the handshake, for TLS). With
 * `into`, a plain TCP socket's reads go there and it emits no 'data' (`readsInto`); a TLS socket
 * decrypts into buffers of its own and emits 'data' as usual.
 */
export type Connect = (ready: () => void, into?: ReadInto) => { socket: Socket; readsInto: boolean };

/**
 * undici's `connect` options: tls.connect's, plus `timeout` (the pool times the connect itself, so
 * it is not passed on: on a socket it would mean an idle timeout) and whatever else the caller
 * keeps there for its own use (a peer gateway's expected identity), which tls.connect ignores.
 */
export type ConnectOptions = ConnectionOptions & { timeout?: number; [extra: string]: unknown };

/** The connect function for `origin`; `options` only matter for https://. */
export function connector(origin: URL, options: ConnectOptions = {}): Connect {
  const host = origin.hostname.replace(/^\[(.*)\]$/, "$1");
  if (origin.protocol !== "https:") {
    const port = Number(origin.port || 80);
    return (ready, into) => ({
      socket: netConnect({ host, port, noDelay: true, ...(into ? { onread: into } : {}) }).once("connect", ready),
      readsInto: !!into,
    });
  }
  const port = Number(origin.port || 443);
  const { timeout: _timeout, ...tls } = options;
  // undici: `servername || util.getServerName(host) || null`, the latter '' for an IP address.
  const servername = tls.servername || (isIP(host) ? null : host);
  let session: Buffer | undefined;
  return (ready) => {
    const opts: ConnectionOptions & { highWaterMark: number } = {
      highWaterMark: 16384, // a TLS record is at most 16 KiB anyway (undici's setting)
      ...tls,
      servername: servername ?? undefined,
      session,
      ALPNProtocols: ["http/1.1"],
      port,
      host,
    };
    const socket: TLSSocket = tlsConnect(opts);
    socket.on("session", (s: Buffer) => (session = s));
    socket.setNoDelay(true);
    return { socket: socket.once("secureConnect", ready), readsInto: false };
  };
}
