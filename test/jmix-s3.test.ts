/**
 * The JMIX store on S3-compatible object storage (moto's server): a package built from Orthanc
 * lands in the bucket (files, then its index entry) and nothing stays on local disk; it is served
 * back from the bucket; an upload to a second data plane's prefix is 201 then 409; after a restart
 * the index is read back from the bucket; and a bucket that cannot be reached is a 503, not a crash.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import { startOrthanc, SAMPLES, type Orthanc } from "./peers/dicom-peers.js";
import { startS3, type S3Peer } from "./peers/s3-server.js";
import { uidsOf } from "./dicom-files.js";
import { baseConfig, startDataplane, writeTree, type Dataplane } from "../dataplane/test/helpers.js";

const MR = readFileSync(join(SAMPLES, "MR_small.dcm"));
const STUDY = uidsOf(MR).study;

let orthanc: Orthanc;
let s3: S3Peer;
let sender: Dataplane;
let receiver: Dataplane;
let receiverConfig: string;
let receiverDir: string;

const config = (prefix: string, backend: string, s3Endpoint: string) =>
  baseConfig(`
[pipelines.jmix]
networks = ["default"]
endpoints = ["jmix_in"]
middleware = ["packager"]
backends = ["origin"]

[endpoints.jmix_in]
service = "jmix"
options = { path_prefix = "/jmix" }

[middleware.packager]
type = "jmix_builder"
[middleware.packager.options]
store_dir = "local"
storage = "s3"
s3 = { bucket = "harmony-test", prefix = "${prefix}", endpoint = "${s3Endpoint}", access_key_id = "testing", secret_access_key_file = "s3-secret" }

[backends.origin]
service = "dicomweb"
options = { base_url = "${backend}" }
`);

before(async () => {
  [orthanc, s3] = await Promise.all([startOrthanc(), startS3()]);
  assert.equal((await fetch(`${orthanc.http}/instances`, { method: "POST", body: MR })).status, 200);
  const sdir = writeTree({ "config.toml": config("site-a/", orthanc.dicomweb, s3.endpoint), "s3-secret": "testing\n" });
  sender = await startDataplane(join(sdir, "config.toml"));
  receiverDir = writeTree({
    "config.toml": config("site-b", "http://127.0.0.1:9", s3.endpoint),
    "s3-secret": "testing\n",
  });
  receiverConfig = join(receiverDir, "config.toml");
  receiver = await startDataplane(receiverConfig);
});

after(async () => {
  await Promise.all([sender?.stop(), receiver?.stop()]);
  await Promise.all([orthanc?.stop(), s3?.stop()]);
});

async function keys(prefix: string): Promise<string[]> {
  const r = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }));
  return (r.Contents ?? []).map((o) => o.Key!).sort();
}

const filesUnder = (d: string): string[] =>
  readdirSync(d).flatMap((f) => (statSync(join(d, f)).isDirectory() ? filesUnder(join(d, f)) : [join(d, f)]));

let id = "";
let zip: Buffer;

test("a built package is stored in the bucket and served from it", async () => {
  const r = await fetch(sender.url("default", `/jmix/api/jmix?studyInstanceUid=${STUDY}`));
  assert.equal(r.status, 200, await r.clone().text());
  id = r.headers.get("x-jmix-id")!;
  zip = Buffer.from(await r.arrayBuffer());
  const sop = uidsOf(MR).sop;
  assert.deepEqual(await keys(`site-a/packages/${id}/`), [
    `site-a/packages/${id}/audit.json`,
    `site-a/packages/${id}/manifest.json`,
    `site-a/packages/${id}/payload/dicom/${sop}.dcm`,
    `site-a/packages/${id}/payload/files.json`,
    `site-a/packages/${id}/payload/metadata.json`,
  ]);
  assert.deepEqual(await keys("site-a/index/"), [`site-a/index/${id}.json`]);
  // The zip's DICOM entry is the original file, read back from the bucket.
  assert.ok(zip.includes(MR), "the instance's bytes are in the zip");
  const manifest = await fetch(sender.url("default", `/jmix/api/jmix/${id}/manifest`));
  assert.equal(manifest.status, 200);
  assert.equal(((await manifest.json()) as { id: string }).id, id);
});

test("upload to another prefix: 201, 409 on the repeat; the index survives a restart", async () => {
  const up = () =>
    fetch(receiver.url("default", "/jmix/api/jmix"), {
      method: "POST",
      headers: { "content-type": "application/zip" },
      body: zip,
    });
  const first = await up();
  assert.equal(first.status, 201, await first.clone().text());
  assert.equal((await up()).status, 409);
  assert.ok((await keys(`site-b/packages/${id}/`)).includes(`site-b/packages/${id}/manifest.json`));
  // Nothing but an empty staging directory on the receiver's disk.
  assert.deepEqual(filesUnder(join(receiverDir, "local")), []);

  await receiver.stop();
  receiver = await startDataplane(receiverConfig);
  const byStudy = await fetch(receiver.url("default", `/jmix/api/jmix?studyInstanceUid=${STUDY}`));
  assert.equal(byStudy.status, 200);
  assert.equal(byStudy.headers.get("x-jmix-id"), id);
  assert.ok(Buffer.from(await byStudy.arrayBuffer()).includes(MR));
});

test("an unreachable bucket: 503 with Retry-After, and the data plane keeps serving", async () => {
  const dir = writeTree({
    "config.toml": config("x/", orthanc.dicomweb, "http://127.0.0.1:9"),
    "s3-secret": "testing",
  });
  const dp = await startDataplane(join(dir, "config.toml"));
  try {
    const r = await fetch(dp.url("default", `/jmix/api/jmix?studyInstanceUid=${STUDY}`));
    assert.equal(r.status, 503);
    assert.equal(r.headers.get("retry-after"), "5");
    const body = (await r.json()) as { detail: string };
    assert.match(body.detail, /package store is unavailable/);
    assert.doesNotMatch(JSON.stringify(body) + JSON.stringify(dp.logs), /testing/, "no credentials in answers or logs");
    assert.equal((await fetch(dp.url("management", "/healthz"))).status, 200);
  } finally {
    await dp.stop();
  }
});
