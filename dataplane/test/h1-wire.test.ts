/**
 * The llhttp engine's request head (dataplane/src/http1/wire.ts) on its own: header names are
 * checked once and remembered (a per-request cost cut), so what it remembers must never let a bad
 * name or value through, on the first request or any later one, and the special names (host,
 * content-length, the hop-by-hop ones) keep their meaning in any letter case. The same head over
 * real sockets, against undici, is dataplane/test/h1-differential.test.ts.
 */
import { describe, it, test } from "node:test";
import { PassThrough, Readable } from "node:stream";
import assert from "node:assert/strict";
import { errors } from "undici";
import type { Dispatcher } from "undici";
import { frame, serialize } from "../src/http1/wire.js";

const head = (headers: Dispatcher.DispatchOptions["headers"], body: Buffer | null = null, method = "GET") =>
  frame(serialize({ method, path: "/p", headers, body }, "up:80"));

test("ordinary headers in order after host and connection; repeated ones as several lines", () => {
  for (let round = 0; round < 3; round++) {
    // The same names again: the second and third heads come from the remembered names.
    assert.equal(
      head({ "x-a": "1", "X-Multi": ["one", "two"], accept: "*/*" }),
      "GET /p HTTP/1.1\r\nhost: up:80\r\nconnection: keep-alive\r\nx-a: 1\r\nX-Multi: one\r\nX-Multi: two\r\naccept: */*\r\n\r\n",
    );
  }
  assert.equal(
    head(["x-b", "2", "x-b", "3"]),
    "GET /p HTTP/1.1\r\nhost: up:80\r\nconnection: keep-alive\r\nx-b: 2\r\nx-b: 3\r\n\r\n",
  );
});

test("host and content-length in any case are taken, not written twice; a host per request", () => {
  assert.match(head({ Host: "a.example" }), /^GET \/p HTTP\/1.1\r\nhost: a.example\r\nconnection: keep-alive\r\n\r\n$/);
  // The next request without one gets the pool's default, not the previous request's.
  assert.match(head({ "x-c": "1" }), /\r\nhost: up:80\r\n/);
  assert.match(head({ HOST: "b.example" }), /\r\nhost: b.example\r\n/);
  const h = head({ "Content-Length": "3" }, Buffer.from("abc"), "POST");
  assert.equal(h.match(/content-length/gi)?.length, 1, h);
  assert.match(h, /\r\ncontent-length: 3\r\n\r\n$/);
  // And the next request's length is its own.
  assert.match(head({}, Buffer.from("abcdef"), "PUT"), /\r\ncontent-length: 6\r\n\r\n$/);
  assert.throws(
    () => head({ "content-length": "5" }, Buffer.from("abc"), "POST"),
    errors.RequestContentLengthMismatchError,
  );
});

test("a bad name or value is refused every time, however often a good one was seen", () => {
  for (let round = 0; round < 3; round++) {
    assert.throws(() => head({ "bad name": "1" }), errors.InvalidArgumentError);
    assert.throws(() => head({ "x-ok": "a\r\nx-evil: 1" }), errors.InvalidArgumentError);
    assert.throws(() => head({ "x-ok": ["fine", "bad\n"] }), errors.InvalidArgumentError);
    assert.throws(() => head({ Connection: "close" }), errors.InvalidArgumentError);
    assert.throws(() => head({ "transfer-encoding": "chunked" }), errors.InvalidArgumentError);
    assert.throws(() => head({ "Keep-Alive": "timeout=5" }), errors.InvalidArgumentError);
    assert.throws(() => head({ upgrade: "h2c" }), errors.InvalidArgumentError);
    assert.throws(() => head({ Expect: "100-continue" }), errors.NotSupportedError);
    assert.throws(() => head({ "content-length": "x" }, Buffer.from("a"), "POST"), errors.InvalidArgumentError);
    assert.match(head({ "x-ok": "fine" }), /\r\nx-ok: fine\r\n/);
  }
});

describe("the request head's framing", () => {
  it("a body that is a Buffer or none is framed once, at serialize; a retry sends the same head", () => {
    for (const [body, method, tail] of [
      [null, "GET", "\r\n\r\n"],
      [null, "POST", "\r\ncontent-length: 0\r\n\r\n"],
      [Buffer.from("abc"), "POST", "\r\ncontent-length: 3\r\n\r\n"],
      [Buffer.alloc(0), "PUT", "\r\ncontent-length: 0\r\n\r\n"],
    ] as const) {
      const out = serialize({ method, path: "/p", headers: { "x-a": "1" }, body }, "up:80");
      const first = frame(out);
      assert.ok(first.endsWith(`x-a: 1${tail}`), JSON.stringify(first));
      assert.equal(frame(out), first);
    }
  });

  it("a stream is framed when sent: its length if it has ended by then, else chunked", () => {
    const ended = new Readable({ read() {} });
    ended.push(Buffer.from("hello"));
    ended.push(null);
    const a = serialize({ method: "POST", path: "/p", headers: {}, body: ended }, "up:80");
    assert.match(frame(a), /\r\ncontent-length: 5\r\n\r\n$/);
    const open = new PassThrough();
    open.write("part");
    const b = serialize({ method: "POST", path: "/p", headers: {}, body: open }, "up:80");
    assert.match(frame(b), /\r\ntransfer-encoding: chunked\r\n\r\n$/);
    const counted = new PassThrough();
    const c = serialize({ method: "POST", path: "/p", headers: { "content-length": "9" }, body: counted }, "up:80");
    assert.match(frame(c), /\r\ncontent-length: 9\r\n\r\n$/);
    const empty = new Readable({ read() {} });
    empty.push(null);
    const d = serialize({ method: "GET", path: "/p", headers: {}, body: empty }, "up:80");
    assert.match(frame(d), /\r\nconnection: keep-alive\r\n\r\n$/, "an empty stream on a GET: no framing header");
    assert.equal(d.body, null);
  });
});
