/**
 * The undici the data plane runs carries the fix for nodejs/undici#5360 (scripts/patch-undici.mjs):
 * an upstream that answers with `Connection: close` and closes while the response body waits on
 * backpressure must not end the process. Each framing (Content-Length, chunked, EOF-delimited) is
 * run in a child process with the data plane's own undici against a real server on loopback; an
 * unpatched undici dies there with an AssertionError from the socket's 'end' handler.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT, run } from "./helpers.js";
import { undiciFixApplied } from "../src/runtime/undici-fix.js";

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

test("the installed undici has the fix", () => {
  assert.ok(undiciFixApplied(), "run node scripts/patch-undici.mjs");
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
