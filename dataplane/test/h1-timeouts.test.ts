/**
 * The llhttp engine's timeouts on its one clock per pool (dataplane/src/http1/deadlines.ts), end to
 * end through a real data plane: a body held back by a slow client is not the upstream's fault (the
 * body timeout re-arms while the exchange is paused, as undici's does), and a socket parked past
 * keep_alive_timeout_ms is closed (the upstream sees it go). The hostile cases (headers and body
 * timeouts against a silent upstream) are in test/hostile/h1-upstream.test.ts.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  baseConfig,
  eventually,
  proxyPipeline,
  startDataplane,
  startUpstream,
  writeTree,
  type Dataplane,
} from "./helpers.js";

const BIG = 16 * 1024 * 1024; // far more than the sockets' buffers: the upstream socket must be paused
let dp: Dataplane;
let upstream: Awaited<ReturnType<typeof startUpstream>>;
let upstreamSockets = 0;
let upstreamClosed = 0;

before(async () => {
  upstream = await startUpstream((req, res) => {
    // No Keep-Alive hint (node adds none when the handler sets Connection itself): the data
    // plane's keep_alive_timeout_ms is what applies.
    res.setHeader("connection", "keep-alive");
    if (req.url!.endsWith("/big")) {
      res.writeHead(200, { "content-length": String(BIG) });
      res.end(Buffer.alloc(BIG, 7));
    } else res.end("ok");
  });
  // The upstream itself keeps idle sockets far longer than the test waits: only the data plane closes them.
  upstream.server.keepAliveTimeout = 120_000;
  upstream.server.on("connection", (s) => {
    upstreamSockets++;
    s.once("close", () => upstreamClosed++);
  });
  const opts = "body_timeout_ms = 500\nheaders_timeout_ms = 5000\nkeep_alive_timeout_ms = 300";
  const cfg = join(
    writeTree({ "config.toml": baseConfig() + proxyPipeline("l", "/l", upstream.url, `client = "llhttp"\n${opts}`) }),
    "config.toml",
  );
  dp = await startDataplane(cfg);
});

after(async () => {
  await dp?.stop();
  await upstream?.close();
});

test("a client that stops reading for longer than body_timeout_ms still gets the whole body", async () => {
  const port = Number(new URL(dp.url("default", "/")).port);
  const s = connect({ host: "127.0.0.1", port });
  s.pause();
  s.write("GET /l/big HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
  // Not reading: the data plane's writes to us back up, it pauses the upstream exchange, and the
  // upstream's bytes stop. Several body timeouts pass meanwhile.
  await sleep(2500);
  let total = 0;
  let start = "";
  s.on("data", (c: Buffer) => {
    total += c.length;
    if (start.length < 4096) start += c.subarray(0, 4096).toString("latin1");
  });
  s.resume();
  await new Promise((r) => s.once("close", r));
  assert.match(start, /^HTTP\/1.1 200 /);
  const body = total - (start.indexOf("\r\n\r\n") + 4);
  assert.equal(body, BIG, "the body was cut: the body timeout fired while the client held it back");
});

test("a socket parked past keep_alive_timeout_ms is closed", async () => {
  const res = await fetch(dp.url("default", "/l/small"));
  assert.equal(await res.text(), "ok");
  await eventually("every upstream socket closed after its idle time", () => upstreamClosed === upstreamSockets, {
    context: () => `${upstreamSockets} opened, ${upstreamClosed} closed`,
  });
});
