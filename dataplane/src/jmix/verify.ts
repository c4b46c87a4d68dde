/**
 * Checks an unpacked JMIX package before it may enter the store. Every problem found is reported
 * (a client fixing its packager wants the whole list): JSON that is not JSON or breaks the
 * specification's schemas, a manifest id that is not a UUID, files.json entries that are missing
 * or whose size or hash differ, a payload_hash that does not match (the payload was altered), an
 * assertion or manifest.jws that does not verify, an encrypted payload we cannot decrypt.
 */
import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { KeyObject } from "node:crypto";
import { pipeline } from "node:stream/promises";
import { untarGz, entryPath, ArchiveError, type UnpackLimits } from "./archive.js";
import { checkJmix } from "./schemas.js";
import { checkAssertion, checkJws, decryptWith, okpPublicKey, type Assertion } from "./crypto.js";
import { payloadHashOf, sha256File } from "./build.js";
import { UUID } from "./store.js";
import { isPlainFile, listFiles } from "./local-files.js";

export class InvalidPackage extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join("; "));
  }
}

export interface Verified {
  id: string;
  studyUid: string | undefined;
  encrypted: boolean;
  /** The package's top directory (the archive may wrap it in one folder). */
  root: string;
}

type Json = Record<string, unknown>;

/** Where manifest.json is: at the top, or inside the archive's one top-level folder. */
export function packageRoot(dir: string): string {
  if (isPlainFile(join(dir, "manifest.json"))) return dir;
  const entries = readdirSync(dir, { withFileTypes: true });
  if (entries.length === 1 && entries[0]!.isDirectory() && isPlainFile(join(dir, entries[0]!.name, "manifest.json")))
    return join(dir, entries[0]!.name);
  throw new InvalidPackage(["the archive has no manifest.json at its top (or in its one top-level folder)"]);
}

function readJson(path: string, name: string, problems: string[]): unknown {
  if (!isPlainFile(path)) {
    problems.push(`${name} is missing`);
    return undefined;
  }
  try {
    return JSON.parse(readFileSync(path, "utf8")) as unknown;
  } catch (e) {
    problems.push(`${name} is not JSON: ${(e as Error).message}`);
    return undefined;
  }
}

