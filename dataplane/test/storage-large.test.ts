/**
 * A 512 MiB object through the `storage` backend both ways on a filesystem root: PUT streamed in
 * (chunked, generated as it is sent) and GET streamed out, the bytes checked by SHA-256 on both
 * sides, with the data plane's peak RSS growing by less than 96 MiB: the body is never held whole
 * (holding it would cost 512 MiB). The budget is dicomweb-large's, for the same reason (Node 24's
 * young generation, bench/README.md).
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { request } from "node:http";
import { rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { baseConfig, memoryOf, startDataplane, tempDir, writeTree, type Dataplane } from "./helpers.js";

const SIZE = 512 * 1024 * 1024;
const CHUNK = 1024 * 1024;
const LIMIT = 96 * 1024 * 1024;

let dp: Dataplane;
let root: string;

before(async () => {
  root = tempDir("harmony-storage-large-");
  const dir = writeTree({
    "config.toml": baseConfig(`
[pipelines.big]
networks = ["default"]
endpoints = ["big_in"]
backends = ["big_out"]

[endpoints.big_in]
service = "http"
options = { path_prefix = "/big" }

[backends.big_out]
service = "storage"
options = { root = "${root}", write_pattern = "{path}", max_object_bytes = ${SIZE} }
`),
  });
  dp = await startDataplane(join(dir, "config.toml"));
});

after(async () => {
  await dp?.stop();
  rmSync(root, { recursive: true, force: true }); // half a gigabyte
});

/** SIZE deterministic bytes, a chunk at a time (each chunk's bytes depend on its index). */
function* chunks(hash: ReturnType<typeof createHash>): Generator<Buffer> {
  for (let i = 0; i < SIZE / CHUNK; i++) {
    const c = Buffer.alloc(CHUNK, i % 251);
    c.writeUInt32BE(i, 0);
    hash.update(c);
    yield c;
  }
}

test("512 MiB in and out, streamed: same bytes, peak RSS growth under 96 MiB", async (t) => {
  const before = memoryOf(dp.pid).hwm;
  const sent = createHash("sha256");
  const status = await new Promise<number>((resolve, reject) => {
    const req = request(dp.url("default", "/big/blob.bin"), { method: "PUT", agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on("error", reject);
    pipeline(Readable.from(chunks(sent)), req).catch(reject);
  });
  assert.equal(status, 201);
  assert.equal(statSync(join(root, "blob.bin")).size, SIZE);

  const got = createHash("sha256");
  let size = 0;
  await new Promise<void>((resolve, reject) => {
    request(dp.url("default", "/big/blob.bin"), { agent: false }, (res) => {
      assert.equal(res.statusCode, 200);
      res.on("data", (c: Buffer) => {
        size += c.length;
        got.update(c);
      });
      res.on("end", resolve);
      res.on("error", reject);
    })
      .on("error", reject)
      .end();
  });
  assert.equal(size, SIZE);
  assert.equal(got.digest("hex"), sent.digest("hex"));
  const growth = memoryOf(dp.pid).hwm - before;
  t.diagnostic(`peak RSS growth: ${(growth / 1048576).toFixed(1)} MiB for ${SIZE / 1048576} MiB each way`);
  assert.ok(growth < LIMIT, `peak RSS grew ${(growth / 1048576).toFixed(1)} MiB`);
});
