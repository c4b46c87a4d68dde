/**
 * Slow request bodies (issue 12): a client that stops sending its body, or dribbles it a byte at a
 * time, gets a 408 problem and loses the connection after `proxy.client_body_timeout_ms` — whether
 * the body was being streamed to an upstream (whose request is aborted and whose pooled socket is
 * freed) or buffered for a middleware. Real binary, raw sockets, a 500 ms limit.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  baseConfig,
  eventually,
  http,
  startDataplane,
  startUpstream,
  writeTree,
  type Dataplane,
} from "../../dataplane/test/helpers.js";
import { assertStillServes, rawExchange } from "./harness.js";

let dp: Dataplane;
let upstream: Awaited<ReturnType<typeof startUpstream>>;
/** How each upstream request ended: "end" (whole body), or "aborted" (the proxy gave up on it). */
const upstreamEnds: string[] = [];

const pipeline = (name: string, middleware: string, backendOptions = "") => `
[pipelines.${name}]
networks = ["default"]
endpoints = ["${name}_in"]
middleware = [${middleware}]
backends = ["${name}_out"]

[endpoints.${name}_in]
service = "http"
options = { path_prefix = "/${name}" }

[backends.${name}_out]
service = "http"
options = { base_url = "${upstream.url}" ${backendOptions} }
`;

before(async () => {
  upstream = await startUpstream((req, res) => {
    // /stall/…: the upstream reads nothing for 1.5 s (three body timeouts), then everything.
    if (req.url?.startsWith("/stall")) {
      req.pause();
      setTimeout(() => req.resume(), 1500);
    }
    let bytes = 0;
    req.on("data", (c: Buffer) => (bytes += c.length));
    req.on("end", () => {
      upstreamEnds.push("end");
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ bytes }));
    });
    req.on("close", () => {
      if (!req.complete) upstreamEnds.push("aborted");
    });
  });
  const config = baseConfig(
    // One pooled connection: a request left holding it would block every later one.
    pipeline("stream", "", ", max_connections = 1") + pipeline("buffered", `"json_extractor"`),
  ).replace("shutdown_timeout_ms = 5000", "shutdown_timeout_ms = 5000\nclient_body_timeout_ms = 500");
  const dir = writeTree({
    "config.toml": config + `\n[middleware.json_extractor]\ntype = "json_extractor"\n`,
  });
  dp = await startDataplane(join(dir, "config.toml"));
});

after(async () => {
  await dp?.stop();
  await upstream?.close();
});

const inFlight = async () => {
  const text = (await http(dp.url("management", "/metrics"))).text;
  return Number(/^harmony_http_requests_in_flight (\d+)/m.exec(text)?.[1]);
};

const head = (path: string, length: number) =>
  `POST ${path} HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: ${length}\r\n\r\n`;

test(
  "a body that stops while streaming upstream: 408, upstream request aborted, pooled socket freed",
  { timeout: 30_000 },
  async () => {
    const r = await rawExchange(dp.ports.default!, [head("/stream/x", 100), '{"a":'], 10_000);
    assert.equal(r.status, 408, `expected 408, got: ${r.text.slice(0, 200) || "(nothing)"}`);
    assert.match(r.text, /application\/problem\+json/);
    assert.match(r.text, /body-timeout/);
    assert.equal(r.closed, true, "the connection is closed");
    // The upstream learns of the abort over its own socket, a moment after the client's 408.
    await eventually("the upstream request to be aborted", () => upstreamEnds.at(-1) === "aborted", {
      context: () => `upstream saw: ${upstreamEnds.join(",")}`,
    });
    assert.equal(await inFlight(), 0);
    // The pool has one connection: these would wait forever if the stalled request still held it.
    for (let i = 0; i < 3; i++) {
      const ok = await http(dp.url("default", "/stream/x"), { method: "POST", body: '{"a":1}' });
      assert.equal(ok.status, 200);
    }
    await assertStillServes(dp, "default", "/stream/x");
  },
);

test("a body dribbled below the idle limit is still cut by the minimum rate", { timeout: 30_000 }, async () => {
  // One byte every 150 ms never trips the 500 ms idle limit; 7 bytes/s is far below 500 bytes/s.
  const chunks: (string | number)[] = [head("/stream/y", 200)];
  for (let i = 0; i < 60; i++) chunks.push(" ", 150);
  const r = await rawExchange(dp.ports.default!, chunks, 15_000);
  assert.equal(r.status, 408, `expected 408, got: ${r.text.slice(0, 200) || "(nothing)"}`);
  assert.match(r.text, /slower than 500 bytes\/s/);
  assert.equal(r.closed, true);
  assert.equal(await inFlight(), 0);
  await assertStillServes(dp, "default", "/stream/x");
});

test("a body a middleware buffers: 408 when it stalls", { timeout: 30_000 }, async () => {
  const r = await rawExchange(dp.ports.default!, [head("/buffered/x", 100), '{"a":'], 10_000);
  assert.equal(r.status, 408, `expected 408, got: ${r.text.slice(0, 200) || "(nothing)"}`);
  assert.equal(r.closed, true);
  assert.equal(await inFlight(), 0);
  const ok = await http(dp.url("default", "/buffered/x"), {
    method: "POST",
    body: '{"a":1}',
    headers: { "content-type": "application/json" },
  });
  assert.equal(ok.status, 200);
});

test("a body sent in pauses shorter than the limit, fast enough, goes through", { timeout: 30_000 }, async () => {
  const body = JSON.stringify({ pad: "x".repeat(2000) });
  const half = Math.floor(body.length / 2);
  const r = await rawExchange(
    dp.ports.default!,
    [
      head("/stream/z", body.length).replace("\r\n\r\n", "\r\nconnection: close\r\n\r\n"),
      body.slice(0, half),
      200,
      body.slice(half),
    ],
    10_000,
  );
  assert.equal(r.status, 200, r.text.slice(0, 300));
  assert.match(r.text, new RegExp(`"bytes":${body.length}`));
});

test("an upstream that is slow to read does not count against the client", { timeout: 30_000 }, async () => {
  // 16 MiB sent at once fills every buffer between client and upstream, so the proxy stops reading
  // the client; that wait is the upstream's, not the client's, and must not end in 408.
  const body = Buffer.alloc(16 * 1024 * 1024, 0x20);
  const r = await http(dp.url("default", "/stream/stall"), { method: "POST", body, agent: false });
  assert.equal(r.status, 200, r.text.slice(0, 300));
  assert.equal((r.json() as { bytes: number }).bytes, body.length);
});
