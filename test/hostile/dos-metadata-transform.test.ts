/**
 * Denial of service through `metadata_transform` (issue 12): a spec that turns a request into
 * CONNECT used to leave it hanging with an upstream socket held per request; a spec that builds
 * the upstream path from request data must not let an encoded dot segment through. All against the
 * real binary and a real upstream; every attack ends with the process still serving.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  baseConfig,
  http,
  startDataplane,
  startUpstream,
  writeTree,
  type Dataplane,
} from "../../dataplane/test/helpers.js";
import { assertStillServes, fdCount, rawExchange } from "./harness.js";

let dp: Dataplane;
let upstream: Awaited<ReturnType<typeof startUpstream>>;
const seen: { method: string; url: string }[] = [];

before(async () => {
  upstream = await startUpstream((req, res) => {
    seen.push({ method: req.method!, url: req.url! });
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ ok: true }));
  });
  // An upstream that accepts tunnels (a forward proxy would): a CONNECT that reached it used to
  // leave the request hanging with the upgraded socket held, one per request.
  upstream.server.on("connect", (req: { method: string; url: string }, sock: import("node:net").Socket) => {
    seen.push({ method: req.method, url: req.url });
    sock.write("HTTP/1.1 200 Connection Established\r\n\r\n");
  });
  const dir = writeTree({
    "config.toml": baseConfig(`
[pipelines.mt]
networks = ["default"]
endpoints = ["mt_in"]
middleware = ["mt"]
backends = ["up"]

[endpoints.mt_in]
service = "http"
options = { path_prefix = "/mt" }

[middleware.mt]
type = "metadata_transform"
options = { spec_path = "mt.json" }

[pipelines.narrow]
networks = ["default"]
endpoints = ["narrow_in"]
middleware = ["narrow"]
backends = ["up"]

[endpoints.narrow_in]
service = "http"
options = { path_prefix = "/narrow" }

[middleware.narrow]
type = "metadata_transform"
options = { spec_path = "mt.json", allowed_methods = ["get", "POST"] }

[backends.up]
service = "http"
options = { base_url = "${upstream.url}/base", max_connections = 4 }
`),
    // The request's x-method and x-uri headers pick the upstream method and path.
    "transforms/mt.json": JSON.stringify([
      { operation: "shift", spec: { headers: { "x-method": "method", "x-uri": "uri" } } },
    ]),
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

test("a transform that picks CONNECT is refused with a 500 before anything is sent, and leaks nothing", async () => {
  const fdBefore = await fdCount(dp.pid);
  const before = seen.length;
  const req = `GET /mt/x HTTP/1.1\r\nhost: t\r\nx-method: CONNECT\r\nconnection: close\r\n\r\n`;
  // 200 requests, 50 at a time: each must be answered (not left hanging until the client gives up).
  for (let batch = 0; batch < 4; batch++) {
    const replies = await Promise.all(Array.from({ length: 50 }, () => rawExchange(dp.ports.default!, [req], 5000)));
    for (const r of replies) {
      assert.equal(r.status, 500, `expected a 500 problem, got: ${r.text.slice(0, 200)}`);
      assert.match(r.text, /application\/problem\+json/);
      assert.equal(r.closed, true);
    }
  }
  assert.equal(seen.length, before, "the upstream must not see any of them");
  assert.equal(await inFlight(), 0);
  // A few descriptors of slack for the metrics connection and logging; a leak is one per request.
  assert.ok((await fdCount(dp.pid)) - fdBefore < 10, `fds grew from ${fdBefore} to ${await fdCount(dp.pid)}`);
  // The pool (4 connections) is not exhausted: ordinary requests still go through.
  for (let i = 0; i < 6; i++) await assertStillServes(dp, "default", "/mt/ok");
});

test("methods outside allowed_methods are refused; those inside go upstream", async () => {
  for (const m of ["TRACE", "PROPFIND", "PUT"]) {
    const r = await http(dp.url("default", "/narrow/x"), { headers: { "x-method": m } });
    assert.equal(r.status, 500, m);
    assert.match(r.headers["content-type"] ?? "", /problem\+json/);
  }
  const n = seen.length;
  const ok = await http(dp.url("default", "/narrow/x"), { headers: { "x-method": "post" } });
  assert.equal(ok.status, 200);
  assert.equal(seen[n]?.method, "POST");
});

test("a transform uri with a dot segment in any spelling is refused", async () => {
  const before = seen.length;
  for (const uri of [
    "/a/../secret",
    "/a/%2e%2e/secret",
    "/a/%2E%2e/secret",
    "/a/.%2e/secret",
    "/a/%252e%252e/secret",
    "/a/%25252e%25252e/secret",
    "/a/..;/secret",
    "/a/..;jsessionid=1/secret",
    "/a/%2e%2e%3b/secret",
    "/a/..%2fsecret",
    "/a/..%5csecret",
  ]) {
    const r = await http(dp.url("default", "/mt/x"), { headers: { "x-uri": uri } });
    assert.equal(r.status, 500, `${uri} answered ${r.status}`);
    assert.equal((r.json() as { status: number }).status, 500);
  }
  assert.equal(seen.length, before, "none of them reached the upstream");
  // Ordinary encoded paths still pass.
  const r = await http(dp.url("default", "/mt/x"), { headers: { "x-uri": "/a/b%20c/..x/d.e" } });
  assert.equal(r.status, 200);
  assert.equal(seen.at(-1)?.url, "/base/a/b%20c/..x/d.e");
  await assertStillServes(dp, "default", "/mt/ok");
});
