/**
 * The network's X.509 material: a CA per network and one workload leaf per (gateway, network)
 * whose only identity is its URI SAN, `spiffe://<domain>/org/<org>/gateway/<gateway>` (the
 * contract: nothing else, no CN, ever sets identity). node-forge builds certificates (node:crypto
 * cannot); node:crypto's X509Certificate checks them.
 */
import { X509Certificate, createHash, createPrivateKey } from "node:crypto";
import forge from "node-forge";
import { rsaKeyPair, selfSignedCa, serial } from "../webhook/certs.js";

/** Leaves are valid from this long before their issue; renewal counts their life from the issue. */
const BACKDATE_MS = 5 * 60_000;

export interface CaPair {
  caPem: string;
  caKeyPem: string;
}
export interface Leaf {
  certPem: string;
  keyPem: string;
}

/** The identity a gateway of `org` holds in a network of `domain`. */
export const spiffeId = (domain: string, org: string, gateway: string) =>
  `spiffe://${domain}/org/${org}/gateway/${gateway}`;

/** sha256 of the certificate's DER, lower-case hex without colons: what a peering token pins. */
export const fingerprint = (pem: string) => createHash("sha256").update(new X509Certificate(pem).raw).digest("hex");

export function createNetworkCa(network: string, domain: string, days: number, now = new Date()): CaPair {
  // The serial in the name tells a rotation's old and new CA apart in a bundle.
  return selfSignedCa(
    (serialNumber) => [
      { name: "commonName", value: `harmony network ${network} CA ${serialNumber.slice(0, 8)}` },
      { name: "organizationName", value: domain },
    ],
    days,
    now,
  );
}

export function issueLeaf(ca: CaPair, uri: string, validitySeconds: number, now = new Date()): Leaf {
  const caCert = forge.pki.certificateFromPem(ca.caPem);
  const caKey = forge.pki.privateKeyFromPem(ca.caKeyPem);
  const k = rsaKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = k.publicKey;
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(now.getTime() - BACKDATE_MS); // a peer whose clock lags a little
  cert.validity.notAfter = new Date(now.getTime() + validitySeconds * 1000);
  cert.setSubject([]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: "basicConstraints", cA: false, critical: true },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    // Both: a gateway is the server for its peers' calls and the client of its own.
    { name: "extKeyUsage", serverAuth: true, clientAuth: true },
    // An empty subject makes the SAN critical (RFC 5280 4.2.1.6).
    { name: "subjectAltName", critical: true, altNames: [{ type: 6, value: uri }] },
    { name: "subjectKeyIdentifier" },
    { name: "authorityKeyIdentifier", keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  // The chain after the leaf, so a peer that trusts only the CA verifies it in one step.
  return { certPem: forge.pki.certificateToPem(cert) + ca.caPem, keyPem: k.privatePem };
}

/**
 * Whether a stored leaf still serves: signed by the current CA, exactly this URI SAN, its key,
 * and less than two thirds of its life gone (renewed well before expiry).
 */
export function leafIsCurrent(leaf: Partial<Leaf>, caPem: string, uri: string, now = new Date()): boolean {
  try {
    if (!leaf.certPem || !leaf.keyPem) return false;
    const cert = new X509Certificate(leaf.certPem);
    const ca = new X509Certificate(caPem);
    if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return false;
    if (cert.subjectAltName !== `URI:${uri}`) return false;
    if (!cert.checkPrivateKey(createPrivateKey(leaf.keyPem))) return false;
    return now.getTime() < leafRenewAt(leaf.certPem);
  } catch {
    return false;
  }
}

/** When a leaf needs renewing (two thirds of its life), for the requeue. */
export function leafRenewAt(certPem: string): number {
  const cert = new X509Certificate(certPem);
  const issued = Date.parse(cert.validFrom) + BACKDATE_MS;
  return issued + ((Date.parse(cert.validTo) - issued) * 2) / 3;
}
