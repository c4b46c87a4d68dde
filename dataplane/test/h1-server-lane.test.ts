/**
 * The llhttp server lane of plain HTTP/1.1 listeners (proxy.http1_server = "llhttp", http1/server/):
 * the same bytes as node:http for the same requests (two data planes, one per value, one upstream),
 * the hand-off to node:http mid-connection, heads split anywhere, the limits and timeouts node:http
 * enforces, a client leaving mid-answer, backpressure, and a retiring listener. The
 * harmony_http1_lane_handoffs_total counter tells which side served: a test that expects the lane
 * to serve checks that it did not hand the connection off.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  baseConfig,
  eventually,
  http,
  memoryOf,
  proxyPipeline,
  sleep,
  startDataplane,
  startUpstream,
  stopAll,
  writeTree,
  type Dataplane,
} from "./helpers.js";
import { exchange, handoffs } from "./lane-exchange.js";

const stops: (() => unknown)[] = [];
let lane: Dataplane;
let node: Dataplane;
let laneDir: string;
/** Upstream requests that are still open (a client that left must close its upstream request). */
const open = new Set<string>();
let closedUpstream = 0;

const BIG = 48 * 1024 * 1024;
const KIB = Buffer.alloc(1024, "k");

function config(engine: "llhttp" | "node", headerTimeout = 1000): (up: string) => string {
  return (up) =>
    baseConfig(
      proxyPipeline("p", "/p", up, "max_connections = 1") +
        // A route with a middleware hook: never the lane's (node:http serves it).
        proxyPipeline("slow", "/slow", up).replace('middleware = ["passthru"]', 'middleware = ["noop_hook"]') +
        `
[middleware.noop_hook]
type = "headers"
[middleware.noop_hook.options.request]
set = {}
`,
    ).replace(
      "[proxy]\n",
      `[proxy]\nhttp1_server = "${engine}"\nclient_header_timeout_ms = ${headerTimeout}\nclient_keepalive_timeout_ms = 1500\n`,
    );
}

before(async () => {
  const up = await startUpstream((req, res) => {
    const path = (req.url ?? "").replace(/^\/(?:p|slow)/, "");
    open.add(req.url!);
    req.on("close", () => {
      open.delete(req.url!);
      closedUpstream++;
    });
    const headerCount = Object.keys(req.headers).filter((k) => k.startsWith("x-h-")).length;
    const common = { "x-path": path, "x-headers": String(headerCount), "x-conn": String(req.headers.connection) };
    if (path.startsWith("/fixed")) {
      res.writeHead(200, { ...common, "content-type": "text/plain", "content-length": KIB.length });
      res.end(KIB);
    } else if (path.startsWith("/chunked")) {
      res.writeHead(200, { ...common, "content-type": "text/plain" });
      res.write("ab");
      // Far enough apart to reach both proxies in two reads even on a loaded box: chunks that
      // arrive in one tick go out as one chunk from either (node:http corks per tick).
      setTimeout(() => res.end("cd"), 60);
    } else if (path.startsWith("/nothing")) {
      res.writeHead(204, common).end();
    } else if (path.startsWith("/echo")) {
      const got: Buffer[] = [];
      req.on("data", (c: Buffer) => got.push(c));
      req.on("end", () => {
        const body = Buffer.concat(got);
        res.writeHead(200, { ...common, "content-length": body.length }).end(body);
      });
    } else if (path.startsWith("/hold")) {
      res.writeHead(200, { ...common, "content-length": 1 << 20 });
      res.write(KIB); // and never the rest
    } else if (path.startsWith("/big")) {
      res.writeHead(200, { ...common, "content-length": BIG });
      const block = Buffer.alloc(64 * 1024, "b");
      let sent = 0;
      const pump = () => {
        while (sent < BIG) {
          sent += block.length;
          if (!res.write(block)) return void res.once("drain", pump);
        }
        res.end();
      };
      pump();
    } else res.writeHead(404, common).end();
  });
  stops.push(() => up.close());
  laneDir = writeTree({ "harmony.toml": config("llhttp")(up.url) });
  const nodeDir = writeTree({ "harmony.toml": config("node")(up.url) });
  lane = await startDataplane(join(laneDir, "harmony.toml"));
  stops.push(() => lane.stop());
  node = await startDataplane(join(nodeDir, "harmony.toml"));
  stops.push(() => node.stop());
  (globalThis as { upstreamUrl?: string }).upstreamUrl = up.url;
});

