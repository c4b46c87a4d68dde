/**
 * Workload identity of a Harmony network: a SPIFFE URI in a certificate's SAN,
 * `spiffe://<domain>/org/<org>/gateway/<gateway>`. Only a certificate that verified against the
 * network's trust bundle is ever read here, and only its URI SAN sets identity (no CN, no header).
 */
import { X509Certificate } from "node:crypto";
import type { DetailedPeerCertificate, PeerCertificate, TLSSocket } from "node:tls";
import { MAX_PRESENTED } from "./chain.js";
import { scopeRefusal, type TrustAnchor } from "./trust.js";

export interface Identity {
  uri: string;
  domain: string;
  org: string;
  gateway: string;
}

const DNS_LABEL = "[a-z0-9]([a-z0-9-]*[a-z0-9])?";
const SPIFFE = new RegExp(`^spiffe://([a-z0-9]([a-z0-9.-]*[a-z0-9])?)/org/(${DNS_LABEL})/gateway/(${DNS_LABEL})$`);

export function parseSpiffe(uri: string): Identity | undefined {
  const m = SPIFFE.exec(uri);
  if (!m) return undefined;
  return { uri, domain: m[1]!, org: m[3]!, gateway: m[5]! };
}

/**
 * The URI SANs of a certificate, from Node's `subjectaltname` string ("URI:spiffe://..., DNS:x").
 * Node quotes a value holding a comma or quote as a JSON string; such a value is never a valid
 * SPIFFE ID, so it is dropped rather than unquoted.
 */
export function uriSans(subjectAltName: string | undefined): string[] {
  if (!subjectAltName) return [];
  const out: string[] = [];
  for (const part of subjectAltName.split(", ")) {
    if (part.startsWith("URI:") && !part.startsWith('URI:"')) out.push(part.slice(4));
  }
  return out;
}

/**
 * The identity a certificate carries in `domains` (the network's own, or the trust domains its
 * bundle's CAs are bound to: network/trust.ts trustedDomains): exactly one SPIFFE URI SAN in one
 * of them (two would make "who is this" ambiguous, so that is no identity at all). Which CA may
 * speak for that domain and org is checked separately (peerScopeRefusal).
 */
export function identityOf(
  subjectAltName: string | undefined,
  domains: string | ReadonlySet<string>,
): Identity | undefined {
  const inDomain = typeof domains === "string" ? (d: string) => d === domains : (d: string) => domains.has(d);
  const ids = uriSans(subjectAltName)
    .map(parseSpiffe)
    .filter((i): i is Identity => i !== undefined && inDomain(i.domain));
  return ids.length === 1 ? ids[0] : undefined;
}

/**
 * How policies and the directory name the org of an identity: bare in the network's own domain,
 * `<domain>/<org>` in another (two hospitals may both have an org "radiology").
 */
export const orgKey = (id: { domain: string; org: string }, localDomain: string) =>
  id.domain === localDomain ? id.org : `${id.domain}/${id.org}`;

/**
 * The leaf and the certificates presented with it, as Node links them (getPeerCertificate(true):
 * each one's issuerCertificate, by name, from what the peer sent and then the trust store), at
 * most MAX_PRESENTED + 1 and each once (a self-signed root points at itself).
 */
export function presentedChain(
  cert: PeerCertificate | DetailedPeerCertificate | undefined,
): { leaf: X509Certificate; rest: X509Certificate[] } | undefined {
  if (!cert?.raw) return undefined;
  const seen = new Set<PeerCertificate>([cert]);
  const rest: X509Certificate[] = [];
  let c = (cert as Partial<DetailedPeerCertificate>).issuerCertificate;
  while (c?.raw && !seen.has(c) && rest.length < MAX_PRESENTED) {
    seen.add(c);
    rest.push(new X509Certificate(c.raw));
    c = c.issuerCertificate;
  }
  return { leaf: new X509Certificate(cert.raw), rest };
}

/** The identity of our own certificate (the first one of the PEM chain), for a check at load. */
export function ownIdentity(certPem: Buffer, domain: string): Identity | undefined {
  return identityOf(new X509Certificate(certPem).subjectAltName, domain);
}

const verified = new WeakMap<TLSSocket, { domains: ReadonlySet<string>; id: Identity | undefined }>();

/**
 * The verified peer identity of a TLS connection, read once per connection. Undefined when the
 * peer sent no certificate, it did not verify against the trust bundle, or it names no identity.
 */
export function peerIdentity(socket: TLSSocket, domains: ReadonlySet<string>): Identity | undefined {
  const cached = verified.get(socket);
  if (cached?.domains === domains) return cached.id;
  let id: Identity | undefined;
  if (socket.authorized) id = identityOf(socket.getPeerCertificate().subjectaltname, domains);
  verified.set(socket, { domains, id });
  return id;
}

const scoped = new WeakMap<TLSSocket, { anchors: readonly TrustAnchor[]; refusal: string | undefined }>();

/**
 * Undefined when the root CA the verified peer's certificate chains to (through the intermediates
 * it sent) may vouch for its domain and org (network/trust.ts); otherwise why not. Read once per
 * connection and trust bundle: a reload that changes the bundle is applied to the next request on
 * a connection already open. `domain` is the network's own.
 */
export function peerScopeRefusal(
  socket: TLSSocket,
  anchors: readonly TrustAnchor[],
  peer: Identity,
  domain: string,
): string | undefined {
  const cached = scoped.get(socket);
  if (cached?.anchors === anchors) return cached.refusal;
  const chain = presentedChain(socket.getPeerCertificate(true));
  const refusal = chain ? scopeRefusal(anchors, chain.leaf, chain.rest, peer, domain) : "it sent no certificate";
  scoped.set(socket, { anchors, refusal });
  return refusal;
}
