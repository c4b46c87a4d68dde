/**
 * The llhttp lane's own response writer (http1/server/response.ts) against node:http, byte for byte:
 * the head forms the differential corpus has few of (status texts, 304, HEAD, multi-value fields,
 * Set-Cookie and Cookie lists, Latin-1 values, an upstream's Connection: close or Date, empty
 * chunked answers, HTTP/1.0 clients with and without keep-alive or TE: chunked), and the lane's
 * reader on later heads of a kept-alive connection (it no longer starts its parser afresh per head:
 * limits, bad heads, empty lines and heads split inside their final CRLF CRLF). Two data planes on
 * one upstream, `http1_server = "llhttp"` and `"node"`; a case the lane should serve must not be
 * handed off (harmony_http1_lane_handoffs_total).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { baseConfig, proxyPipeline, startDataplane, startUpstream, stopAll, writeTree } from "./helpers.js";
import type { Dataplane } from "./helpers.js";
import { exchange, handoffs } from "./lane-exchange.js";

const stops: (() => unknown)[] = [];
let lane: Dataplane;
let node: Dataplane;

/** Raw header lists (name, value, ...) and body per upstream path. */
const answers: Record<string, { status: number; headers: string[]; body?: Buffer | string }> = {
  "/teapot": { status: 418, headers: ["Content-Length", "2"], body: "ok" },
  "/unknown": { status: 299, headers: ["Content-Length", "2"], body: "ok" },
  "/notmod": { status: 304, headers: ["ETag", '"v1"', "Content-Length", "10"] },
  "/nothing": { status: 204, headers: ["X-A", "1"] },
  "/multi": {
    status: 200,
    headers: [
      "X-Multi",
      "a",
      "X-Multi",
      "b",
      "Set-Cookie",
      "s=1; Path=/",
      "Set-Cookie",
      "t=2",
      "Cookie",
      "c=1",
      "Cookie",
      "d=2",
      "Content-Length",
      "1",
    ],
    body: "m",
  },
  "/close": { status: 200, headers: ["Connection", "close", "Content-Length", "2"], body: "ok" },
  "/keepalive": { status: 200, headers: ["Keep-Alive", "timeout=3", "Content-Length", "2"], body: "ok" },
  "/latin": {
    status: 200,
    // Content-Disposition before the length: after it, node converts a value to Latin-1 bytes and
    // then refuses one with a byte past 0x7f (its own upstream server would throw here).
    headers: [
      "X-Latin",
      "caf\u00e9",
      "Content-Disposition",
      'attachment; filename="caf\u00e9.txt"',
      "Content-Length",
      "2",
    ],
    body: Buffer.from("ok"),
  },
  "/date": { status: 200, headers: ["Date", "Mon, 01 Jan 2001 00:00:00 GMT", "Content-Length", "2"], body: "ok" },
  "/empty": { status: 200, headers: [] },
  "/zero": { status: 200, headers: ["Content-Length", "0"] },
  "/created": { status: 201, headers: ["Location", "/x/1"], body: "made" },
};

before(async () => {
  const up = await startUpstream((req, res) => {
    const path = (req.url ?? "").replace(/^\/p/, "").replace(/\?.*$/, "");
    const a = answers[path];
    if (!a) return void res.writeHead(404, { "content-length": "0" }).end();
    res.writeHead(a.status, a.headers);
    res.end(a.body);
  });
  stops.push(() => up.close());
  const config = (engine: string) =>
    baseConfig(proxyPipeline("p", "/p", up.url)).replace(
      "[proxy]\n",
      `[proxy]\nhttp1_server = "${engine}"\nclient_keepalive_timeout_ms = 1500\n`,
    );
  [lane, node] = await Promise.all([
    startDataplane(join(writeTree({ "harmony.toml": config("llhttp") }), "harmony.toml")),
    startDataplane(join(writeTree({ "harmony.toml": config("node") }), "harmony.toml")),
  ]);
  stops.push(
    () => lane.stop(),
    () => node.stop(),
  );
});

after(() => stopAll(stops));

const stable = (t: string) =>
  t
    .replace(/^(date): (?!Mon, 01 Jan 2001).*$/gim, "$1: X")
    .replace(/^(x-request-id): .*$/gim, "$1: X")
    .replace(/urn:request:[\w-]+/g, "urn:request:X");

const req = (path: string, extra = "", version = "1.1", method = "GET") =>
  `${method} ${path} HTTP/${version}\r\nHost: a\r\n${extra}\r\n`;
const last = (path: string, method = "GET") => req(path, "Connection: close\r\n", "1.1", method);

async function same(parts: (string | number)[], served = true): Promise<string> {
  const before = await handoffs(lane);
  const [a, b] = await Promise.all([exchange(lane.ports.default!, parts), exchange(node.ports.default!, parts)]);
  assert.equal(stable(a), stable(b));
  if (served) assert.equal(await handoffs(lane), before, "the lane served it (no hand-off)");
  return a;
}

