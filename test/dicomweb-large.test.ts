/**
 * A 1 GiB study through the gateway in both directions (STOW-RS up, WADO-RS down) against Orthanc,
 * with the gateway's peak RSS growing by less than 96 MiB: multipart bodies stream, they are never
 * held whole. The study is 16 generated 64 MiB instances, produced and checked part by part.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { request } from "node:http";
import { Readable } from "node:stream";
import { join } from "node:path";
import { startOrthanc, type Orthanc } from "./peers/dicom-peers.js";
import { makeInstance, uid } from "./dicom-files.js";
import { baseConfig, memoryOf, startDataplane, writeTree, type Dataplane } from "../dataplane/test/helpers.js";

const INSTANCES = 16;
const PIXELS = 64 * 1024 * 1024; // 16 × 64 MiB = 1 GiB of pixel data
// Node 20 grew 31–33 MiB here; Node 24 grows 42–75 MiB (its young generation; see bench/README.md,
// "Node 24"), which a 64 MiB budget cannot hold reliably. Holding the body would cost ~1 GiB.
const LIMIT = 96 * 1024 * 1024;
const STUDY = uid("large-study");
const SERIES = uid("large-series");
const BOUNDARY = "harmony-large-study";

let orthanc: Orthanc;
let dp: Dataplane;
let base: string;
const digests: string[] = [];

const instance = (i: number) =>
  makeInstance({
    study: STUDY,
    series: SERIES,
    sop: uid(`large-${i}`),
    patientId: "LARGE",
    patientName: "Large^Study",
    pixelBytes: PIXELS,
  });

before(async () => {
  orthanc = await startOrthanc();
  const dir = writeTree({
    "config.toml": baseConfig(`
[pipelines.dicomweb]
networks = ["default"]
endpoints = ["dw_in"]
backends = ["orthanc"]

[endpoints.dw_in]
service = "dicomweb"
options = { path_prefix = "/dicomweb" }

[backends.orthanc]
service = "dicomweb"
options = { base_url = "${orthanc.dicomweb}", headers_timeout_ms = 600000, body_timeout_ms = 600000 }
`),
  });
  dp = await startDataplane(join(dir, "config.toml"));
  base = dp.url("default", "/dicomweb");
  // Warm up the paths measured below, so the baseline includes their code and buffers.
  await (await fetch(`${base}/studies`)).arrayBuffer();
});

after(async () => {
  await dp?.stop();
  await orthanc?.stop();
});

test("STOW-RS of a 1 GiB study streams through the gateway", async (t) => {
  const before = memoryOf(dp.pid).hwm;
  function* body() {
    for (let i = 0; i < INSTANCES; i++) {
      const part = instance(i);
      digests.push(createHash("sha256").update(part).digest("hex"));
      yield Buffer.from(`--${BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n`);
      yield part;
      yield Buffer.from("\r\n");
    }
    yield Buffer.from(`--${BOUNDARY}--\r\n`);
  }
  const status = await new Promise<number>((resolve, reject) => {
    const req = request(
      `${base}/studies`,
      {
        method: "POST",
        headers: {
          "content-type": `multipart/related; type="application/dicom"; boundary=${BOUNDARY}`,
          accept: "application/dicom+json",
        },
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
    Readable.from(body()).pipe(req);
  });
  assert.equal(status, 200);
  const stored = (await (await fetch(`${orthanc.http}/studies`)).json()) as string[];
  assert.equal(stored.length, 1);
  const growth = memoryOf(dp.pid).hwm - before;
  t.diagnostic(`gateway peak RSS growth during the upload: ${(growth / 2 ** 20).toFixed(1)} MiB`);
  assert.ok(growth < LIMIT, `gateway peak RSS grew by ${(growth / 2 ** 20).toFixed(1)} MiB during a 1 GiB upload`);
});

test("WADO-RS of the 1 GiB study streams back byte-identical", async (t) => {
  const before = memoryOf(dp.pid).hwm;
  // Parse the multipart response as it arrives; hash each part without keeping it.
  const got: string[] = [];
  let total = 0;
  await new Promise<void>((resolve, reject) => {
    const req = request(
      `${base}/studies/${STUDY}`,
      { headers: { accept: 'multipart/related; type="application/dicom"' } },
      (res) => {
        if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`));
        const boundary = /boundary="?([^";]+)"?/.exec(res.headers["content-type"] ?? "")?.[1];
        if (!boundary) return reject(new Error("no boundary"));
        const delim = Buffer.from(`\r\n--${boundary}`);
        let buf: Buffer = Buffer.alloc(0);
        let hash: ReturnType<typeof createHash> | undefined;
        res.on("data", (chunk: Buffer) => {
          total += chunk.length;
          buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
          for (;;) {
            if (!hash) {
              const start = buf.indexOf(`--${boundary}`);
              const headersEnd = buf.indexOf("\r\n\r\n", start);
              if (start < 0 || headersEnd < 0) return;
              if (buf.subarray(start + boundary.length + 2, start + boundary.length + 4).toString() === "--") return;
              hash = createHash("sha256");
              buf = buf.subarray(headersEnd + 4);
            }
            const end = buf.indexOf(delim);
            if (end < 0) {
              // Keep a tail that could hold the start of a delimiter.
              const keep = delim.length;
              if (buf.length > keep) {
                hash.update(buf.subarray(0, buf.length - keep));
                buf = buf.subarray(buf.length - keep);
              }
              return;
            }
            hash.update(buf.subarray(0, end));
            got.push(hash.digest("hex"));
            hash = undefined;
            buf = buf.subarray(end + 2);
          }
        });
        res.on("end", () => resolve());
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end();
  });
  assert.ok(total > INSTANCES * PIXELS, `received ${total} bytes`);
  assert.deepEqual([...got].sort(), [...digests].sort(), "every instance came back unchanged");
  const growth = memoryOf(dp.pid).hwm - before;
  t.diagnostic(`gateway peak RSS growth during the download: ${(growth / 2 ** 20).toFixed(1)} MiB`);
  assert.ok(growth < LIMIT, `gateway peak RSS grew by ${(growth / 2 ** 20).toFixed(1)} MiB during a 1 GiB download`);
});
