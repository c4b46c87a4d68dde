/**
 * Regression for nodejs/undici#5360: an upstream that answers with `Connection: close` and closes
 * while the response body waits on backpressure must not end the process. undici 7 died there with
 * an AssertionError from the socket's 'end' handler (Harmony patched it at install until the move to
 * Node 24); undici 8 carries the upstream fix (nodejs/undici#5474), unpatched. Each framing
 * (Content-Length, chunked, EOF-delimited) runs in a child process with the data plane's own undici
 * against a real server on loopback.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { ROOT, run } from "./helpers.js";

const CHILD = `
import { createServer } from "node:net";
import { Pool } from "undici";
const BODY = Buffer.alloc(64 * 1024, 0x61);
const kind = process.argv[1];
const server = createServer((sock) => {
  sock.once("data", () => {
    const framing = kind === "length" ? "Content-Length: " + BODY.length + "\\r\\n" : kind === "chunked" ? "Transfer-Encoding: chunked\\r\\n" : "";
    sock.write("HTTP/1.1 200 OK\\r\\n" + framing + "Connection: close\\r\\n\\r\\n");
    if (kind === "chunked") sock.write(BODY.length.toString(16) + "\\r\\n" + BODY.toString() + "\\r\\n0\\r\\n\\r\\n");
    else sock.write(BODY);
    setTimeout(() => sock.end(), 200); // FIN only after the client's parser has paused on the body
  });
});
server.listen(0, "127.0.0.1", async () => {
  const pool = new Pool("http://127.0.0.1:" + server.address().port);
  const res = await pool.request({ path: "/", method: "GET" });
  await new Promise((r) => setTimeout(r, 600)); // the body is not read: backpressure pauses the parser
  let n = 0;
  for await (const c of res.body) n += c.length;
  process.stdout.write(String(n));
  await pool.close();
  server.close();
});
`;

test("the data plane runs undici 8 or newer (the line with the #5360 fix), as installed: no patch", () => {
  const req = createRequire(join(ROOT, "dataplane", "package.json"));
  const pkgFile = req.resolve("undici/package.json");
  const { version } = JSON.parse(readFileSync(pkgFile, "utf8")) as { version: string };
  assert.ok(Number(version.split(".")[0]) >= 8, `undici ${version}`);
  const h1 = readFileSync(join(pkgFile, "..", "lib/dispatcher/client-h1.js"), "utf8");
  assert.ok(!h1.includes("harmony: nodejs/undici#5360"), "undici carries Harmony's old install-time patch");
});

for (const kind of ["length", "chunked", "eof"]) {
  test(`a peer closing under backpressure (${kind}): the whole body arrives, the process lives`, async () => {
    // Run from dataplane/ so "undici" resolves exactly as the data plane's does.
    const r = await run(process.execPath, ["--input-type=module", "-e", CHILD, kind], {
      env: { ...process.env, NODE_OPTIONS: "" },
      cwd: join(ROOT, "dataplane"),
    });
    assert.equal(r.code, 0, r.stderr.slice(-800));
    assert.equal(r.stdout, String(64 * 1024));
  });
}
