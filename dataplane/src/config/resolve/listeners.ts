/**
 * `[harmony_networks.*]` and `[network.*]`: each network's HTTP listener (address, port, TLS pair
 * and SNI certificates, force_https, or the Harmony network identity it serves), the flags this
 * build accepts but does not act on, and the ports the listeners take.
 */
import { createSecureContext } from "node:tls";
import type { HarmonyConfig, HttpListener, NetworkSection } from "../schema.js";
import type { HarmonyNetwork } from "../../network/config.js";
import type { ListenerSpec } from "./model.js";
import type { BuildCtxFactory, Report } from "./report.js";
import { resolveSni } from "./sni.js";

export interface Listeners {
  /** `[harmony_networks.*]` that loaded. */
  harmonyNetworks: ReadonlyMap<string, HarmonyNetwork>;
  /** Every network by name; undefined where it has no HTTP listener. */
  networks: Map<string, ListenerSpec | undefined>;
  /** Ports taken so far and by what (`network "x"`); endpoints with listeners of their own join it. */
  bound: Map<number, string>;
}

export function resolveListeners(doc: HarmonyConfig, buildCtx: BuildCtxFactory, at: Report): Listeners {
  // Harmony networks first (identity, trust bundle, directory): listeners may serve their identity.
  const harmonyCtx = buildCtx("harmony_networks");
  const harmonyNetworks = harmonyCtx.harmonyNetworks();
  for (const p of harmonyCtx.harmonyNetworkProblems()) at(p.path, p.message);
  const networks = new Map<string, ListenerSpec | undefined>();
  const bound = new Map<number, string>();
  for (const [name, net] of Object.entries(doc.network ?? {})) {
    reportNetworkFlags(doc, name, net, at);
    const http = net.http;
    if (!http) {
      networks.set(name, undefined);
      continue;
    }
    const spec = httpListener(doc, name, http, buildCtx, at);
    if (net.harmony_network !== undefined)
      serveNetworkIdentity(spec, name, http, harmonyNetworks.get(net.harmony_network), at);
    if (spec.port !== 0) {
      const other = bound.get(spec.port);
      if (other) at(["network", name, "http", "bind_port"], `port ${spec.port} is already used by ${other}`);
      else bound.set(spec.port, `network "${name}"`);
    }
    networks.set(name, spec);
  }
  return { harmonyNetworks, networks, bound };
}

/** What a network asks for that this build does not do, and a harmony_network that is not defined. */
function reportNetworkFlags(doc: HarmonyConfig, name: string, net: NetworkSection, at: Report): void {
  if (net.enable_wireguard)
    at(["network", name, "enable_wireguard"], "WireGuard is not implemented; the flag is ignored", "warning");
  if (net.http3)
    at(
      ["network", name, "http3"],
      "HTTP/3 is not available in this build (Node has no QUIC); this listener is not started",
      "warning",
    );
  if (net.harmony_network !== undefined && !doc.harmony_networks?.[net.harmony_network])
    at(["network", name, "harmony_network"], `[harmony_networks.${net.harmony_network}] is not defined`);
}

/** `[network.X.http]` as written: plain, or HTTPS with its pair (and SNI pairs) read and checked now. */
function httpListener(
  doc: HarmonyConfig,
  name: string,
  http: HttpListener,
  buildCtx: BuildCtxFactory,
  at: Report,
): ListenerSpec {
  const spec: ListenerSpec = {
    address: http.bind_address ?? "0.0.0.0",
    port: http.bind_port ?? 8080,
    headersTimeoutMs: doc.proxy?.client_header_timeout_ms ?? 60_000,
    keepAliveTimeoutMs: doc.proxy?.client_keepalive_timeout_ms ?? 65_000,
    sendTimeoutMs: doc.proxy?.client_send_timeout_ms ?? 60_000,
  };
  if (http.cert_path || http.key_path) {
    if (!http.cert_path || !http.key_path) {
      at(["network", name, "http", http.cert_path ? "key_path" : "cert_path"], "cert_path and key_path go together");
    } else {
      const ctx = buildCtx(`network.${name}`);
      try {
        const pair = { cert: ctx.readFile(http.cert_path), key: ctx.readFile(http.key_path) };
        createSecureContext(pair);
        spec.certPath = ctx.resolvePath(http.cert_path);
        spec.keyPath = ctx.resolvePath(http.key_path);
        Object.assign(spec, pair);
        spec.http2 = http.http2 ?? true;
        spec.certReloadMs = http.cert_reload_ms ?? 5000;
        const sni = resolveSni(http.sni ?? [], ctx, (sub, m) => at(["network", name, "http", "sni", ...sub], m));
        if (sni.length) spec.sni = sni;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        at(
          ["network", name, "http", code === "ENOENT" ? "cert_path" : "key_path"],
          code === "ENOENT"
            ? `cannot read the certificate or key: ${(e as Error).message.replace(/^ENOENT: /, "")}`
            : `certificate and key are not usable together: ${(e as Error).message}`,
        );
      }
    }
    if (http.force_https)
      at(["network", name, "http", "force_https"], "redirects apply to plain listeners only", "warning");
  } else if (http.force_https) {
    spec.forceHttpsPort = http.https_port ?? 443;
  } else {
    // Only here: a TLS listener never uses it, so changing it must not rebind one.
    spec.http1Server = doc.proxy?.http1_server ?? "llhttp";
  }
  if (http.sni?.length && !(http.cert_path && http.key_path))
    at(["network", name, "http", "sni"], "needs cert_path and key_path: the certificate for names no entry matches");
  return spec;
}

/**
 * A listener of a Harmony network serves that network's identity certificate and verifies
 * clients against its trust bundle, whatever TLS settings `http` has.
 */
function serveNetworkIdentity(
  spec: ListenerSpec,
  name: string,
  http: HttpListener,
  hn: HarmonyNetwork | undefined,
  at: Report,
): void {
  if (http.cert_path || http.force_https)
    at(
      ["network", name, "http"],
      "cert_path, key_path and force_https are not used: the listener serves the network identity certificate",
      "warning",
    );
  delete spec.forceHttpsPort;
  delete spec.http1Server; // a TLS listener
  delete spec.sni; // one identity: the network's
  if (!hn) return; // its problem is reported on [harmony_networks.*] or on harmony_network
  spec.certPath = hn.certPath;
  spec.keyPath = hn.keyPath;
  // The network's identity comes from its own files (and setTls after each build), not http's.
  delete spec.cert;
  delete spec.key;
  // HTTP/1.1 only: peers are other gateways' keep-alive pools, and one protocol keeps the
  // per-connection identity check in one place.
  spec.http2 = false;
  // No polling of its own: the gateway hands it the material each config build validated.
  spec.certReloadMs = 0;
  spec.harmony = { network: hn.name, caPath: hn.bundlePath };
}
