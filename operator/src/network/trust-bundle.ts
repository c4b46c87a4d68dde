/**
 * The trust bundle member gateways load (`ca.crt`), with each CA bound to the orgs it may vouch
 * for: `Harmony-Orgs: a, b` before its PEM block (the data plane's network/trust.ts reads it and
 * refuses a peer whose root CA may not speak for the org its certificate names). The local CA
 * (all of a rotation's CAs) vouches for the network's local member orgs; a peer cluster's CA only
 * for the orgs its signed export names, in the peer's own trust domain (`<domain>/<org>` when
 * that is not ours), and only for those no one claimed first (orgClaims).
 */
import { X509Certificate } from "node:crypto";
import type { PeerImport } from "./directory.js";

const BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Every certificate of `pem`, re-encoded from its DER, each after the line naming `orgs`. Only the
 * certificates are kept: text a peer put in its bundle (a `Harmony-Orgs:` line of its own choosing)
 * never reaches a gateway. A block that is no certificate is dropped.
 */
export function scopedPem(pem: string, orgs: readonly string[]): string {
  let out = "";
  for (const [block] of pem.matchAll(BLOCK)) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(block);
    } catch {
      continue;
    }
    out += `Harmony-Orgs: ${[...orgs].join(", ")}\n${cert.toString().trim()}\n`;
  }
  return out;
}

/** An org a peer's export names that is already held: by the local network, or a peer imported earlier. */
export interface OrgConflict {
  /** As policies name it: bare in our domain, else `<domain>/<org>`. */
  org: string;
  /** "local", or the peer that holds it. */
  heldBy: string;
  /** The peer whose claim was dropped. */
  peer: string;
}

export interface OrgClaims {
  /** Per peer, the orgs its CA may vouch for (and whose entries enter the directory), as rendered. */
  byPeer: Map<string, string[]>;
  conflicts: OrgConflict[];
}

export const LOCAL = "local";

/**
 * Who may vouch for which org. An org is `<domain>/<org>`: the same name in two trust domains is
 * two orgs. Local orgs are ours; then each peer, in `imports` order (first imported first), gets
 * the orgs its export names (orgs and entries, all in its export's domain) that nobody holds yet.
 * A later claim on a held org is dropped and reported: first come keeps it, so adding a peering
 * token (or a peer re-exporting) can never take an org away from a peer that already serves it.
 */
export function orgClaims(domain: string, localOrgs: readonly string[], imports: readonly PeerImport[]): OrgClaims {
  const holder = new Map<string, string>(localOrgs.map((o) => [`${domain}/${o}`, LOCAL]));
  const byPeer = new Map<string, string[]>();
  const conflicts: OrgConflict[] = [];
  for (const imp of imports) {
    const named = [...new Set([...(imp.orgs ?? []), ...imp.entries.map((e) => e.org)])].sort();
    const held: string[] = [];
    for (const org of named) {
      const key = `${imp.domain}/${org}`;
      const shown = imp.domain === domain ? org : key;
      const h = holder.get(key);
      if (h === undefined || h === imp.peer) {
        holder.set(key, imp.peer);
        held.push(shown);
      } else conflicts.push({ org: shown, heldBy: h, peer: imp.peer });
    }
    byPeer.set(imp.peer, held);
  }
  return { byPeer, conflicts };
}

/** What a conflict says in status: the org and both claimants. */
export const describeConflict = (c: OrgConflict) =>
  `org ${c.org} is claimed by peer ${c.peer} but held by ${c.heldBy === LOCAL ? "this cluster" : `peer ${c.heldBy} (imported first)`}: ` +
  `peer ${c.peer}'s CA may not vouch for it and its entries of that org are not imported`;

/** ca.crt: the local CAs for the local orgs, then each peer's CAs for the orgs it holds (`imports` order). */
export function trustBundle(
  localPem: string,
  localOrgs: readonly string[],
  imports: readonly PeerImport[],
  claims: OrgClaims,
): string {
  return (
    scopedPem(localPem, localOrgs) +
    imports.map((i) => scopedPem(i.trustBundlePem, claims.byPeer.get(i.peer) ?? [])).join("")
  );
}