after(() => stopAll(stops));

/** Date and request ids differ run to run; everything else must not. */
const stable = (t: string) =>
  t
    .replace(/^(date): .*$/gim, "$1: X")
    .replace(/^(x-request-id): .*$/gim, "$1: X")
    .replace(/urn:request:[\w-]+/g, "urn:request:X");

const get = (path: string, extra = "", version = "1.1") => `GET ${path} HTTP/${version}\r\nHost: a\r\n${extra}\r\n`;
const last = (path: string) => get(path, "Connection: close\r\n");

describe("the lane answers as node:http", () => {
  const cases: [string, string[]][] = [
    ["a GET with a length", [last("/p/fixed")]],
    ["a chunked upstream answer is re-framed", [last("/p/chunked")]],
    ["HEAD with a length", [`HEAD /p/fixed HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`]],
    ["HEAD of a chunked answer", [`HEAD /p/chunked HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`]],
    ["204", [last("/p/nothing")]],
    ["HTTP/1.0", [get("/p/fixed", "", "1.0")]],
    ["HTTP/1.0 of a chunked answer (close-delimited)", [get("/p/chunked", "", "1.0")]],
    ["HTTP/1.0 keep-alive, then a close", [get("/p/fixed", "Connection: keep-alive\r\n", "1.0"), last("/p/fixed")]],
    [
      "keep-alive GETs on one connection",
      [get("/p/fixed?1"), get("/p/chunked?2"), get("/p/nothing"), last("/p/fixed?3")],
    ],
    ["a client's Connection header naming another", [get("/p/fixed", "Connection: x-drop, close\r\nX-Drop: 1\r\n")]],
    ["an upstream that is not there (502 problem)", [last("/p/none")]],
  ];
  for (const [name, parts] of cases) {
    it(name, async () => {
      const before = await handoffs(lane);
      const [a, b] = await Promise.all([exchange(lane.ports.default!, parts), exchange(node.ports.default!, parts)]);
      assert.match(a, /^HTTP\/1\.1 \d{3} /);
      assert.equal(stable(a), stable(b));
      assert.equal(await handoffs(lane), before, "the lane served it (no hand-off)");
    });
  }

  const handedOff: [string, string[]][] = [
    ["a POST", [`POST /p/echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc`]],
    ["a 404", [last("/nowhere")]],
    ["a middleware route", [last("/slow/fixed")]],
    ["HTTP/1.1 without Host", ["GET /p/fixed HTTP/1.1\r\n\r\n"]],
    ["two Host headers", ["GET /p/fixed HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"]],
    ["a bad path", [last("/p/%2e%2e/x")]],
    ["Expect: 100-continue", [`GET /p/fixed HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`]],
    ["HTTP/0.9", ["GET /p/fixed\r\n\r\n"]],
    [
      "an absolute-form target (not a path: no route)",
      [`GET http://a/p/fixed HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`],
    ],
  ];
  for (const [name, parts] of handedOff) {
    it(`${name}: handed to node:http, same bytes`, async () => {
      const before = await handoffs(lane);
      const [a, b] = await Promise.all([exchange(lane.ports.default!, parts), exchange(node.ports.default!, parts)]);
      assert.equal(stable(a), stable(b));
      assert.equal(await handoffs(lane), before + 1, "handed off once");
    });
  }

  const rejected: [string, string[]][] = [
    ["a malformed request line", ["GET /p/fixed HTTP/1.1 x\r\nHost: a\r\n\r\n"]],
    ["a bad header name", ["GET /p/fixed HTTP/1.1\r\nHost: a\r\nBad Name: 1\r\n\r\n"]],
    ["a head of 16 KiB + 1", [get("/p/fixed", `X-Big: ${"b".repeat(16 * 1024)}\r\n`)]],
    [
      "2,100 short header lines, a request pipelined behind (past the 1,000 lines node:http takes)",
      [
        `GET /p/fixed HTTP/1.1\r\nHost: a\r\n${Array.from({ length: 2100 }, (_, i) => `X${i}: v\r\n`).join("")}\r\n` +
          last("/p/fixed?behind"),
      ],
    ],
    [
      "a head padded with optional whitespace (the binding does not count it)",
      [`GET /p/fixed HTTP/1.1\r\nHost: a\r\n${`a:${" ".repeat(1000)}v\r\n`.repeat(1000)}\r\n`],
    ],
  ];
  for (const [name, parts] of rejected) {
    it(`${name}: the same answer, connection closed`, async () => {
      const [a, b] = await Promise.all([exchange(lane.ports.default!, parts), exchange(node.ports.default!, parts)]);
      assert.match(a, /HTTP\/1\.1 (400 Bad Request|431 Request Header Fields Too Large)\r\nconnection: close\r\n/);
      assert.equal(stable(a), stable(b));
    });
  }
});

