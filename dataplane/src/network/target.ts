/**
 * `target = "harmony://<domain>/<org>/<endpoint>"` on a backend: resolved through the directory of
 * the network with that domain to the serving gateway's address, port and path prefix, reached
 * with mutual TLS (our identity certificate; the server must present exactly the entry's SPIFFE
 * identity). Resolved at each config build, so a directory change re-resolves without a restart.
 */
import type { PeerCertificate } from "node:tls";
import type { HarmonyNetwork } from "./config.js";
import { networkForUri } from "./config.js";
import type { DirectoryEntry } from "./directory.js";
import { identityOf, presentedChain } from "./identity.js";
import { scopeRefusal } from "./trust.js";

export const isHarmonyUri = (s: string | undefined): boolean => s?.startsWith("harmony://") ?? false;

/** TLS settings of a connection to a peer gateway. */
export interface PeerTls {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
  /** The SPIFFE URI the server must present. */
  identity: string;
  checkServerIdentity: (host: string, cert: PeerCertificate) => Error | undefined;
}

export type Resolution =
  | { ok: true; network: HarmonyNetwork; entry: DirectoryEntry; tls: PeerTls }
  | { ok: false; error: string; noNetwork?: boolean };

export function resolveHarmonyUri(networks: ReadonlyMap<string, HarmonyNetwork>, uri: string): Resolution {
  const network = networkForUri(networks, uri);
  if (!network)
    return { ok: false, noNetwork: true, error: `no harmony network has the domain of ${uri}, nor federates with it` };
  const entry = network.directory.byUri.get(uri);
  if (!entry) return { ok: false, error: `${uri} is not in the directory of network ${network.name}` };
  const want = entry.identity;
  return {
    ok: true,
    network,
    entry,
    tls: {
      cert: network.cert,
      key: network.key,
      ca: network.ca,
      identity: want,
      // Replaces the host name check: peers are addressed by IP and named by SPIFFE URI.
      checkServerIdentity: (_host, cert) => {
        const got = identityOf(cert.subjectaltname, network.domains);
        if (got?.uri !== want)
          return new Error(`peer gateway presented ${got?.uri ?? "no identity"}, expected ${want}`);
        // The right name from a CA that may not speak for its org (a peer cluster's CA naming one
        // of ours) is an impostor, as the listener side refuses it too (guard.ts).
        // Node passes the detailed certificate here: the chain the server sent (its intermediates).
        const chain = presentedChain(cert);
        const outOfScope = chain
          ? scopeRefusal(network.trust, chain.leaf, chain.rest, got, network.domain)
          : "it sent no certificate";
        return outOfScope ? new Error(`peer gateway ${want} refused: ${outOfScope}`) : undefined;
      },
    },
  };
}

/** `https://address:port/path_prefix` of an HTTP-carried entry (IPv6 literals bracketed). */
export function entryBaseUrl(e: DirectoryEntry): string {
  const host = e.address.includes(":") ? `[${e.address}]` : e.address;
  return `https://${host}:${e.port}${(e.path_prefix ?? "").replace(/\/+$/, "")}`;
}
