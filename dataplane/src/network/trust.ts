/**
 * Per-CA trust scope of a Harmony network's trust bundle. The bundle holds the local network CA and
 * every federated peer's CA; TLS verifies a chain against all of them, which says only "some CA of
 * the bundle signed this". Which orgs a CA may vouch for is written before its PEM block as
 * explanatory text (RFC 7468 allows text outside the encapsulation boundaries; OpenSSL skips it):
 *
 *   Harmony-Orgs: org-a, org-b
 *   -----BEGIN CERTIFICATE-----
 *
 * The operator writes it for every CA (the local CA: the network's local orgs; a peer's CA: the
 * orgs its signed export names). `Harmony-Orgs:` with nothing after it vouches for no org; a CA
 * without the line vouches for any org of the network, and a bundle with no such line at all (a
 * hand-written one) is not scoped. Without
 * this, a peer cluster's CA could issue a certificate naming one of our orgs, or a third peer's,
 * and be accepted as that org.
 */
import { X509Certificate } from "node:crypto";

export interface TrustAnchor {
  cert: X509Certificate;
  /** Orgs it may vouch for; undefined: any (no Harmony-Orgs line). */
  orgs: ReadonlySet<string> | undefined;
}

const BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const ORGS_LINE = /^Harmony-Orgs:[ \t]*(.*)$/;

/** Parses a bundle into its anchors; throws (X509Certificate's error) on a block that is no certificate. */
export function parseTrustBundle(pem: string): TrustAnchor[] {
  const out: TrustAnchor[] = [];
  let last = 0;
  for (const m of pem.matchAll(BLOCK)) {
    // Only the text since the previous block belongs to this one: a line never carries over.
    const before = pem.slice(last, m.index).split(/\r?\n/);
    last = m.index + m[0].length;
    let orgs: Set<string> | undefined;
    for (const line of before) {
      const o = ORGS_LINE.exec(line.trim());
      if (o) orgs = new Set(o[1]!.split(/[\s,]+/).filter(Boolean));
    }
    out.push({ cert: new X509Certificate(m[0]), orgs });
  }
  return out;
}

/**
 * Undefined when a CA of the bundle that signed `leaf` may vouch for `org`; otherwise why not, for
 * the refusal and its log line. The issuer is found by signature (not by name: a peer chooses its
 * CA's subject, and may copy ours), so a leaf must be issued directly by a CA of the bundle, as the
 * operator's are. Two anchors with one key are read together: an org either may vouch for is allowed.
 */
export function scopeRefusal(anchors: readonly TrustAnchor[], leaf: X509Certificate, org: string): string | undefined {
  // A bundle without any scope (hand-written) is not checked here: TLS verified the chain, which
  // may run through intermediates this direct-issuer lookup would not follow.
  if (anchors.every((a) => a.orgs === undefined)) return undefined;
  const issuers = anchors.filter((a) => leaf.checkIssued(a.cert) && safeVerify(leaf, a.cert));
  if (!issuers.length) return "its certificate was not issued by a CA of the trust bundle";
  if (issuers.some((a) => a.orgs === undefined || a.orgs.has(org))) return undefined;
  const allowed = [...new Set(issuers.flatMap((a) => [...a.orgs!]))].sort();
  const ca = issuers[0]!.cert.fingerprint256.replace(/:/g, "").slice(0, 16).toLowerCase();
  return (
    `its issuing CA ${ca}… may not vouch for org "${org}": ` +
    (allowed.length ? `it vouches only for ${allowed.join(", ")}` : "it vouches for no org")
  );
}

function safeVerify(leaf: X509Certificate, ca: X509Certificate): boolean {
  try {
    return leaf.verify(ca.publicKey);
  } catch {
    return false;
  }
}
