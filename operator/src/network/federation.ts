/**
 * Cluster peering without shared apiserver credentials. The exporting operator signs its chosen
 * entries and trust bundle as a JWS with the network CA's key (the CA certificate rides in the
 * `x5c` header); member gateways serve it as-is. The importing operator holds a peering token
 * (peer URL + the peer CA's sha256 fingerprint), fetches the JWS and trusts it only when the x5c
 * certificate has that fingerprint and the signature verifies with its key. TLS to the peer
 * therefore needs no prior trust: the pinned signature is the trust anchor, and a tampered or
 * foreign export fails it whatever the transport.
 */
import { X509Certificate } from "node:crypto";
import { request } from "node:https";
import { SignJWT, decodeProtectedHeader, importPKCS8, importX509, jwtVerify } from "jose";
import type { CaPair } from "./pki.js";
import { fingerprint } from "./pki.js";
import type { DirectoryEntry, PeerImport } from "./directory.js";

const ALG = "RS256";
const TYP = "harmony-network-export+jwt";
/** A peer's export larger than this is refused (1,000 entries are about 300 KB). */
export const MAX_EXPORT_BYTES = 8 * 1024 * 1024;
/**
 * How long an exporter's signature lasts by default (spec.export.validitySeconds): an hour, re-signed
 * every half hour. It bounds how long a peer keeps trusting an org after the exporter stops
 * vouching for it in a way the peer never hears of (every gateway serving the export gone), while
 * a peer that cannot reach us still holds an export with at least half an hour left.
 */
export const DEFAULT_EXPORT_VALIDITY_SECONDS = 3600;
/**
 * The most an importer grants one export from its signing time, whatever its `exp` says
 * (spec.peers[].maxValiditySeconds): a peer cannot make its trust outlive a day without signing again.
 */
export const DEFAULT_MAX_IMPORT_VALIDITY_SECONDS = 86400;

/**
 * Until when an import is trusted without a fresher export: its own expiry, capped at its signing
 * time (`serial`, ms) plus the importer's `maxValiditySeconds`. Past it the import is dropped.
 */
export function importValidUntil(imp: { exp?: number; serial?: number }, maxValiditySeconds: number): number {
  return Math.min((imp.exp ?? Infinity) * 1000, (imp.serial ?? 0) + maxValiditySeconds * 1000);
}

export interface ExportPayload {
  network: string;
  domain: string;
  issuer_cluster: string;
  entries: DirectoryEntry[];
  /**
   * Member orgs the export selects (an `export.endpoints` item names the org), endpoints or not: a
   * peer cluster of the same logical network puts them in its group, so a gateway that only calls
   * out (serves no entry) is still a known peer there.
   */
  orgs?: string[];
  trust_bundle_pem: string;
}

export async function signExport(
  ca: CaPair,
  payload: ExportPayload,
  validitySeconds: number,
  now = Date.now(),
): Promise<string> {
  const key = await importPKCS8(ca.caKeyPem, ALG);
  const der = new X509Certificate(ca.caPem).raw.toString("base64");
  const iat = Math.floor(now / 1000);
  // The signing time in ms: an importer refuses an export older than the one it holds (a replay).
  return new SignJWT({ ...payload, serial: now })
    .setProtectedHeader({ alg: ALG, typ: TYP, x5c: [der] })
    .setIssuedAt(iat)
    .setExpirationTime(iat + validitySeconds)
    .sign(key);
}

/**
 * Verifies an export against the pinned fingerprint and returns what may be imported. `ignoreExpiry`
 * re-reads a stored copy (after a restart: the caller drops it past importValidUntil, and keeps its
 * serial so that an older export is still refused as a replay).
 */
export async function verifyExport(
  jws: string,
  pinned: string,
  peer: string,
  opts: { ignoreExpiry?: boolean } = {},
): Promise<PeerImport & { exp: number; serial: number }> {
  const header = decodeProtectedHeader(jws);
  if (header.alg !== ALG || header.typ !== TYP) throw new Error(`not a Harmony network export (alg ${header.alg})`);
  const der = header.x5c?.[0];
  if (!der) throw new Error("export has no x5c certificate");
  const pem = `-----BEGIN CERTIFICATE-----\n${der.match(/.{1,64}/g)!.join("\n")}\n-----END CERTIFICATE-----\n`;
  const got = fingerprint(pem);
  const want = pinned.toLowerCase().replace(/[^0-9a-f]/g, "");
  if (got !== want)
    throw new Error(`export signed by CA ${got.slice(0, 16)}…, the peering token pins ${want.slice(0, 16)}…`);
  const { payload } = await jwtVerify(jws, await importX509(pem, ALG), {
    algorithms: [ALG],
    typ: TYP,
    ...(opts.ignoreExpiry ? { currentDate: new Date(0) } : {}),
  }).catch((e: unknown) => {
    throw new Error(`export signature or claims invalid: ${(e as Error).message}`);
  });
  const p = payload as unknown as ExportPayload & { exp: number; iat?: number; serial?: unknown };
  if (typeof p.domain !== "string" || !Array.isArray(p.entries) || typeof p.trust_bundle_pem !== "string")
    throw new Error("export payload lacks domain, entries or trust_bundle_pem");
  // Its first PEM line is the certificate's first 64 base64 characters.
  if (!p.trust_bundle_pem.includes(der.slice(0, 64)))
    throw new Error("export's trust bundle does not hold its signing CA");
  // A peer speaks for its own domain and for the org each identity names, nothing else.
  const entries = p.entries.filter(
    (e) =>
      typeof e?.uri === "string" &&
      typeof e.identity === "string" &&
      e.uri.startsWith(`harmony://${p.domain}/${e.org}/`) &&
      e.identity.startsWith(`spiffe://${p.domain}/org/${e.org}/gateway/`),
  );
  const orgs = Array.isArray(p.orgs)
    ? p.orgs.filter((o): o is string => typeof o === "string" && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(o))
    : [];
  return {
    peer,
    network: String(p.network),
    domain: p.domain,
    entries,
    orgs,
    trustBundlePem: p.trust_bundle_pem,
    exp: p.exp,
    // Exports signed before `serial` existed are ordered by their issue time.
    serial: typeof p.serial === "number" && Number.isFinite(p.serial) ? p.serial : (p.iat ?? 0) * 1000,
  };
}

/** GET the peer's export over HTTPS (see the file comment for why the server certificate is not checked). */
export function fetchExport(url: string, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    if (u.protocol !== "https:") return reject(new Error(`peer URL must be https: ${u.protocol}`));
    const req = request(
      u,
      { method: "GET", rejectUnauthorized: false, timeout: timeoutMs, headers: { accept: "application/jose" } },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          return reject(new Error(`peer answered ${res.statusCode} for ${u.pathname}`));
        }
        let size = 0;
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size > MAX_EXPORT_BYTES) req.destroy(new Error(`peer export larger than ${MAX_EXPORT_BYTES} bytes`));
          else chunks.push(c);
        });
        res.on("end", () => resolve(Buffer.concat(chunks).toString("utf8").trim()));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`peer did not answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}
