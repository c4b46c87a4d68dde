/**
 * Per-CA trust scope of a Harmony network's trust bundle. The bundle holds the local network CA and
 * every federated peer's CA; TLS verifies a chain against all of them, which says only "some CA of
 * the bundle signed this". Which orgs a CA may vouch for is written before its PEM block as
 * explanatory text (RFC 7468 allows text outside the encapsulation boundaries; OpenSSL skips it):
 *
 *   Harmony-Orgs: org-a, org-b, hospital-b.example/radiology
 *   -----BEGIN CERTIFICATE-----
 *
 * A bare org is one of the network's own domain; `<domain>/<org>` is an org of another trust
 * domain (a federated peer network). The operator writes the line for every CA (the local CA: the
 * network's local orgs; a peer's CA: the orgs its signed export names, in the peer's domain).
 * `Harmony-Orgs:` with nothing after it vouches for no org; a CA without the line vouches for any
 * org of the network's own domain, and a bundle with no such line at all (a hand-written one) is
 * not scoped. Without this, a peer cluster's CA could issue a certificate naming one of our orgs,
 * another domain's, or a third peer's, and be accepted as that org.
 */
import { X509Certificate } from "node:crypto";
import { chainRoots } from "./chain.js";

export interface TrustAnchor {
  cert: X509Certificate;
  /** Orgs it may vouch for, as `<domain>/<org>`; undefined: any org of the network's domain. */
  orgs: ReadonlySet<string> | undefined;
}

const BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const ORGS_LINE = /^Harmony-Orgs:[ \t]*(.*)$/;

/** `<domain>/<org>`: a bare org is one of `domain`. */
export const qualify = (org: string, domain: string) => (org.includes("/") ? org : `${domain}/${org}`);
/** How an org is named to people (and in policies): bare in `domain`, qualified elsewhere. */
export const displayOrg = (key: string, domain: string) =>
  key.startsWith(`${domain}/`) ? key.slice(domain.length + 1) : key;

/**
 * Parses a bundle into its anchors; throws (X509Certificate's error) on a block that is no
 * certificate. `domain` is the network's own: bare orgs of a Harmony-Orgs line are in it.
 */
export function parseTrustBundle(pem: string, domain: string): TrustAnchor[] {
  const out: TrustAnchor[] = [];
  let last = 0;
  for (const m of pem.matchAll(BLOCK)) {
    // Only the text since the previous block belongs to this one: a line never carries over.
    const before = pem.slice(last, m.index).split(/\r?\n/);
    last = m.index + m[0].length;
    let orgs: Set<string> | undefined;
    for (const line of before) {
      const o = ORGS_LINE.exec(line.trim());
      if (o)
        orgs = new Set(
          o[1]!
            .split(/[\s,]+/)
            .filter(Boolean)
            .map((x) => qualify(x, domain)),
        );
    }
    out.push({ cert: new X509Certificate(m[0]), orgs });
  }
  return out;
}

/**
 * The trust domains a peer identity may be read in: the network's own, and every domain a CA of
 * the bundle is bound to by its Harmony-Orgs line. A SPIFFE ID in any other domain names nobody.
 */
export function trustedDomains(anchors: readonly TrustAnchor[], domain: string): Set<string> {
  const out = new Set([domain]);
  for (const a of anchors) for (const k of a.orgs ?? []) out.add(k.slice(0, k.indexOf("/")));
  return out;
}

/**
 * Undefined when a root of the bundle that `leaf` chains to (through the intermediates the peer
 * presented, network/chain.ts) may vouch for the org `id` names in its domain; otherwise why not,
 * for the refusal and its log line. The root is found by signature, not by name (a peer chooses
 * its CA's subject, and may copy ours). Two roots reached are read together: an org either may
 * vouch for is allowed. `domain` is the network's own.
 */
export function scopeRefusal(
  anchors: readonly TrustAnchor[],
  leaf: X509Certificate,
  presented: readonly X509Certificate[],
  id: { domain: string; org: string },
  domain: string,
): string | undefined {
  // A bundle without any scope (hand-written) is not checked here: TLS verified the chain, and
  // identities are read in the network's own domain only (trustedDomains).
  if (anchors.every((a) => a.orgs === undefined)) return undefined;
  const roots = chainRoots(leaf, presented, anchors);
  if (typeof roots === "string") return roots;
  const key = `${id.domain}/${id.org}`;
  if (roots.some((a) => (a.orgs === undefined ? id.domain === domain : a.orgs.has(key)))) return undefined;
  const allowed = [...new Set(roots.flatMap((a) => (a.orgs ? [...a.orgs] : [`${domain}/*`])))]
    .map((k) => displayOrg(k, domain))
    .sort();
  const ca = roots[0]!.cert.fingerprint256.replace(/:/g, "").slice(0, 16).toLowerCase();
  return (
    `its issuing CA ${ca}… may not vouch for org "${displayOrg(key, domain)}": ` +
    (allowed.length ? `it vouches only for ${allowed.join(", ")}` : "it vouches for no org")
  );
}
