/**
 * JMIX security primitives (spec §Security), all from node:crypto and jose:
 * - Ed25519 assertions: `signature` is Ed25519 over the canonical JSON (keys sorted, no spaces) of
 *   `{ <field>: <value> }` for each name in `signed_fields`, looked up on the entity itself, except
 *   `payload_hash`, which is the manifest's `security.payload_hash`. Signing the payload hash ties
 *   the sender's assertion to the bytes, not only to its name.
 * - Optional JWS (compact, EdDSA) whose payload is manifest.json byte for byte.
 * - Payload encryption: AES-256-GCM with key = HKDF-SHA256(X25519(ephemeral, recipient), salt empty,
 *   info "JMIX-Payload-Encryption", 32 bytes), 12-byte IV, 16-byte tag; keys and IV in base64.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  sign,
  verify,
  type CipherGCM,
  type DecipherGCM,
  type KeyObject,
} from "node:crypto";
import { CompactSign, compactVerify } from "jose";

export const HKDF_INFO = "JMIX-Payload-Encryption";

export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
    .join(",")}}`;
}

/** The raw 32-byte public key of an Ed25519 or X25519 key, from its JWK form. */
export function rawPublicKey(key: KeyObject): Buffer {
  const jwk = (key.type === "private" ? createPublicKey(key) : key).export({ format: "jwk" });
  return Buffer.from(jwk.x!, "base64url");
}

export function okpPublicKey(raw: Buffer, crv: "Ed25519" | "X25519"): KeyObject {
  if (raw.length !== 32) throw new Error(`an ${crv} public key is 32 bytes, not ${raw.length}`);
  return createPublicKey({ key: { kty: "OKP", crv, x: raw.toString("base64url") }, format: "jwk" });
}

/** A key from PEM (file contents) or base64 raw bytes (public keys only). */
export function parseKey(text: string, crv: "Ed25519" | "X25519", kind: "private" | "public"): KeyObject {
  const t = text.trim();
  if (t.startsWith("-----")) {
    const k = kind === "private" ? createPrivateKey(t) : createPublicKey(t);
    if (k.asymmetricKeyType !== crv.toLowerCase())
      throw new Error(`expected an ${crv} key, got ${k.asymmetricKeyType}`);
    return k;
  }
  if (kind === "private") throw new Error(`an ${crv} private key must be PEM (PKCS#8)`);
  return okpPublicKey(Buffer.from(t, "base64"), crv);
}

export const fingerprint = (raw: Buffer) => `SHA256:${createHash("sha256").update(raw).digest("hex")}`;

export interface Assertion {
  signing_key: { alg: "Ed25519"; public_key: string; fingerprint: string };
  key_reference?: string;
  signed_fields: string[];
  signature: string;
  expires_at?: string;
}

type Entity = Record<string, unknown> & { assertion?: Assertion };

function signedPayload(entity: Entity, fields: string[], payloadHash: string | undefined): Buffer {
  const o: Record<string, unknown> = {};
  for (const f of fields) o[f] = f === "payload_hash" ? payloadHash : entity[f];
  return Buffer.from(canonicalJson(o));
}

export function makeAssertion(
  entity: Entity,
  fields: string[],
  payloadHash: string | undefined,
  key: KeyObject,
  keyReference?: string,
): Assertion {
  const raw = rawPublicKey(key);
  return {
    signing_key: { alg: "Ed25519", public_key: raw.toString("base64"), fingerprint: fingerprint(raw) },
    ...(keyReference ? { key_reference: keyReference } : {}),
    signed_fields: fields,
    signature: sign(null, signedPayload(entity, fields, payloadHash), key).toString("base64"),
  };
}

/** Why an entity's assertion does not hold, or undefined when it does (or there is none). */
export function checkAssertion(entity: Entity, payloadHash: string | undefined, now = new Date()): string | undefined {
  const a = entity.assertion;
  if (!a) return undefined;
  let key: KeyObject;
  try {
    const raw = Buffer.from(a.signing_key.public_key, "base64");
    key = okpPublicKey(raw, "Ed25519");
    if (fingerprint(raw).toLowerCase() !== a.signing_key.fingerprint.toLowerCase())
      return "the signing key does not match its fingerprint";
  } catch (e) {
    return `the signing key is unusable: ${(e as Error).message}`;
  }
  if (a.expires_at && Date.parse(a.expires_at) < now.getTime()) return `the assertion expired at ${a.expires_at}`;
  const ok = verify(null, signedPayload(entity, a.signed_fields, payloadHash), key, Buffer.from(a.signature, "base64"));
  return ok ? undefined : "the signature does not verify";
}

export async function signJws(manifest: Buffer, key: KeyObject): Promise<string> {
  return new CompactSign(manifest).setProtectedHeader({ alg: "EdDSA", typ: "JOSE" }).sign(key);
}

/** Why manifest.jws does not cover manifest.json under `key`, or undefined when it does. */
export async function checkJws(jws: string, manifest: Buffer, key: KeyObject): Promise<string | undefined> {
  try {
    const { payload } = await compactVerify(jws.trim(), key, { algorithms: ["EdDSA"] });
    return Buffer.from(payload).equals(manifest) ? undefined : "manifest.jws covers a different manifest";
  } catch (e) {
    return `manifest.jws does not verify: ${(e as Error).message}`;
  }
}

function payloadKey(shared: Buffer): Buffer {
  return Buffer.from(hkdfSync("sha256", shared, Buffer.alloc(0), HKDF_INFO, 32));
}

export interface Encryption {
  cipher: CipherGCM;
  ephemeralPublicKey: Buffer;
  iv: Buffer;
}

/** A cipher stream to `recipient` (X25519); read `cipher.getAuthTag()` after it ends. */
export function encryptTo(recipient: KeyObject): Encryption {
  const eph = generateKeyPairSync("x25519");
  const key = payloadKey(diffieHellman({ privateKey: eph.privateKey, publicKey: recipient }));
  const iv = randomBytes(12);
  return { cipher: createCipheriv("aes-256-gcm", key, iv), ephemeralPublicKey: rawPublicKey(eph.publicKey), iv };
}

export function decryptWith(
  privateKey: KeyObject,
  enc: { ephemeral_public_key: string; iv: string; auth_tag: string },
): DecipherGCM {
  const eph = okpPublicKey(Buffer.from(enc.ephemeral_public_key, "base64"), "X25519");
  const key = payloadKey(diffieHellman({ privateKey, publicKey: eph }));
  const d = createDecipheriv("aes-256-gcm", key, Buffer.from(enc.iv, "base64"));
  d.setAuthTag(Buffer.from(enc.auth_tag, "base64"));
  return d;
}
