/**
 * The webhook's TLS material: a self-signed CA and a serving certificate it signs, kept in one
 * Secret so that every operator replica serves the same certificate and a restart reuses it (a new
 * CA on every start would change the caBundle and break calls in flight to other replicas).
 *
 * node:crypto can sign but cannot build X.509 certificates; node-forge (pure JavaScript, no
 * dependencies) builds them. Keys are RSA 2048 from node:crypto; checks of stored certificates use
 * node:crypto's X509Certificate.
 */
import { X509Certificate, createPrivateKey, generateKeyPairSync, randomBytes } from "node:crypto";
import { isIP } from "node:net";
import forge from "node-forge";

export interface CertBundle {
  caPem: string;
  caKeyPem: string;
  certPem: string;
  keyPem: string;
}

/** Secret keys: kubernetes.io/tls plus the CA, as cert-manager lays them out. */
export const SECRET_KEYS = { cert: "tls.crt", key: "tls.key", ca: "ca.crt", caKey: "ca.key" } as const;

const DAY = 86_400_000;
export const CA_VALIDITY_DAYS = 3650;
export const SERVING_VALIDITY_DAYS = 365;
/** A serving certificate this close to expiry is re-issued (same CA, so the caBundle stays). */
export const SERVING_RENEW_BEFORE_DAYS = 90;
/** A CA this close to expiry is replaced, and the serving certificate with it. */
export const CA_RENEW_BEFORE_DAYS = 365;

export function rsaKeyPair(): {
  privatePem: string;
  publicKey: forge.pki.rsa.PublicKey;
  privateKey: forge.pki.rsa.PrivateKey;
} {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const privatePem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  const fPriv = forge.pki.privateKeyFromPem(privatePem);
  return { privatePem, privateKey: fPriv, publicKey: forge.pki.setRsaPublicKey(fPriv.n, fPriv.e) };
}

/** A positive serial: the top bit clear, or DER would read it as negative. */
export function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  return b.toString("hex");
}

export function validity(cert: forge.pki.Certificate, days: number, now: Date): void {
  // Back-dated so a node whose clock is a little behind ours still accepts it.
  cert.validity.notBefore = new Date(now.getTime() - 5 * 60_000);
  cert.validity.notAfter = new Date(now.getTime() + days * DAY);
}

export function createCa(commonName: string, now = new Date()): { caPem: string; caKeyPem: string } {
  return selfSignedCa(() => [{ name: "commonName", value: commonName }], CA_VALIDITY_DAYS, now);
}

/** A self-signed CA and its key; `subject` is given the serial, which a name may carry. */
export function selfSignedCa(
  subject: (serialNumber: string) => forge.pki.CertificateField[],
  days: number,
  now: Date,
): { caPem: string; caKeyPem: string } {
  const k = rsaKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = k.publicKey;
  cert.serialNumber = serial();
  validity(cert, days, now);
  const name = subject(cert.serialNumber);
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  cert.sign(k.privateKey, forge.md.sha256.create());
  return { caPem: forge.pki.certificateToPem(cert), caKeyPem: k.privatePem };
}

/** A serving certificate for `hosts` (DNS names or IP addresses), signed by the CA. */
export function issueServing(
  ca: { caPem: string; caKeyPem: string },
  hosts: readonly string[],
  now = new Date(),
): { certPem: string; keyPem: string } {
  const caCert = forge.pki.certificateFromPem(ca.caPem);
  const caKey = forge.pki.privateKeyFromPem(ca.caKeyPem);
  const k = rsaKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = k.publicKey;
  cert.serialNumber = serial();
  validity(cert, SERVING_VALIDITY_DAYS, now);
  cert.setSubject([{ name: "commonName", value: hosts[0] ?? "harmony-webhook" }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: "basicConstraints", cA: false, critical: true },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: true },
    // The API server (Go crypto/x509) matches names against SANs only, never the CN.
    {
      name: "subjectAltName",
      altNames: hosts.map((h) => (isIP(h) ? { type: 7, ip: h } : { type: 2, value: h })),
    },
    { name: "subjectKeyIdentifier" },
    { name: "authorityKeyIdentifier", keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: k.privatePem };
}

export function createBundle(hosts: readonly string[], now = new Date()): CertBundle {
  const ca = createCa("harmony-webhook-ca", now);
  return { ...ca, ...issueServing(ca, hosts, now) };
}

export type BundleVerdict = "ok" | "renew-serving" | "replace" | "external";

/**
 * Whether a stored bundle can be served as it is, needs only a new serving certificate, or must be
 * replaced whole. Anything unreadable, mismatched or expiring counts against it.
 *
 * "external": a certificate, key and CA without the CA's key is what cert-manager writes (a
 * Certificate whose secretName is this Secret). Someone else issues and renews it; the operator
 * serves it and publishes its ca.crt, and never overwrites it.
 */
export function assessBundle(b: Partial<CertBundle>, hosts: readonly string[], now = new Date()): BundleVerdict {
  if (!b.caKeyPem && b.caPem && b.certPem && b.keyPem) return "external";
  let ca: X509Certificate;
  try {
    if (!b.caPem || !b.caKeyPem) return "replace";
    ca = new X509Certificate(b.caPem);
    if (!ca.ca || !ca.checkPrivateKey(createPrivateKey(b.caKeyPem))) return "replace";
    if (Date.parse(ca.validTo) - now.getTime() < CA_RENEW_BEFORE_DAYS * DAY) return "replace";
  } catch {
    return "replace";
  }
  try {
    if (!b.certPem || !b.keyPem) return "renew-serving";
    const cert = new X509Certificate(b.certPem);
    if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return "renew-serving";
    if (!cert.checkPrivateKey(createPrivateKey(b.keyPem))) return "renew-serving";
    if (Date.parse(cert.validTo) - now.getTime() < SERVING_RENEW_BEFORE_DAYS * DAY) return "renew-serving";
    if (Date.parse(cert.validFrom) > now.getTime()) return "renew-serving";
    for (const h of hosts) {
      const covered = isIP(h) ? cert.checkIP(h) !== undefined : cert.checkHost(h, { wildcards: false }) !== undefined;
      if (!covered) return "renew-serving";
    }
  } catch {
    return "renew-serving";
  }
  return "ok";
}

/** Throws, saying what is wrong, when an externally issued bundle cannot be served at all. */
export function checkExternal(b: Partial<CertBundle>): void {
  const ca = new X509Certificate(b.caPem!);
  const cert = new X509Certificate(b.certPem!);
  if (!cert.checkPrivateKey(createPrivateKey(b.keyPem!))) throw new Error("tls.key does not match tls.crt");
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) throw new Error("tls.crt is not signed by ca.crt");
}