export async function verifyPackage(
  unpacked: string,
  scratch: string,
  opts: { decryptionKey?: KeyObject; limits: UnpackLimits },
): Promise<Verified> {
  const root = packageRoot(unpacked);
  const problems: string[] = [];
  const manifest = readJson(join(root, "manifest.json"), "manifest.json", problems) as Json | undefined;
  if (!manifest) throw new InvalidPackage(problems);
  problems.push(...checkJmix("manifest", manifest, "manifest.json"));
  const id = typeof manifest.id === "string" ? manifest.id : "";
  if (!UUID.test(id)) problems.push(`manifest.json/id: "${id}" is not a UUID`);
  const audit = readJson(join(root, "audit.json"), "audit.json", problems);
  if (audit !== undefined) problems.push(...checkJmix("audit", audit, "audit.json"));

  const security = (manifest.security ?? {}) as Json;
  const encryption = security.encryption as { ephemeral_public_key: string; iv: string; auth_tag: string } | undefined;
  const encryptedFile = ["payload.encrypted", "payload.enc"].map((f) => join(root, f)).find(isPlainFile);
  let payload = join(root, "payload");
  if (encryptedFile || encryption) {
    if (!encryptedFile || !encryption)
      throw new InvalidPackage([
        ...problems,
        "encryption is declared but payload.encrypted is missing, or the reverse",
      ]);
    if (!opts.decryptionKey)
      throw new InvalidPackage([
        ...problems,
        "the payload is encrypted and this gateway has no decryption key configured",
      ]);
    payload = join(scratch, "payload");
    try {
      const decipher = decryptWith(opts.decryptionKey, encryption);
      await Promise.all([
        untarGz(decipher, payload, opts.limits, false),
        pipeline(createReadStream(encryptedFile), decipher),
      ]);
    } catch (e) {
      if (e instanceof ArchiveError && !/Unsupported state|authenticate/i.test(e.message))
        throw new InvalidPackage([...problems, `the decrypted payload is not a safe tar: ${e.message}`]);
      throw new InvalidPackage([
        ...problems,
        "the payload does not decrypt: it was altered, or it is not encrypted to this gateway's key",
      ]);
    }
  }
  if (!existsSync(payload)) throw new InvalidPackage([...problems, "payload/ is missing"]);

  const metadata = readJson(join(payload, "metadata.json"), "payload/metadata.json", problems) as Json | undefined;
  if (metadata !== undefined) problems.push(...checkJmix("metadata", metadata, "payload/metadata.json"));
  const filesJson = join(payload, "files.json");
  if (isPlainFile(filesJson) || existsSync(join(payload, "files"))) {
    const files = readJson(filesJson, "payload/files.json", problems);
    if (files !== undefined) {
      const schema = checkJmix("files", files, "payload/files.json");
      problems.push(...schema);
      if (!schema.length) problems.push(...(await checkListed(payload, files as ListedFile[])));
    }
  }
  const payloadHash = typeof security.payload_hash === "string" ? security.payload_hash : undefined;
  if (payloadHash && payloadHash !== "sha256:placeholder" && !problems.length) {
    const actual = await payloadHashOf(await listFiles(payload));
    if (actual.toLowerCase() !== payloadHash.toLowerCase())
      problems.push("manifest.json/security/payload_hash does not match the payload: it was altered");
  }
  for (const [name, entity] of entities(manifest)) {
    const why = checkAssertion(entity, payloadHash);
    if (why) problems.push(`manifest.json/${name}/assertion: ${why}`);
  }
  const jwsPath = join(root, "manifest.jws");
  const senderKey = ((manifest.sender as Json | undefined)?.assertion as Assertion | undefined)?.signing_key;
  if (isPlainFile(jwsPath) && senderKey) {
    try {
      const key = okpPublicKey(Buffer.from(senderKey.public_key, "base64"), "Ed25519");
      const why = await checkJws(readFileSync(jwsPath, "utf8"), readFileSync(join(root, "manifest.json")), key);
      if (why) problems.push(why);
    } catch (e) {
      problems.push(`manifest.jws cannot be checked: ${(e as Error).message}`);
    }
  }
  if (problems.length) throw new InvalidPackage(problems);
  const studies = metadata?.studies as { study_uid?: unknown } | undefined;
  return {
    id: id.toLowerCase(),
    studyUid: typeof studies?.study_uid === "string" ? studies.study_uid : undefined,
    encrypted: !!encryptedFile,
    root,
  };
}

interface ListedFile {
  file: string;
  hash?: string;
  size_bytes?: number;
}

async function checkListed(payload: string, files: ListedFile[]): Promise<string[]> {
  const problems: string[] = [];
  for (const f of files) {
    let rel: string;
    try {
      rel = entryPath(f.file);
    } catch (e) {
      problems.push(`payload/files.json: ${(e as Error).message}`);
      continue;
    }
    const abs = join(payload, rel);
    if (!isPlainFile(abs)) {
      problems.push(`payload/files.json lists ${f.file}, which is not in the payload`);
      continue;
    }
    const entry = { abs, rel, size: statSync(abs).size };
    if (f.size_bytes !== undefined && entry.size !== f.size_bytes)
      problems.push(`payload/${f.file} is ${entry.size} bytes, files.json says ${f.size_bytes}`);
    if (f.hash) {
      const want = f.hash.toLowerCase().replace(/^sha256:/, "");
      if (/^[0-9a-f]{64}$/.test(want)) {
        const got = (await sha256File(entry)).slice("sha256:".length);
        if (got !== want) problems.push(`payload/${f.file} does not match its hash in files.json`);
      }
    }
  }
  return problems;
}

function* entities(manifest: Json): Generator<[string, Json]> {
  if (manifest.sender) yield ["sender", manifest.sender as Json];
  if (manifest.requester) yield ["requester", manifest.requester as Json];
  const receivers = Array.isArray(manifest.receiver) ? (manifest.receiver as Json[]) : [];
  for (const [i, r] of receivers.entries()) yield [`receiver/${i}`, r];
}
