/**
 * An upload into the JMIX store: the archive (zip or tar.gz) is received and unpacked into staging
 * under limits, verified in full, then committed. Every refusal is an HttpError for the client:
 * 413 past the upload size, 400 for an unsafe archive or an invalid package (naming the entry or
 * the problem, never a server path), 409 for a known id, 503 when enough uploads are in progress.
 */
import { createWriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import type { KeyObject } from "node:crypto";
import { join } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { HttpError, problemType } from "../pipeline/errors.js";
import { ArchiveError, unzip, untarGz, type UnpackLimits } from "./archive.js";
import { PackageExistsError, type IndexEntry, type JmixStore } from "./store.js";
import { InvalidPackage, verifyPackage } from "./verify.js";

export interface UploadLimits {
  maxUploadBytes: number;
  /** Uploads received and unpacked at once per store. */
  maxConcurrent: number;
  unpack: UnpackLimits;
}

/** A byte counter that fails the stream past `limit` with 413. */
function limitBytes(limit: number): Transform {
  let n = 0;
  return new Transform({
    transform(chunk: Buffer, _e, cb) {
      n += chunk.length;
      if (n > limit) cb(new HttpError(413, `the upload is larger than ${limit} bytes`));
      else cb(null, chunk);
    },
  });
}

export async function receiveUpload(
  store: JmixStore,
  body: Buffer | Readable,
  format: "zip" | "tar.gz",
  limits: UploadLimits,
  decryptionKey: KeyObject | undefined,
): Promise<IndexEntry> {
  // Each upload holds up to max_package_bytes of disk while it unpacks: a few at a time.
  if (!store.beginUpload(limits.maxConcurrent))
    throw new HttpError(503, `${limits.maxConcurrent} uploads are in progress; retry later`, {
      type: problemType("jmix-busy"),
      // The body is not read: closing is cheaper than receiving gigabytes to discard them.
      headers: { "retry-after": "30", connection: "close" },
    });
  try {
    return await unpackAndCommit(store, body, format, limits, decryptionKey);
  } finally {
    store.endUpload();
  }
}

async function unpackAndCommit(
  store: JmixStore,
  body: Buffer | Readable,
  format: "zip" | "tar.gz",
  limits: UploadLimits,
  decryptionKey: KeyObject | undefined,
): Promise<IndexEntry> {
  /** A last guard for messages that reach a client: the store's location is nobody's business. */
  const clean = (message: string) => message.split(store.root).join("<store>");
  const src = Buffer.isBuffer(body) ? Readable.from([body]) : body;
  const staging = await store.staging();
  try {
    const raw = join(staging, "raw");
    await mkdir(raw);
    try {
      if (format === "zip") {
        const file = join(staging, "upload.zip");
        await pipeline(src, limitBytes(limits.maxUploadBytes), createWriteStream(file));
        await unzip(file, raw, limits.unpack);
      } else {
        // pipeline(), not pipe(): a client that aborts must fail the unpacking, not stall it.
        const limited = limitBytes(limits.maxUploadBytes);
        await Promise.all([untarGz(limited, raw, limits.unpack), pipeline(src, limited)]);
      }
    } catch (e) {
      if (e instanceof ArchiveError)
        throw new HttpError(400, `the archive was refused: ${clean(e.message)}`, { type: problemType("jmix-archive") });
      throw e;
    }
    const scratch = join(staging, "scratch");
    await mkdir(scratch);
    let v;
    try {
      v = await verifyPackage(raw, scratch, { decryptionKey, limits: limits.unpack });
    } catch (e) {
      if (e instanceof InvalidPackage)
        throw new HttpError(400, `the package is not valid JMIX: ${clean(e.message)}`, {
          type: problemType("jmix-invalid"),
        });
      throw e;
    }
    if (store.get(v.id)) throw new PackageExistsError(v.id);
    return await store.commit(v.root, {
      id: v.id,
      ...(v.studyUid ? { study_uid: v.studyUid } : {}),
      origin: "uploaded",
      encrypted: v.encrypted,
    });
  } catch (e) {
    if (e instanceof PackageExistsError)
      throw new HttpError(409, `package ${e.message} already exists`, { type: problemType("jmix-exists") });
    throw e;
  } finally {
    await store.discard(staging);
  }
}
