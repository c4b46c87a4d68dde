/**
 * The `storage` backend's objects in an S3-compatible bucket, under `s3://bucket/prefix`: the key
 * is the prefix and the checked relative path. Writes stream up as a multipart upload (the body is
 * never held whole), reads stream down, ranges are asked of the store itself. Client settings are
 * the JMIX store's (jmix/storage-s3.ts).
 */
import { Readable } from "node:stream";
import type { S3Client } from "@aws-sdk/client-s3";
import { awsS3, awsUpload, createS3Client, type S3Settings } from "../jmix/storage-s3.js";
import type { ObjectStore, StoredObject } from "./storage-objects.js";

const statusOf = (e: unknown) => (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;

export class S3Objects implements ObjectStore {
  private readonly client: S3Client;
  private readonly prefix: string;

  constructor(private readonly s: S3Settings) {
    this.prefix = s.prefix && !s.prefix.endsWith("/") ? `${s.prefix}/` : s.prefix;
    this.client = createS3Client(s);
  }

  get location(): string {
    return `s3://${this.s.bucket}/${this.prefix}`;
  }

  async stat(rel: string): Promise<StoredObject | undefined> {
    const Key = this.prefix + rel;
    let head;
    try {
      head = await this.client.send(new (awsS3().HeadObjectCommand)({ Bucket: this.s.bucket, Key }));
    } catch (e) {
      if (statusOf(e) === 404) return undefined;
      throw e;
    }
    const { client, s } = this;
    const size = head.ContentLength ?? 0;
    return {
      size,
      modified: head.LastModified,
      read(start, end) {
        if (size === 0) return Readable.from([]);
        return Readable.from(
          (async function* () {
            const r = await client.send(
              new (awsS3().GetObjectCommand)({
                Bucket: s.bucket,
                Key,
                Range: `bytes=${start}-${end}`,
                IfMatch: head.ETag,
              }),
            );
            for await (const c of r.Body as AsyncIterable<Uint8Array>) yield Buffer.from(c);
          })(),
          { objectMode: false },
        );
      },
      close: () => undefined,
    };
  }

  async write(rel: string, body: Readable, contentType: string | undefined): Promise<void> {
    const upload = new (awsUpload().Upload)({
      client: this.client,
      params: {
        Bucket: this.s.bucket,
        Key: this.prefix + rel,
        Body: body,
        ...(contentType ? { ContentType: contentType } : {}),
      },
      queueSize: 2,
      partSize: 8 * 1024 * 1024,
      leavePartsOnError: false,
    });
    // A body past the limit (or a client that goes away) fails the stream: abort the upload, and
    // report the stream's reason rather than the SDK's.
    let failure: Error | undefined;
    body.once("error", (e: Error) => {
      failure = e;
      void upload.abort().catch(() => undefined);
    });
    try {
      await upload.done();
    } catch (e) {
      throw failure ?? e;
    }
    if (failure) throw failure;
  }

  close(): Promise<void> {
    this.client.destroy();
    return Promise.resolve();
  }
}
