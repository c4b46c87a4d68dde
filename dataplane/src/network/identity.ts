/**
 * Workload identity of a Harmony network: a SPIFFE URI in a certificate's SAN,
 * `spiffe://<domain>/org/<org>/gateway/<gateway>`. Only a certificate that verified against the
 * network's trust bundle is ever read here, and only its URI SAN sets identity (no CN, no header).
 */
import { X509Certificate } from "node:crypto";
import type { TLSSocket } from "node:tls";
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
 * The identity a certificate carries for `domain`: exactly one SPIFFE URI SAN in that domain
 * (two would make "who is this" ambiguous, so that is no identity at all).
 */
export function identityOf(subjectAltName: string | undefined, domain: string): Identity | undefined {
  const ids = uriSans(subjectAltName)
    .map(parseSpiffe)
    .filter((i): i is Identity => i !== undefined && i.domain === domain);
  return ids.length === 1 ? ids[0] : undefined;
}

/** The identity of our own certificate (the first one of the PEM chain), for a check at load. */
export function ownIdentity(certPem: Buffer, domain: string): Identity | undefined {
  return identityOf(new X509Certificate(certPem).subjectAltName, domain);
}

const verified = new WeakMap<TLSSocket, Identity | null>();

/**
 * The verified peer identity of a TLS connection, read once per connection. Undefined when the
 * peer sent no certificate, it did not verify against the trust bundle, or it names no identity.
 */
export function peerIdentity(socket: TLSSocket, domain: string): Identity | undefined {
  const cached = verified.get(socket);
  if (cached !== undefined) return cached ?? undefined;
  let id: Identity | undefined;
  if (socket.authorized) id = identityOf(socket.getPeerCertificate().subjectaltname, domain);
  verified.set(socket, id ?? null);
  return id;
}

const scoped = new WeakMap<TLSSocket, { anchors: readonly TrustAnchor[]; refusal: string | undefined }>();

/**
 * Undefined when the CA that issued the verified peer's certificate may vouch for its org
 * (network/trust.ts); otherwise why not. Read once per connection and trust bundle: a reload that
 * changes the bundle is applied to the next request on a connection already open.
 */
export function peerScopeRefusal(
  socket: TLSSocket,
  anchors: readonly TrustAnchor[],
  peer: Identity,
): string | undefined {
  const cached = scoped.get(socket);
  if (cached?.anchors === anchors) return cached.refusal;
  const raw = socket.getPeerCertificate().raw;
  const refusal = raw ? scopeRefusal(anchors, new X509Certificate(raw), peer.org) : "it sent no certificate";
  scoped.set(socket, { anchors, refusal });
  return refusal;
}
