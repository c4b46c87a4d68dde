/**
 * An S3-compatible object store for tests: moto's server (the AWS API emulation boto's own tests
 * use; installed into a venv by test/peers/peers.sh) on a free loopback port, with one bucket.
 */
import { homedir } from "node:os";
import { join } from "node:path";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { freePort } from "../../dataplane/test/helpers.js";
import { run, waitFor, type Proc } from "./process.js";

const MOTO = join(
  process.env.HARMONY_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "harmony"),
  "peers/moto-venv/bin/moto_server",
);

export interface S3Peer extends Proc {
  endpoint: string;
  bucket: string;
  client: S3Client;
}

export async function startS3(bucket = "harmony-test"): Promise<S3Peer> {
  const port = await freePort();
  const p = run(MOTO, ["-H", "127.0.0.1", "-p", String(port)]);
  const endpoint = `http://127.0.0.1:${port}`;
  await waitFor("moto_server", p, async () => (await fetch(`${endpoint}/moto-api/`)).ok, 30_000);
  const client = new S3Client({
    region: "us-east-1",
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: "testing", secretAccessKey: "testing" },
  });
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  return {
    ...p,
    endpoint,
    bucket,
    client,
    async stop() {
      client.destroy();
      await p.stop();
    },
  };
}