describe("the lane's reader", () => {
  it("refuses a head past 16 KiB on a kept-alive connection, after answering the one before", async () => {
    // node:http parses ahead and answers only the 431 here (the first answer is lost); the lane
    // answers requests one at a time, so the first is served, then the same 431 as node:http's.
    const t = await exchange(lane.ports.default!, [
      get("/p/fixed?kept") + get("/p/fixed", `X-Big: ${"b".repeat(16 * 1024)}\r\n`),
    ]);
    assert.match(t, /^HTTP\/1\.1 200 OK\r\n/);
    assert.ok(
      t.endsWith(
        KIB.toString() +
          "HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
      ),
      t.slice(-200),
    );
  });

  it("serves a head split at every byte boundary", async () => {
    const before = await handoffs(lane);
    const head = last("/p/fixed?split");
    for (let i = 1; i < head.length; i++) {
      const t = await exchange(lane.ports.default!, [head.slice(0, i), 3, head.slice(i)]);
      assert.match(t, /^HTTP\/1\.1 200 OK\r\n/, `split at ${i}`);
      assert.ok(t.endsWith(KIB.toString()), `split at ${i}: the whole body`);
    }
    assert.equal(await handoffs(lane), before);
  });

  it("answers pipelined GETs, then a POST in the same write (handed off mid-pipeline), in order", async () => {
    const before = await handoffs(lane);
    const all =
      get("/p/fixed?1") +
      get("/p/chunked?2") +
      get("/p/fixed?3") +
      "POST /p/echo?4 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" +
      get("/p/fixed?5") +
      last("/p/chunked?6");
    const [a, b] = await Promise.all([exchange(lane.ports.default!, [all]), exchange(node.ports.default!, [all])]);
    const order = [...a.matchAll(/^x-path: (.*)$/gim)].map((m) => m[1]!.trim());
    assert.deepEqual(order, ["/fixed?1", "/chunked?2", "/fixed?3", "/echo?4", "/fixed?5", "/chunked?6"]);
    assert.match(a, /x-path: \/echo\?4\r\n[^]*?\r\n\r\nhelloHTTP/, "the POST's body reached the upstream");
    assert.equal(stable(a), stable(b));
    assert.equal(await handoffs(lane), before + 1);
  });

  it("takes a head with more than 32 header lines (llhttp flushes them early)", async () => {
    const before = await handoffs(lane);
    let extra = "";
    for (let i = 0; i < 40; i++) extra += `X-H-${i}: ${i}\r\n`;
    const t = await exchange(lane.ports.default!, [get("/p/fixed?many", extra + "Connection: close\r\n")]);
    assert.match(t, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(t, /^x-headers: 40\r$/m, "every header reached the upstream");
    assert.match(t, /^x-path: \/fixed\?many\r$/m, "the target too");
    assert.equal(await handoffs(lane), before);
  });

  it("answers a head not complete in time 408 and closes (slowloris)", async () => {
    const t = await exchange(lane.ports.default!, [
      "GET /p/fixed HTTP/1.1\r\nHost: a\r\n",
      300,
      "X-A: 1\r\n",
      300,
      "X-B: 1\r\n",
    ]);
    assert.equal(t, "HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
    const silent = await exchange(lane.ports.default!, []);
    assert.equal(silent, "HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
  });

  it("closes a kept-alive connection idle past client_keepalive_timeout_ms, and says so in Keep-Alive", async () => {
    const before = await handoffs(lane);
    const t = await exchange(lane.ports.default!, [get("/p/fixed?idle")], 10_000);
    assert.match(t, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(t, /^Keep-Alive: timeout=1\r$/m);
    assert.ok(t.endsWith(KIB.toString()), "closed after the answer, with nothing more");
    assert.equal(await handoffs(lane), before);
  });

  it("closes, not only ends, a connection it is done with when the client never closes its side", async () => {
    const cases = [
      last("/p/fixed?close"), // Connection: close
      get("/p/fixed?ten", "", "1.0"), // HTTP/1.0
      "GET /p/fixed HTTP/1.1\r\nHost: a\r\nBad Name: 1\r\n\r\n", // a 400
    ];
    for (const request of cases) {
      const s = connect({ port: lane.ports.default!, host: "127.0.0.1", allowHalfOpen: true });
      let text = "";
      let gone = false;
      s.setEncoding("latin1").on("data", (c: string) => (text += c));
      s.on("error", () => (gone = true));
      s.on("close", () => (gone = true));
      s.write(request);
      await new Promise((r) => s.once("end", r)); // the server's FIN; this client keeps its side open
      // Writes into a socket the server only half-closed are read and dropped; into one it closed, reset.
      const poke = setInterval(() => !gone && s.write("x"), 200);
      await eventually(
        `the server closed the connection after ${JSON.stringify(request.split("\r\n")[0])}`,
        () => gone,
        {
          timeoutMs: 15_000,
        },
      );
      clearInterval(poke);
      s.destroy();
      assert.match(text, /^HTTP\/1\.1 (200|400) /);
    }
  });

  it("a client leaving mid-answer aborts the upstream exchange and frees its pooled socket", async () => {
    const closed = closedUpstream;
    const s: Socket = connect({ port: lane.ports.default!, host: "127.0.0.1" });
    s.write(get("/p/hold?leave"));
    await new Promise<void>((r) => s.once("data", () => r()));
    s.destroy();
    await eventually("the upstream request closed", () => closedUpstream > closed && !open.has("/p/hold?leave"));
    // The backend has one connection (max_connections = 1): it serves again only if it was freed.
    const t = await exchange(lane.ports.default!, [last("/p/fixed?after-leave")], 10_000);
    assert.match(t, /^HTTP\/1\.1 200 OK\r\n/);
  });

  it("bounds memory for a reader slower than the upstream (backpressure)", async () => {
    const rss0 = memoryOf(lane.pid).rss;
    const s = connect({ port: lane.ports.default!, host: "127.0.0.1" });
    s.write(last("/p/big"));
    s.pause();
    await sleep(1500); // the upstream writes as fast as it can meanwhile
    const held = memoryOf(lane.pid).rss - rss0;
    let got = 0;
    s.on("data", (c: Buffer) => (got += c.length));
    s.resume();
    await new Promise((r) => s.on("close", r));
    assert.ok(held < BIG / 2, `the proxy held ${held} bytes for a paused client (body ${BIG})`);
    assert.ok(got > BIG, `the whole body arrived (${got} bytes)`);
  });

  it("a retiring listener ends a kept-alive lane connection after its next response", async () => {
    const s = connect({ port: lane.ports.default!, host: "127.0.0.1" });
    let text = "";
    s.setEncoding("latin1").on("data", (c: string) => (text += c));
    const closed = new Promise((r) => s.on("close", r));
    s.write(get("/p/fixed?first"));
    await eventually("the first answer", () => text.includes(KIB.toString()));
    assert.doesNotMatch(text, /connection: close/i);
    // A listener setting changes: the reload binds a new listener and retires this one.
    const file = join(laneDir, "harmony.toml");
    const up = (globalThis as { upstreamUrl?: string }).upstreamUrl!;
    writeFileSync(file, config("llhttp", 1100)(up));
    const r = await http(lane.url("management", "/admin/reload"), { method: "POST" });
    assert.equal(r.status, 200, r.text);
    text = "";
    s.write(get("/p/fixed?second"));
    await closed;
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(text, /^connection: close\r$/m);
    assert.ok(text.endsWith(KIB.toString()));
  });
});
