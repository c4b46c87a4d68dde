/**
 * The `storage` backend on S3-compatible object storage (moto's server): `root = "s3://bucket/prefix"`
 * with Harmony's option names (region, endpoint, access_key_id, secret_access_key — here from a
 * file). A PUT lands under the prefix and is read back whole, by range and by HEAD; a write past
 * max_object_bytes is 413 and leaves no object; a STOW-RS body is written instance by instance;
 * an unreachable bucket is a 502 problem, not a crash; the secret never reaches the log.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { GetObjectCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { startS3, type S3Peer } from "./peers/s3-server.js";
import { SAMPLES } from "./peers/dicom-peers.js";
import { uidsOf } from "./dicom-files.js";
import { baseConfig, http, startDataplane, writeTree, type Dataplane } from "../dataplane/test/helpers.js";
import { rawExchange } from "./hostile/harness.js";

const SECRET = "testing";
const MR = readFileSync(join(SAMPLES, "MR_small.dcm"));

let s3: S3Peer;
let dp: Dataplane;

const pipeline = (name: string, prefix: string, options: string) => `
[pipelines.${name}]
networks = ["default"]
endpoints = ["${name}_in"]
backends = ["${name}_out"]

[endpoints.${name}_in]
service = "http"
options = { path_prefix = "${prefix}" }

[backends.${name}_out]
service = "storage"
[backends.${name}_out.options]
${options}
`;

before(async () => {
  s3 = await startS3();
  const creds = `access_key_id = "testing"\nsecret_access_key_file = "s3-secret"`;
  const dir = writeTree({
    "s3-secret": `${SECRET}\n`,
    "config.toml": baseConfig(
      pipeline(
        "objects",
        "/objects",
        `root = "s3://${s3.bucket}/site-a"\nregion = "us-east-1"\nendpoint = "${s3.endpoint}"\n${creds}\nwrite_pattern = "{path}"\nmax_object_bytes = 100000`,
      ) +
        pipeline(
          "dicom",
          "/dicom",
          `root = "s3://${s3.bucket}/archive/"\nendpoint = "${s3.endpoint}"\n${creds}\nwrite_pattern = "{file}"`,
        ) +
        pipeline(
          "gone",
          "/gone",
          `root = "s3://${s3.bucket}/x"\nendpoint = "http://127.0.0.1:9"\n${creds}\nwrite_pattern = "{path}"`,
        ),
    ),
  });
  dp = await startDataplane(join(dir, "config.toml"));
});

after(async () => {
  await dp?.stop();
  await s3?.stop();
});

async function keys(prefix: string): Promise<string[]> {
  const r = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }));
  return (r.Contents ?? []).map((o) => o.Key!).sort();
}

test("a PUT lands under the prefix; GET reads it back whole, by range and by HEAD", async () => {
  const body = Buffer.from("0123456789".repeat(1000));
  const w = await http(dp.url("default", "/objects/reports/r1.txt"), { method: "PUT", body });
  assert.equal(w.status, 201, w.text);
  assert.equal(w.headers.location, "/objects/reports/r1.txt");
  assert.deepEqual(await keys("site-a/"), ["site-a/reports/r1.txt"]);
  const obj = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: "site-a/reports/r1.txt" }));
  assert.equal(await obj.Body!.transformToString(), body.toString());

  const r = await http(dp.url("default", "/objects/reports/r1.txt"));
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, body);
  const part = await http(dp.url("default", "/objects/reports/r1.txt"), { headers: { range: "bytes=-5" } });
  assert.equal(part.status, 206);
  assert.equal(part.headers["content-range"], `bytes 9995-9999/${body.length}`);
  assert.equal(part.text, "56789");
  const head = await http(dp.url("default", "/objects/reports/r1.txt"), { method: "HEAD" });
  assert.equal(head.headers["content-length"], String(body.length));
  assert.equal((await http(dp.url("default", "/objects/reports/none.txt"))).status, 404);
});

test("a write past max_object_bytes is 413 and leaves no object", async () => {
  const r = await new Promise<number>((resolve, reject) => {
    void import("node:http").then(({ request }) => {
      // Chunked, so the limit is found while streaming to the bucket.
      const req = request(dp.url("default", "/objects/big.bin"), { method: "PUT", agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on("error", reject);
      req.write(Buffer.alloc(60000, 1));
      setImmediate(() => req.end(Buffer.alloc(60000, 2)));
    });
  });
  assert.equal(r, 413);
  assert.ok(!(await keys("site-a/")).includes("site-a/big.bin"));
});

test("a STOW-RS body is stored instance by instance as archive/{study}/{sop}.dcm", async () => {
  const u = uidsOf(MR);
  const b = "s3-boundary";
  const r = await http(dp.url("default", "/dicom/studies"), {
    method: "POST",
    headers: { "content-type": `multipart/related; type="application/dicom"; boundary=${b}` },
    body: Buffer.concat([
      Buffer.from(`--${b}\r\nContent-Type: application/dicom\r\n\r\n`),
      MR,
      Buffer.from(`\r\n--${b}--\r\n`),
    ]),
  });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(await keys("archive/"), [`archive/${u.study}/${u.sop}.dcm`]);
  const back = await http(dp.url("default", `/dicom/${u.study}/${u.sop}.dcm`));
  assert.deepEqual(back.body, MR);
});

test("an unreachable bucket is a 502 problem and the data plane keeps serving; no secret in the log", async () => {
  const r = await http(dp.url("default", "/gone/a.txt"), { method: "PUT", body: "x", agent: false });
  assert.equal(r.status, 502, r.text);
  assert.match(String(r.headers["content-type"]), /problem\+json/);
  const g = await http(dp.url("default", "/gone/a.txt"));
  assert.equal(g.status, 502);
  assert.equal(
    (await http(dp.url("default", "/objects/reports/none.txt"))).status,
    404,
    "the other pipelines still answer",
  );
  const log = dp.logs.map((l) => JSON.stringify(l)).join("\n") + dp.stderr();
  assert.ok(!log.includes(`secret_access_key":"${SECRET}`) && !log.includes(`"${SECRET}"`), "the secret was logged");
});

test("an upload the client abandons halfway is aborted: no object, and the data plane keeps serving", async () => {
  const r = await rawExchange(
    dp.ports.default!,
    ["PUT /objects/partial.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 90000\r\n\r\n", Buffer.alloc(5000, 7), 100],
    300,
  );
  assert.equal(r.status, undefined, "no answer is due before the body is complete");
  // The request ends (499, client closed) rather than waiting forever on a body that will not come.
  const line = await dp.waitForLog((l) => l.message === "access" && l.path === "/objects/partial.bin", 30_000);
  assert.equal(line.status, 499);
  assert.ok(!(await keys("site-a/")).includes("site-a/partial.bin"), "an abandoned upload left an object");
  assert.equal((await http(dp.url("default", "/objects/reports/none.txt"))).status, 404);
});
