/**
 * The `storage` backend on a filesystem root, over real sockets: POST/PUT write with a Location a
 * GET reads back (whole, one range, HEAD), patterns expand {uuid}, {path} and JSON body fields,
 * writes past max_object_bytes are 413 and leave nothing behind, a backend without write_pattern
 * refuses writes, and a bad pattern is a config error.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { baseConfig, http, runCli, startDataplane, tempDir, writeTree, type Dataplane } from "./helpers.js";

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

let dp: Dataplane;
let root: string;
let dir: string;

before(async () => {
  root = tempDir("harmony-storage-");
  dir = writeTree({
    "config.toml": baseConfig(
      pipeline("files", "/files", `root = "${root}/files"\nwrite_pattern = "{path}"\nmax_object_bytes = 1000`) +
        pipeline("docs", "/docs", `root = "${root}/docs"\nwrite_pattern = "{PatientID}/{uuid}.json"`) +
        pipeline("ro", "/ro", `root = "${root}/files"`) +
        pipeline(
          "tenant",
          "/tenant",
          `root = "${root}/tenants"\nwrite_pattern = "{tenant}/{timestamp}-{uuid}.bin"`,
        ).replace('backends = ["tenant_out"]', 'middleware = ["tenant_meta"]\nbackends = ["tenant_out"]') +
        `
[middleware.tenant_meta]
type = "metadata_transform"
options = { spec_path = "tenant.json" }
`,
    ),
    // The tenant comes from a request header, through middleware metadata.
    "transforms/tenant.json": JSON.stringify([
      { operation: "shift", spec: { headers: { "x-tenant": "metadata.tenant" } } },
    ]),
  });
  dp = await startDataplane(join(dir, "config.toml"));
});

after(async () => {
  await dp?.stop();
});

test("PUT writes the body where the pattern says; GET reads it back, whole and by range", async () => {
  const body = Buffer.from("hello, storage backend");
  const w = await http(dp.url("default", "/files/a/b%20c.txt"), { method: "PUT", body });
  assert.equal(w.status, 201, w.text);
  assert.equal(w.headers.location, "/files/a/b%20c.txt");
  assert.deepEqual(w.json(), {
    status: "stored",
    path: "a/b c.txt",
    location: "/files/a/b%20c.txt",
    bytes: body.length,
  });
  assert.deepEqual(readFileSync(join(root, "files/a/b c.txt")), body);
  // No temporary file is left beside it.
  assert.deepEqual(readdirSync(join(root, "files/a")), ["b c.txt"]);

  const r = await http(dp.url("default", w.headers.location));
  assert.equal(r.status, 200);
  assert.equal(r.headers["content-type"], "text/plain; charset=utf-8");
  assert.deepEqual(r.body, body);

  const part = await http(dp.url("default", w.headers.location), { headers: { range: "bytes=7-13" } });
  assert.equal(part.status, 206);
  assert.equal(part.headers["content-range"], `bytes 7-13/${body.length}`);
  assert.equal(part.text, "storage");

  const outside = await http(dp.url("default", w.headers.location), { headers: { range: "bytes=500-" } });
  assert.equal(outside.status, 416);
  assert.equal(outside.headers["content-range"], `bytes */${body.length}`);

  const head = await http(dp.url("default", w.headers.location), { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(head.headers["content-length"], String(body.length));
  assert.equal(head.body.length, 0);

  // A second PUT replaces the object.
  assert.equal((await http(dp.url("default", "/files/a/b%20c.txt"), { method: "PUT", body: "v2" })).status, 201);
  assert.equal((await http(dp.url("default", "/files/a/b%20c.txt"))).text, "v2");
});

test("a missing object is a 404 problem", async () => {
  const r = await http(dp.url("default", "/files/nothing/here.bin"));
  assert.equal(r.status, 404);
  assert.match(String(r.headers["content-type"]), /application\/problem\+json/);
});

test("write_pattern fields come from the JSON body; {uuid} makes a new name per write", async () => {
  const doc = JSON.stringify({ PatientID: "P-17", note: "x" });
  const headers = { "content-type": "application/json" };
  const a = await http(dp.url("default", "/docs"), { method: "POST", body: doc, headers });
  const b = await http(dp.url("default", "/docs"), { method: "POST", body: doc, headers });
  assert.equal(a.status, 201, a.text);
  assert.equal(b.status, 201, b.text);
  const pa = (a.json() as { path: string }).path;
  const pb = (b.json() as { path: string }).path;
  assert.match(pa, /^P-17\/[0-9a-f-]{36}\.json$/);
  assert.notEqual(pa, pb);
  assert.equal(readFileSync(join(root, "docs", pa), "utf8"), doc);
  assert.equal(readdirSync(join(root, "docs/P-17")).length, 2);

  // A body without the field cannot be placed: 400, nothing written.
  const c = await http(dp.url("default", "/docs"), { method: "POST", body: "{}", headers });
  assert.equal(c.status, 400);
  assert.match(c.text, /PatientID/);
});

test("a write past max_object_bytes is 413 and leaves no file, declared or streamed", async () => {
  const big = Buffer.alloc(1001, 0x61);
  const declared = await http(dp.url("default", "/files/big.bin"), { method: "PUT", body: big, agent: false });
  assert.equal(declared.status, 413);
  const chunked = await new Promise<number>((resolve, reject) => {
    // No content-length: the limit is found while streaming.
    void import("node:http").then(({ request }) => {
      const req = request(dp.url("default", "/files/big2.bin"), { method: "PUT", agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on("error", reject);
      req.write(big.subarray(0, 600));
      setImmediate(() => req.end(big.subarray(600)));
    });
  });
  assert.equal(chunked, 413);
  const left = readdirSync(join(root, "files"));
  assert.ok(!left.some((f) => f.includes("big")), `left behind: ${left.join(", ")}`);
});

test("a backend without write_pattern reads but refuses writes with 405", async () => {
  assert.equal((await http(dp.url("default", "/files/ro.txt"), { method: "PUT", body: "ro" })).status, 201);
  const r = await http(dp.url("default", "/ro/ro.txt"));
  assert.equal(r.text, "ro");
  const w = await http(dp.url("default", "/ro/new.txt"), { method: "PUT", body: "x", agent: false });
  assert.equal(w.status, 405);
  assert.equal(w.headers.allow, "GET, HEAD");
  assert.ok(!existsSync(join(root, "files/new.txt")));
  const d = await http(dp.url("default", "/files/a/b%20c.txt"), { method: "DELETE", agent: false });
  assert.equal(d.status, 405);
});

test("--check refuses patterns that leave the root, and s3 roots without a bucket", async () => {
  for (const [pattern, why] of [
    ["../{uuid}", /segment starts with '\.'/],
    ["/etc/{uuid}", /absolute/],
    ["a//{uuid}", /empty segment/],
    ["{uuid", /brace/],
  ] as const) {
    const d = writeTree({ "config.toml": baseConfig(pipeline("p", "/p", `root = "x"\nwrite_pattern = "${pattern}"`)) });
    const r = await runCli(["--check", "--config", join(d, "config.toml")]);
    assert.notEqual(r.code, 0, pattern);
    assert.match(r.stdout + r.stderr, why, pattern);
  }
  // A valid config checks without touching the disk: the root is made on first use, not at load.
  const ok = writeTree({
    "config.toml": baseConfig(pipeline("p", "/p", `root = "archive"\nwrite_pattern = "{file}"`)),
  });
  const checked = await runCli(["--check", "--config", join(ok, "config.toml")]);
  assert.equal(checked.code, 0, checked.stdout + checked.stderr);
  assert.ok(!existsSync(join(ok, "archive")), "--check created the root");
  const d = writeTree({ "config.toml": baseConfig(pipeline("p", "/p", `root = "s3://"`)) });
  const r = await runCli(["--check", "--config", join(d, "config.toml")]);
  assert.notEqual(r.code, 0);
  assert.match(r.stdout + r.stderr, /s3:\/\/bucket/);
});

test("metadata keys set by middleware fill the pattern; {timestamp} is RFC 3339; a hostile value is a 400", async () => {
  const t0 = Date.now();
  const w = await http(dp.url("default", "/tenant"), { method: "POST", body: "data", headers: { "x-tenant": "acme" } });
  assert.equal(w.status, 201, w.text);
  const rel = (w.json() as { path: string }).path;
  const m = /^acme\/(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)-[0-9a-f-]{36}\.bin$/.exec(rel);
  assert.ok(m, rel);
  const t = Date.parse(m[1]!);
  assert.ok(t >= t0 && t <= Date.now(), "the timestamp is the time of the write");
  assert.equal(readFileSync(join(root, "tenants", rel), "utf8"), "data");
  for (const tenant of ["..", "../../etc", "/abs", ".hidden"]) {
    const r = await http(dp.url("default", "/tenant"), { method: "POST", body: "x", headers: { "x-tenant": tenant } });
    assert.equal(r.status, 400, `${tenant}: ${r.text}`);
    assert.match(String(r.headers["content-type"]), /problem\+json/);
  }
  assert.deepEqual(readdirSync(join(root, "tenants")), ["acme"]);
});
