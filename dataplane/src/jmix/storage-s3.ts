/**
 * Packages in S3-compatible object storage (AWS S3, MinIO, Ceph RGW…):
 *   <prefix>packages/<id>/<path>   the package's files, exactly as served
 *   <prefix>index/<id>.json        its index entry, written after every file is in
 * Large files go up as multipart uploads from the local staging copy; reads stream. Object keys
 * come only from UUIDs and paths that passed the archive checks.
 */
import { createReadStream } from "node:fs";
import { Readable } from "node:stream";
import type { ListObjectsV2CommandOutput, S3Client } from "@aws-sdk/client-s3";
import { lazyModule } from "../lazy-module.js";
import type { PackageFile } from "./local-files.js";
import type { IndexEntry, PackageStorage, StoredFile } from "./package-storage.js";

// The AWS SDK is about 6 MiB of heap: loaded only when a config has an S3 store.
export const awsS3 = lazyModule<typeof import("@aws-sdk/client-s3")>("@aws-sdk/client-s3");
export const awsUpload = lazyModule<typeof import("@aws-sdk/lib-storage")>("@aws-sdk/lib-storage");

export interface S3Settings {
  bucket: string;
  prefix: string;
  region: string;
  endpoint?: string;
  forcePathStyle: boolean;
  accessKeyId?: string;
  secretAccessKey?: string;
}

/** A client for these settings; shared with the `storage` backend (backends/storage-s3-objects.ts). */
export function createS3Client(s: S3Settings): S3Client {
  return new (awsS3().S3Client)({
    region: s.region,
    ...(s.endpoint ? { endpoint: s.endpoint } : {}),
    forcePathStyle: s.forcePathStyle,
    ...(s.accessKeyId && s.secretAccessKey
      ? { credentials: { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey } }
      : {}), // otherwise the SDK's own chain: environment, web identity (IRSA), instance profile
  });
}

/** Uploads of one package run this many files at a time. */
const PARALLEL = 4;

async function bodyBytes(body: unknown): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body as AsyncIterable<Uint8Array>) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

export class S3Storage implements PackageStorage {
  private readonly client: S3Client;
  private readonly prefix: string;

  constructor(private readonly s: S3Settings) {
    this.prefix = s.prefix && !s.prefix.endsWith("/") ? `${s.prefix}/` : s.prefix;
    this.client = createS3Client(s);
  }

  get location(): string {
    return `s3://${this.s.bucket}/${this.prefix}`;
  }

  private key(id: string, rel = ""): string {
    return `${this.prefix}packages/${id}/${rel}`;
  }

  async put(id: string, _dir: string, files: PackageFile[]): Promise<void> {
    const queue = [...files];
    const worker = async () => {
      for (let f = queue.shift(); f; f = queue.shift()) {
        await new (awsUpload().Upload)({
          client: this.client,
          params: { Bucket: this.s.bucket, Key: this.key(id, f.rel), Body: createReadStream(f.abs) },
          queueSize: 2,
          partSize: 16 * 1024 * 1024,
        }).done();
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL, files.length) }, worker));
  }

  async putIndex(entry: IndexEntry): Promise<void> {
    await this.client.send(
      new (awsS3().PutObjectCommand)({
        Bucket: this.s.bucket,
        Key: `${this.prefix}index/${entry.id}.json`,
        Body: JSON.stringify(entry),
        ContentType: "application/json",
      }),
    );
  }

  private async *keys(prefix: string): AsyncGenerator<{ key: string; size: number }> {
    let token: string | undefined;
    do {
      const page: ListObjectsV2CommandOutput = await this.client.send(
        new (awsS3().ListObjectsV2Command)({ Bucket: this.s.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const o of page.Contents ?? []) if (o.Key) yield { key: o.Key, size: o.Size ?? 0 };
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async loadIndex(): Promise<IndexEntry[]> {
    const out: IndexEntry[] = [];
    for await (const { key } of this.keys(`${this.prefix}index/`)) {
      if (!key.endsWith(".json")) continue;
      const r = await this.client.send(new (awsS3().GetObjectCommand)({ Bucket: this.s.bucket, Key: key }));
      out.push(JSON.parse((await bodyBytes(r.Body)).toString("utf8")) as IndexEntry);
    }
    return out;
  }

  async has(id: string): Promise<boolean> {
    try {
      await this.client.send(
        new (awsS3().HeadObjectCommand)({ Bucket: this.s.bucket, Key: this.key(id, "manifest.json") }),
      );
      return true;
    } catch (e) {
      if ((e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
      throw e;
    }
  }

  async list(id: string): Promise<StoredFile[]> {
    const base = this.key(id);
    const out: StoredFile[] = [];
    for await (const { key, size } of this.keys(base)) out.push({ rel: key.slice(base.length), size });
    return out.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
  }

  async read(id: string, rel: string): Promise<Buffer> {
    const r = await this.client.send(new (awsS3().GetObjectCommand)({ Bucket: this.s.bucket, Key: this.key(id, rel) }));
    return bodyBytes(r.Body);
  }

  open(id: string, rel: string): Readable {
    const { client, s } = this;
    const key = this.key(id, rel);
    return Readable.from(
      (async function* () {
        const r = await client.send(new (awsS3().GetObjectCommand)({ Bucket: s.bucket, Key: key }));
        for await (const c of r.Body as AsyncIterable<Uint8Array>) yield Buffer.from(c);
      })(),
      { objectMode: false },
    );
  }

  close(): Promise<void> {
    this.client.destroy();
    return Promise.resolve();
  }
}
