/**
 * Certificates for Harmony network tests: network CAs and gateway leaves whose URI SAN is a SPIFFE
 * ID (spiffe://<domain>/org/<org>/gateway/<name>), as the operator issues them. node-forge builds
 * the X.509 (node:crypto cannot); keys are RSA 2048 from node:crypto.
 */
import { generateKeyPairSync, randomBytes } from "node:crypto";
import forge from "node-forge";

export interface Ca {
  certPem: string;
  keyPem: string;
}

export interface Leaf {
  certPem: string;
  keyPem: string;
}

function keyPair(): { pem: string; pub: forge.pki.rsa.PublicKey; priv: forge.pki.rsa.PrivateKey } {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  const priv = forge.pki.privateKeyFromPem(pem);
  return { pem, priv, pub: forge.pki.setRsaPublicKey(priv.n, priv.e) };
}

function base(pub: forge.pki.rsa.PublicKey, cn: string): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = pub;
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  cert.serialNumber = b.toString("hex");
  cert.validity.notBefore = new Date(Date.now() - 5 * 60_000);
  cert.validity.notAfter = new Date(Date.now() + 86_400_000);
  cert.setSubject([{ name: "commonName", value: cn }]);
  return cert;
}

export function createCa(cn: string, opts: { pathLen?: number } = {}): Ca {
  const k = keyPair();
  const cert = base(k.pub, cn);
  cert.setIssuer(cert.subject.attributes);
  cert.setExtensions([
    {
      name: "basicConstraints",
      cA: true,
      ...(opts.pathLen !== undefined ? { pathLenConstraint: opts.pathLen } : {}),
      critical: true,
    },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  cert.sign(k.priv, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: k.pem };
}

/** A gateway leaf with these URI SANs (usually one SPIFFE ID), for both TLS server and client use. */
export function issueLeaf(ca: Ca, uris: string[], cn = "gateway"): Leaf {
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const caKey = forge.pki.privateKeyFromPem(ca.keyPem);
  const k = keyPair();
  const cert = base(k.pub, cn);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: "basicConstraints", cA: false, critical: true },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: true, clientAuth: true },
    { name: "subjectAltName", altNames: uris.map((value) => ({ type: 6, value })) },
    { name: "authorityKeyIdentifier", keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: k.pem };
}

/**
 * An intermediate CA signed by `parent` (a root or another intermediate). `ca: false` makes a
 * certificate that is no CA (CA:false) but can still sign, for "leaf signed by a non-CA" attacks.
 */
export function createIntermediate(parent: Ca, cn: string, opts: { pathLen?: number; ca?: boolean } = {}): Ca {
  const pCert = forge.pki.certificateFromPem(parent.certPem);
  const pKey = forge.pki.privateKeyFromPem(parent.keyPem);
  const k = keyPair();
  const cert = base(k.pub, cn);
  cert.setIssuer(pCert.subject.attributes);
  cert.setExtensions([
    {
      name: "basicConstraints",
      cA: opts.ca ?? true,
      ...(opts.pathLen !== undefined ? { pathLenConstraint: opts.pathLen } : {}),
      critical: true,
    },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: "subjectKeyIdentifier" },
    { name: "authorityKeyIdentifier", keyIdentifier: pCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(pKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: k.pem };
}

/** A chain of `n` intermediates below `root`, the last first (what a TLS peer sends after its leaf). */
export function intermediates(root: Ca, n: number, prefix = "intermediate"): { issuer: Ca; chainPem: string } {
  let issuer = root;
  const pems: string[] = [];
  for (let i = 1; i <= n; i++) {
    issuer = createIntermediate(issuer, `${prefix} ${i}`);
    pems.unshift(issuer.certPem);
  }
  return { issuer, chainPem: pems.join("") };
}

/** Two CAs that issued each other (X's issuer is Y, Y's is X): a loop for a path builder. */
export function createLoop(): [Ca, Ca] {
  const kx = keyPair();
  const ky = keyPair();
  const make = (k: typeof kx, cn: string, issuerCn: string, signer: typeof kx) => {
    const cert = base(k.pub, cn);
    cert.setIssuer([{ name: "commonName", value: issuerCn }]);
    cert.setExtensions([
      { name: "basicConstraints", cA: true, critical: true },
      { name: "keyUsage", keyCertSign: true, digitalSignature: true, critical: true },
    ]);
    cert.sign(signer.priv, forge.md.sha256.create());
    return { certPem: forge.pki.certificateToPem(cert), keyPem: k.pem };
  };
  return [make(kx, "loop X", "loop Y", ky), make(ky, "loop Y", "loop X", kx)];
}

export const spiffe = (domain: string, org: string, gateway: string) =>
  `spiffe://${domain}/org/${org}/gateway/${gateway}`;
