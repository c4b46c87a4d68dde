/**
 * Attacks on the `storage` backend's paths: every pattern expansion must stay below the root.
 * Request paths (raw sockets: dot segments, encoded and double-encoded, NUL, backslashes, encoded
 * slashes), pattern values from a JSON body (a generated corpus of traversal pieces, absolute
 * paths, NUL and control characters, huge names), and symbolic links planted inside the root
 * (pointing at a directory and at a file outside it). After each: nothing appeared or changed
 * outside the root, the secret outside it never shows in a reply, no descriptor leaked, and the
 * data plane still serves.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, readdirSync, realpathSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { isAbsolute, join, relative } from "node:path";
import { baseConfig, http, startDataplane, tempDir, writeTree, type Dataplane } from "../../dataplane/test/helpers.js";
import { assertStillServes, fdCount, rawExchange } from "./harness.js";

const SECRET = "TOP-SECRET-OUTSIDE-THE-ROOT";

let dp: Dataplane;
let base: string;
let root: string;
let outside: string;

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

/** Every file below `dir`, relative to it (links listed, not followed). */
const tree = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? tree(join(dir, d.name)).map((f) => `${d.name}/${f}`) : [d.name],
  );

before(async () => {
  base = realpathSync(tempDir("harmony-storage-hostile-"));
  root = join(base, "root");
  outside = join(base, "outside");
  mkdirSync(join(root, "files"), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(outside, "secret.txt"), SECRET);
  writeFileSync(join(root, "files", "ok.txt"), "ok");
  // Links planted inside the root, as a compromised neighbour or a careless operator might.
  symlinkSync(outside, join(root, "files", "dirlink"));
  symlinkSync(join(outside, "secret.txt"), join(root, "files", "filelink"));
  const dir = writeTree({
    "config.toml": baseConfig(
      pipeline("files", "/files", `root = "${root}/files"\nwrite_pattern = "{path}"`) +
        pipeline("named", "/named", `root = "${root}/named"\nwrite_pattern = "{name}/{uuid}.bin"`) +
        pipeline("exact", "/exact", `root = "${root}/named"\nwrite_pattern = "{name}"\nread_pattern = "{name}"`),
    ),
  });
  dp = await startDataplane(join(dir, "config.toml"));
});

after(async () => {
  await dp?.stop();
});

function assertOutsideUntouched(): void {
  assert.deepEqual(readdirSync(base).sort(), ["outside", "root"], "something was created beside the root");
  assert.deepEqual(tree(outside), ["secret.txt"], "something was created outside the root");
  assert.equal(readFileSync(join(outside, "secret.txt"), "utf8"), SECRET, "the file outside the root changed");
}