describe("the lane's head is node:http's", () => {
  const cases: [string, (string | number)[], RegExp][] = [
    ["a status text node knows (418)", [last("/p/teapot")], /^HTTP\/1\.1 418 I'm a Teapot\r\n/],
    ["a status node has no text for (299: unknown)", [last("/p/unknown")], /^HTTP\/1\.1 299 unknown\r\n/],
    ["304 with its validators and length, no body", [last("/p/notmod")], /^HTTP\/1\.1 304 Not Modified\r\n/],
    ["HEAD of a 304", [last("/p/notmod", "HEAD")], /^HTTP\/1\.1 304 /],
    ["204", [last("/p/nothing")], /^HTTP\/1\.1 204 No Content\r\n/],
    ["HEAD of a 204", [last("/p/nothing", "HEAD")], /^HTTP\/1\.1 204 /],
    ["repeated fields, Set-Cookie lines, Cookie joined", [last("/p/multi")], /^cookie: c=1; d=2\r$/m],
    ["HEAD of repeated fields", [last("/p/multi", "HEAD")], /^set-cookie: t=2\r$/m],
    ["an upstream's Connection: close (hop-by-hop)", [last("/p/close")], /^HTTP\/1\.1 200 OK\r\n/],
    ["an upstream's Keep-Alive (hop-by-hop)", [last("/p/keepalive")], /^HTTP\/1\.1 200 OK\r\n/],
    ["Latin-1 values", [last("/p/latin")], /^x-latin: caf\u00e9\r$/m],
    ["an upstream's Date, kept", [last("/p/date")], /^date: Mon, 01 Jan 2001 00:00:00 GMT\r$/m],
    ["an empty chunked answer", [last("/p/empty")], /\r\n\r\n0\r\n\r\n$/],
    ["a zero length", [last("/p/zero")], /^content-length: 0\r$/m],
    ["201 with a Location", [last("/p/created")], /^location: \/x\/1\r$/m],
    ["HTTP/1.0, a length", [req("/p/teapot", "", "1.0")], /^Connection: close\r$/m],
    ["HTTP/1.0, chunked upstream: close-delimited", [req("/p/empty", "", "1.0")], /^Connection: close\r$/m],
    [
      "HTTP/1.0 keep-alive, a length: kept, then a close",
      [req("/p/teapot", "Connection: keep-alive\r\n", "1.0"), 50, req("/p/multi", "", "1.0")],
      /^Connection: keep-alive\r\nKeep-Alive: timeout=1\r$/m,
    ],
    [
      "HTTP/1.0 keep-alive, chunked upstream: closed",
      [req("/p/empty", "Connection: keep-alive\r\n", "1.0")],
      /^Connection: close\r$/m,
    ],
    ["HTTP/1.0 with TE: chunked", [req("/p/empty", "TE: chunked\r\n", "1.0")], /^HTTP\/1\.1 200 OK\r\n/],
    ["HEAD over HTTP/1.0", [req("/p/teapot", "", "1.0", "HEAD")], /^HTTP\/1\.1 418 /],
    [
      "keep-alive: every form on one connection",
      [
        req("/p/multi"),
        req("/p/notmod"),
        req("/p/nothing", "", "1.1", "HEAD"),
        req("/p/empty"),
        req("/p/close"),
        req("/p/latin"),
        last("/p/unknown"),
      ],
      /299 unknown\r\n/,
    ],
    ["an upstream 404", [last("/p/none")], /^HTTP\/1\.1 404 Not Found\r\n/],
  ];
  for (const [name, parts, expect] of cases) {
    it(name, async () => {
      const got = await same(parts);
      assert.match(got, expect);
    });
  }
});

describe("the lane's reader on later heads of a connection", () => {
  const big = req("/p/teapot", `X-Big: ${"b".repeat(16 * 1024)}\r\n`);
  let many = "";
  for (let i = 0; i < 40; i++) many += `X-H-${i}: ${i}\r\n`;

  it("skips empty lines between pipelined requests", async () => {
    const t = await same([req("/p/teapot") + "\r\n\r\n\r\n" + last("/p/teapot?2")]);
    assert.equal(t.match(/418 I'm a Teapot/g)?.length, 2);
  });

  for (const k of [1, 2, 3]) {
    it(`takes a later head split ${k} byte(s) before its end`, async () => {
      const second = last("/p/teapot?split");
      const t = await same([req("/p/teapot"), 50, second.slice(0, -k), 50, second.slice(-k)]);
      assert.equal(t.match(/418 I'm a Teapot/g)?.length, 2);
    });
  }

  it("refuses a later head with a bad field name: 400, as node:http", async () => {
    const t = await same([req("/p/teapot"), 100, "GET /p/teapot HTTP/1.1\r\nHost: a\r\nBad Name: 1\r\n\r\n"], false);
    assert.match(t, /HTTP\/1\.1 400 Bad Request\r\nconnection: close\r\n/);
  });

  it("refuses a later head past 16 KiB arriving in parts: 431, as node:http", async () => {
    const t = await same([req("/p/teapot"), 100, big.slice(0, 9000), 50, big.slice(9000)], false);
    assert.match(t, /HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
  });

  it("refuses a head past 16 KiB after one of more than 32 fields: 431", async () => {
    const t = await same([req("/p/teapot", many), 100, big], false);
    assert.match(t, /^HTTP\/1\.1 418 /);
    assert.match(t, /HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
  });

  it("serves heads of many fields and of few, in turn", async () => {
    const t = await same([
      req("/p/teapot", many),
      50,
      req("/p/teapot"),
      50,
      req("/p/teapot", many),
      50,
      last("/p/multi"),
    ]);
    assert.equal(t.match(/418 I'm a Teapot/g)?.length, 3);
  });
});
