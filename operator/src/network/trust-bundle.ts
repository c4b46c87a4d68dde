/**
 * The trust bundle member gateways load (`ca.crt`), with each CA bound to the orgs it may vouch
 * for: `Harmony-Orgs: a, b` before its PEM block (the data plane's network/trust.ts reads it and
 * refuses a peer whose issuing CA may not speak for the org its certificate names). The local CA
 * (all of a rotation's CAs) vouches for the network's local member orgs; a peer cluster's CA only
 * for the orgs its signed export names, never for a local org.
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

/** The orgs a peer's CA may vouch for: those its export names (orgs and entries), minus local ones. */
export function peerOrgs(imp: PeerImport, localOrgs: readonly string[]): string[] {
  const local = new Set(localOrgs);
  const named = new Set([...(imp.orgs ?? []), ...imp.entries.map((e) => e.org)]);
  return [...named].filter((o) => !local.has(o)).sort();
}

/** ca.crt: the local CAs for the local orgs, then each peer's CAs for its orgs (peers in name order). */
export function trustBundle(localPem: string, localOrgs: readonly string[], imports: readonly PeerImport[]): string {
  return (
    scopedPem(localPem, localOrgs) + imports.map((i) => scopedPem(i.trustBundlePem, peerOrgs(i, localOrgs))).join("")
  );
}