test("request paths cannot climb out: dot segments, encodings, NUL, backslashes, encoded slashes", async () => {
  const port = dp.ports.default!;
  const attempts = [
    "/files/../outside/secret.txt",
    "/files/%2e%2e/%2e%2e/outside/secret.txt",
    "/files/%2E%2E%2Foutside%2Fsecret.txt",
    "/files/%252e%252e/%252e%252e/outside/secret.txt",
    "/files/..%5c..%5coutside%5csecret.txt",
    "/files/..\\..\\outside\\secret.txt",
    "/files/ok.txt%00.png",
    "/files/%c0%ae%c0%ae/outside/secret.txt",
    "/files/.hidden",
    "/files/dirlink/secret.txt",
    "/files/filelink",
    `/files/${"a".repeat(300)}`,
    `/files/${"abcdefgh/".repeat(130)}x`,
  ];
  for (const path of attempts) {
    for (const method of ["GET", "PUT"]) {
      const body = method === "PUT" ? "pwned" : "";
      const r = await rawExchange(port, [
        `${method} ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
      ]);
      assert.ok(!r.text.includes(SECRET), `${method} ${path} leaked the secret`);
      if (r.status === 201) {
        // Only a name that is harmless once decoded may be stored (a double-encoded "%2e%2e" is a
        // file literally called that), and then below the root.
        const rel = (JSON.parse(r.text.slice(r.text.indexOf("\r\n\r\n") + 4)) as { path: string }).path;
        assert.ok(statSync(join(root, "files", rel)).isFile(), `${path} stored ${rel}`);
        assert.ok(!rel.split("/").includes(".."), `${path} stored ${rel}`);
        continue;
      }
      assert.ok(r.status !== undefined && r.status >= 400 && r.status < 500, `${method} ${path} → ${r.status}`);
    }
  }
  assertOutsideUntouched();
  await assertStillServes(dp, "default", "/files/ok.txt");
});

test("symbolic links inside the root are never followed, for reads or writes", async () => {
  symlinkSync(outside, join(root, "files", "dl"));
  symlinkSync(join(outside, "secret.txt"), join(root, "files", "fl"));
  symlinkSync(outside, join(root, "files", "dl2"));
  assert.equal((await http(dp.url("default", "/files/dl/secret.txt"))).status, 404);
  assert.equal((await http(dp.url("default", "/files/fl"))).status, 404);
  const through = await http(dp.url("default", "/files/dl/new.txt"), { method: "PUT", body: "x", agent: false });
  assert.equal(through.status, 409);
  assert.match(through.text, /symbolic link/);
  const deeper = await http(dp.url("default", "/files/dl2/a/b.txt"), { method: "PUT", body: "x", agent: false });
  assert.equal(deeper.status, 409);
  // Writing at a link's own name replaces the link with a file; the target is untouched.
  const over = await http(dp.url("default", "/files/fl"), { method: "PUT", body: "replaced", agent: false });
  assert.equal(over.status, 201);
  assert.equal((await http(dp.url("default", "/files/fl"))).text, "replaced");
  assertOutsideUntouched();
  await assertStillServes(dp, "default", "/files/ok.txt");
});

/** Pieces a traversal is built from, and the corpus: every pair, joined a few ways. */
const PIECES = [
  "..",
  ".",
  "",
  "/",
  "\\",
  "..\\..",
  "%2e%2e",
  "\u0000",
  "a\u0000b",
  "\n",
  "\u007f",
  "..\u0000",
  "\uff0e\uff0e", // fullwidth dots: not dots to the filesystem
  "\u2024\u2024", // one-dot leaders
  "/etc/passwd",
  "~",
  "x".repeat(256),
  "y".repeat(600),
  "ok",
  "../outside",
  "....//",
];

function* corpus(): Generator<string> {
  for (const a of PIECES)
    for (const b of PIECES) {
      yield a + b;
      yield `${a}/${b}`;
    }
  yield "z/".repeat(600);
}

test("a generated corpus of pattern values: each write is confined (201 below the root) or refused (400/409)", async () => {
  const fdBefore = await fdCount(dp.pid);
  let stored = 0;
  let refused = 0;
  for (const name of corpus()) {
    for (const prefix of ["/named", "/exact"]) {
      const r = await http(dp.url("default", prefix), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name }),
      });
      // 409: the exact name is a directory the other pipeline made (same root); also refused.
      assert.ok([201, 400, 409].includes(r.status), `${JSON.stringify(name)} → ${r.status} ${r.text}`);
      assert.match(String(r.headers["content-type"]), r.status === 201 ? /json/ : /problem\+json/);
      if (r.status !== 201) {
        refused++;
        continue;
      }
      stored++;
      const rel = (r.json() as { path: string }).path;
      const abs = join(root, "named", rel);
      const up = relative(join(root, "named"), abs);
      assert.ok(up !== ".." && !up.startsWith("../") && !isAbsolute(up), `${JSON.stringify(name)} wrote ${abs}`);
      assert.ok(statSync(abs).isFile());
    }
  }
  assert.ok(stored > 0 && refused > 0, `stored ${stored}, refused ${refused}`);
  // A read with a hostile value is refused the same way, and never shows the secret.
  const read = await http(dp.url("default", "/exact"), {
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "../../outside/secret.txt" }),
  });
  assert.equal(read.status, 400);
  assert.ok(!read.text.includes(SECRET));
  assertOutsideUntouched();
  // No temporary files are left, and no descriptor leaked.
  assert.ok(!tree(join(root, "named")).some((f) => f.endsWith(".part")), "a temporary file was left behind");
  const fdAfter = await fdCount(dp.pid);
  assert.ok(fdAfter <= fdBefore + 4, `descriptors ${fdBefore} → ${fdAfter}`);
  await assertStillServes(dp, "default", "/files/ok.txt");
});

test("a client that stops halfway through a write leaves nothing behind", async () => {
  const port = dp.ports.default!;
  const r = await rawExchange(
    port,
    ["PUT /files/partial.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n", Buffer.alloc(5000, 1), 200],
    400,
  );
  assert.equal(r.status, undefined, "no answer is due before the body is complete");
  // The server sees the close; give it its turn, then check the directory.
  for (let i = 0; i < 50 && tree(join(root, "files")).some((f) => f.includes("partial")); i++)
    await new Promise((res) => setTimeout(res, 100));
  assert.ok(!tree(join(root, "files")).some((f) => f.includes("partial")), tree(join(root, "files")).join(", "));
  await assertStillServes(dp, "default", "/files/ok.txt");
});
