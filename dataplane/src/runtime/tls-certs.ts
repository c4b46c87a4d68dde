/**
 * The certificates of one TLS listener: the default pair (and trust bundle of an inter-gateway
 * listener), the SNI pairs, the re-read of their files on rotation, and a reload's new set taken
 * in place. A reload that changes only certificates (a Gateway's Secret arriving, a listener with a
 * hostname and its SNI pair added) therefore never closes the port: no refused connection, open
 * connections carry on.
 *
 * The pairs start as the config build read them (ListenerSpec.cert/key): with the Kubernetes API as
 * the source that is the API's revision, which the kubelet's mount of the same Secret follows only
 * up to a minute later. Reading the mount instead left a new HTTPS listener unbound until a later
 * reload (the Gateway API conformance flake).
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { SecureContext, Server as TlsServer } from "node:tls";
import type { Logger } from "winston";
import type { ListenerSpec } from "../config/resolve.js";
import { sniSelector, type SniSelector } from "./sni.js";

type Pair = { cert: Buffer; key: Buffer; ca?: Buffer };
type SniCallback = (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void;

export interface ListenerCerts {
  /** For the server's constructor: the default pair, and an SNI callback that follows update(). */
  options: Pair & { SNICallback: SniCallback };
  /** The server, once created: rotations and updates swap its default context. */
  attach: (server: TlsServer) => void;
  /** A reload's certificate settings (paths, pairs, SNI list, re-read interval), in place. */
  update: (spec: ListenerSpec) => void;
  /** Stops re-reading files. */
  stop: () => void;
}

/** The settings update() takes: a listener whose other settings are unchanged keeps its server. */
export function certificateKey(spec: ListenerSpec): string {
  const h = createHash("sha256");
  const add = (v: string | Buffer | undefined) => h.update(v ?? "").update("\0");
  add(spec.certPath);
  add(spec.keyPath);
  add(spec.cert);
  add(spec.key);
  add(String(spec.certReloadMs ?? ""));
  for (const e of spec.sni ?? []) for (const v of [e.hostname, e.certPath, e.keyPath, e.cert, e.key]) add(v);
  return h.digest("hex");
}

export function listenerCerts(first: ListenerSpec, logger: Logger, network: string): ListenerCerts {
  // An inter-gateway listener's bundle: part of its identity (ListenerSet rebinds when it changes).
  const caPath = first.harmony?.caPath;
  const fromDisk = (s: ListenerSpec): Pair => ({
    cert: readFileSync(s.certPath!),
    key: readFileSync(s.keyPath!),
    ...(caPath ? { ca: readFileSync(caPath) } : {}),
  });
  const fromBuild = (s: ListenerSpec): Pair =>
    s.cert && s.key ? { cert: s.cert, key: s.key, ...(caPath ? { ca: readFileSync(caPath) } : {}) } : fromDisk(s);
  const digestOfFiles = (s: ListenerSpec) => {
    try {
      const h = createHash("sha256").update(readFileSync(s.certPath!)).update(readFileSync(s.keyPath!));
      if (caPath) h.update(readFileSync(caPath));
      return h.digest("hex");
    } catch {
      return "unreadable";
    }
  };

  let server: TlsServer | undefined;
  let sni: SniSelector | undefined;
  let timers: NodeJS.Timeout[] = [];
  const stop = () => {
    for (const t of timers) clearInterval(t);
    timers = [];
  };
  const every = (ms: number, fn: () => void) => {
    const t = setInterval(fn, ms);
    t.unref();
    timers.push(t);
  };
  const setContext = (pair: Pair) =>
    (server as unknown as { setSecureContext(o: object): void }).setSecureContext({ ...pair, minVersion: "TLSv1.2" });

  const selectorFor = (s: ListenerSpec) => (s.sni?.length ? sniSelector(s.sni, logger, network) : undefined);
  /** Serves `s`'s SNI pairs and re-reads its files every certReloadMs (0: never, the gateway hands them over). */
  const start = (s: ListenerSpec, selector: SniSelector | undefined) => {
    sni = selector;
    if (!s.certReloadMs) return;
    if (selector) every(s.certReloadMs, () => selector.reload());
    let seen = digestOfFiles(s);
    every(s.certReloadMs, () => {
      const now = digestOfFiles(s);
      if (now === seen) return;
      seen = now;
      try {
        setContext(fromDisk(s));
        logger.info("TLS certificate reloaded", { network, cert: s.certPath });
      } catch (e) {
        logger.error("TLS certificate not reloaded; the previous one stays in use", {
          network,
          cert: s.certPath,
          error: (e as Error).message,
        });
      }
    });
  };

  const options = {
    ...fromBuild(first),
    // Always set, so SNI pairs added by a reload need no new server; no match: the default pair.
    SNICallback: (name: string, cb: (err: Error | null, ctx?: SecureContext) => void) =>
      sni ? sni.SNICallback(name, cb) : cb(null, undefined),
  };
  start(first, selectorFor(first));
  return {
    options,
    attach: (s) => (server = s),
    update: (spec) => {
      // The build checked every pair; should one fail here anyway, it throws with the old set in use.
      const pair = fromBuild(spec);
      const selector = selectorFor(spec);
      setContext(pair);
      stop();
      start(spec, selector);
      logger.info("TLS certificates updated in place", { network, cert: spec.certPath, sni: spec.sni?.length ?? 0 });
    },
    stop,
  };
}
