/**
 * JMIX download as tar.gz, Harmony's other package format: `Accept: application/gzip` on a study
 * (built on the miss) and on a package id gives a streamed tar.gz whose entries are those of the
 * zip served for the same package, byte for byte, with the original DICOM file inside; zip stays
 * the default; an Accept that admits neither is 406.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import yauzl from "yauzl";
import tarStream from "tar-stream";
import { startOrthanc, SAMPLES, type Orthanc } from "./peers/dicom-peers.js";
import { uidsOf } from "./dicom-files.js";
import { baseConfig, startDataplane, writeTree, type Dataplane } from "../dataplane/test/helpers.js";

const ct = readFileSync(join(SAMPLES, "CT_small.dcm"));
const CT = uidsOf(ct);
let orthanc: Orthanc;
let dp: Dataplane;

before(async () => {
  orthanc = await startOrthanc();
  assert.equal((await fetch(`${orthanc.http}/instances`, { method: "POST", body: ct })).status, 200);
  const dir = writeTree({
    "config.toml": baseConfig(`
[pipelines.jmix]
networks = ["default"]
endpoints = ["jmix_in"]
middleware = ["builder"]
backends = ["orthanc"]

[endpoints.jmix_in]
service = "jmix"
options = { path_prefix = "/jmix" }

[middleware.builder]
type = "jmix_builder"
options = { store_dir = "store" }

[backends.orthanc]
service = "dicomweb"
options = { base_url = "${orthanc.dicomweb}" }
`),
  });
  dp = await startDataplane(join(dir, "config.toml"));
});

after(async () => {
  await dp?.stop();
  await orthanc?.stop();
});

async function untgz(body: Buffer): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const extract = tarStream.extract();
  extract.on("entry", (header, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on("data", (c) => chunks.push(c as Buffer));
    stream.on("end", () => {
      out.set(header.name, Buffer.concat(chunks));
      next();
    });
  });
  await pipeline(Readable.from([body]), createGunzip(), extract);
  return out;
}

async function unzip(zip: Buffer): Promise<Map<string, Buffer>> {
  const z = await new Promise<yauzl.ZipFile>((res, rej) =>
    yauzl.fromBuffer(zip, { lazyEntries: true }, (e, f) => (e ? rej(e) : res(f))),
  );
  const out = new Map<string, Buffer>();
  await new Promise<void>((resolve, reject) => {
    z.on("end", resolve);
    z.on("error", reject);
    z.on("entry", (entry: yauzl.Entry) => {
      if (entry.fileName.endsWith("/")) return z.readEntry(); // a folder entry; tar lists files only
      z.openReadStream(entry, (e, s) => {
        if (e) return reject(e);
        const chunks: Buffer[] = [];
        s.on("data", (c: Buffer) => chunks.push(c));
        s.on("end", () => {
          out.set(entry.fileName, Buffer.concat(chunks));
          z.readEntry();
        });
      });
    });
    z.readEntry();
  });
  return out;
}

test("Accept: application/gzip downloads the package as a tar.gz with the zip's entries, byte for byte", async () => {
  const gz = await fetch(dp.url("default", `/jmix/api/jmix?studyInstanceUid=${CT.study}`), {
    headers: { accept: "application/gzip" },
  });
  assert.equal(gz.status, 200, await gz.clone().text());
  assert.equal(gz.headers.get("content-type"), "application/gzip");
  const id = gz.headers.get("x-jmix-id")!;
  assert.match(gz.headers.get("content-disposition")!, new RegExp(`filename="${id}\\.tar\\.gz"`));
  assert.equal(gz.headers.get("content-length"), null, "streamed, not buffered to learn its length");
  const tgz = await untgz(Buffer.from(await gz.arrayBuffer()));
  assert.ok(tgz.get(`${id}.jmix/payload/dicom/${CT.sop}.dcm`)?.equals(ct), "the original DICOM file is inside");

  const zip = await fetch(dp.url("default", `/jmix/api/jmix/${id}`));
  assert.equal(zip.headers.get("content-type"), "application/zip", "zip stays the default");
  const zipped = await unzip(Buffer.from(await zip.arrayBuffer()));
  assert.deepEqual([...tgz.keys()].sort(), [...zipped.keys()].sort());
  for (const [k, v] of zipped) assert.ok(tgz.get(k)!.equals(v), k);

  const byId = await fetch(dp.url("default", `/jmix/api/jmix/${id}`), { headers: { accept: "application/x-gzip" } });
  assert.equal(byId.headers.get("content-type"), "application/gzip");
  assert.equal((await untgz(Buffer.from(await byId.arrayBuffer()))).size, tgz.size);

  const neither = await fetch(dp.url("default", `/jmix/api/jmix/${id}`), { headers: { accept: "text/html" } });
  assert.equal(neither.status, 406);
  assert.match(((await neither.json()) as { detail: string }).detail, /application\/gzip/);
});
