/**
 * Hostile input, over raw sockets where a well-behaved client library would refuse to send it:
 * forged and malformed JWTs, header tricks, oversized and deeply nested bodies, XML entity bombs,
 * path traversal and encoded separators, slowloris. Each gets the right 4xx (or a closed
 * connection), and the process keeps serving.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { join } from "node:path";
import {
  baseConfig,
  http,
  memoryOf,
  sleep,
  startDataplane,
  startUpstream,
  writeTree,
  type Dataplane,
} from "./helpers.js";

let dp: Dataplane;
let upstream: Awaited<ReturnType<typeof startUpstream>>;
const SECRET = "a-jwt-secret-that-is-long-enough-0123456789";

before(async () => {
  upstream = await startUpstream((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ url: req.url, bytes: Buffer.concat(chunks).length }));
    });
  });
  const pipe = (name: string, backend: string, mw = "") => `
[pipelines.${name}]
networks = ["default"]
endpoints = ["${name}_in"]
${mw ? `middleware = ["${mw}"]` : ""}
backends = ["${backend}"]

[endpoints.${name}_in]
service = "http"
options = { path_prefix = "/${name}" }
`;
  const dir = writeTree({
    "config.toml": baseConfig(
      pipe("echo", "echo") +
        pipe("proxy", "up") +
        pipe("jwt", "echo", "jwt") +
        `
[middleware.jwt]
type = "jwt_auth"
options = { secret = "${SECRET}", claims_to_headers = { sub = "x-user" } }

[backends.echo]
service = "echo"

[backends.up]
service = "http"
options = { base_url = "${upstream.url}" }
`,
    ).replace(
      "shutdown_timeout_ms = 5000\n",
      "shutdown_timeout_ms = 5000\nclient_header_timeout_ms = 1000\n\n[proxy.content_limits]\nmax_body_size = 4096\nmax_json_depth = 50\n",
    ),
  });
  dp = await startDataplane(join(dir, "config.toml"));
});

after(async () => {
  await dp?.stop();
  await upstream?.close();
});

/** Sends bytes as they are and returns what came back before the server closed or `waitMs` passed. */
function raw(data: string | Buffer, waitMs = 3000): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = connect(dp.ports.default!, "127.0.0.1", () => s.write(data));
    let text = "";
    let closed = false;
    s.on("data", (c: Buffer) => (text += c.toString("latin1")));
    s.on("error", () => undefined);
    s.on("close", () => {
      closed = true;
      resolve({ text, closed });
    });
    setTimeout(() => {
      s.destroy();
      resolve({ text, closed });
    }, waitMs);
  });
}
const statusOf = (text: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);

test("forged and malformed JWTs are 401s, never 500s", async () => {
  const b64 = (o: unknown) => Buffer.from(typeof o === "string" ? o : JSON.stringify(o)).toString("base64url");
  const hostile = [
    "a.b.c",
    `${b64({ alg: "none" })}.${b64({ sub: "admin" })}.`,
    `${b64({ alg: "HS256" })}.${b64("not json")}.${b64("sig")}`,
    `${b64({ alg: "HS256", crit: ["x"] })}.${b64({ sub: "admin" })}.${b64("sig")}`,
    `${b64("{")}.${b64("{")}.x`,
    "x".repeat(6000),
    `${b64({ alg: "HS256", kid: "../../etc/passwd" })}.${b64({ sub: "a" })}.${b64("s")}`,
  ];
  for (const t of hostile) {
    const r = await http(dp.url("default", "/jwt/x"), { headers: { authorization: `Bearer ${t}` } });
    assert.equal(r.status, 401, `${t.slice(0, 40)}… → ${r.status} ${r.text}`);
    assert.doesNotMatch(r.text, /admin/, "nothing of the token is echoed");
  }
});

test("header tricks: CR/LF smuggling, obs-fold, oversized headers, bad request lines", async () => {
  const smuggle = await raw("GET /echo/x HTTP/1.1\r\nHost: a\r\nX-A: b\rX-Injected: c\r\n\r\n");
  assert.equal(statusOf(smuggle.text), 400);
  const folded = await raw("GET /echo/x HTTP/1.1\r\nHost: a\r\nX-A: b\r\n  folded\r\n\r\n");
  assert.equal(statusOf(folded.text), 400);
  const huge = await raw(`GET /echo/x HTTP/1.1\r\nHost: a\r\nX-Big: ${"a".repeat(40_000)}\r\n\r\n`);
  assert.equal(statusOf(huge.text), 431);
  const line = await raw("GET /echo/x\u0000 HTTP/1.1\r\nHost: a\r\n\r\n");
  assert.equal(statusOf(line.text), 400);
  const te = await raw(
    "POST /echo/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
  );
  assert.equal(statusOf(te.text), 400, "request smuggling via CL + TE is refused");
});

test("oversized and deeply nested bodies: 413 and 400", async () => {
  const big = await http(dp.url("default", "/echo/x"), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ pad: "x".repeat(8000) }),
  });
  assert.equal(big.status, 413);
  const deep = await http(dp.url("default", "/echo/x"), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "[".repeat(1000) + "]".repeat(1000),
  });
  assert.equal(deep.status, 400);
  assert.match((JSON.parse(deep.text) as { detail: string }).detail, /nests deeper than 50 levels/);
  const strings = await http(dp.url("default", "/echo/x"), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ s: "[[[[[[[[[[".repeat(20) }),
  });
  assert.equal(strings.status, 200, "brackets inside strings are not nesting");
  const malformed = await http(dp.url("default", "/echo/x"), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: '{"a": ',
  });
  assert.equal(malformed.status, 400);
});

test("an XML entity bomb is relayed, never expanded", async () => {
  const bomb =
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">' +
    Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i || ""};`.repeat(10)}">`).join("") +
    "]><lolz>&lol9;</lolz>";
  const before = memoryOf(dp.pid).hwm;
  const r = await http(dp.url("default", "/proxy/xml"), {
    method: "POST",
    headers: { "content-type": "application/xml" },
    body: bomb,
  });
  assert.equal(r.status, 200);
  assert.equal(
    (JSON.parse(r.text) as { bytes: number }).bytes,
    Buffer.byteLength(bomb),
    "the upstream got the bytes as sent",
  );
  assert.ok(memoryOf(dp.pid).hwm - before < 32 * 1024 * 1024);
});

test("path traversal: dot segments and encoded slashes refused; the upstream gets the canonical path", async () => {
  for (const p of [
    "/proxy/../admin",
    "/proxy/%2e%2e/admin",
    "/proxy/a/%2E/b",
    "/proxy/..",
    "/proxy/a%2Fb",
    "/proxy/a;b",
  ]) {
    const r = await raw(`GET ${p} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
    assert.equal(statusOf(r.text), 400, p);
    assert.match(r.text, /application\/problem\+json/, p);
    assert.match(r.text, /problems\/bad-path/, p);
  }
  const merged = await raw("GET //proxy//%61%2a//b/ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  assert.equal(statusOf(merged.text), 200);
  assert.match(merged.text, /"url":"\/a%2A\/b\/"/);
});

test("slowloris: a client that never finishes its headers is cut off; others are served", async () => {
  const started = Date.now();
  const slow = await new Promise<{ closed: boolean; text: string }>((resolve) => {
    const s = connect(dp.ports.default!, "127.0.0.1", () => s.write("GET /echo/x HTTP/1.1\r\nHost: a\r\n"));
    let text = "";
    const drip = setInterval(() => s.write("X-Slow: 1\r\n"), 200);
    s.on("data", (c: Buffer) => (text += c.toString()));
    s.on("error", () => undefined);
    s.on("close", () => {
      clearInterval(drip);
      resolve({ closed: true, text });
    });
    setTimeout(() => {
      clearInterval(drip);
      s.destroy();
      resolve({ closed: false, text });
    }, 10_000);
  });
  assert.ok(
    slow.closed,
    `the gateway closed the connection (${JSON.stringify(slow)} after ${Date.now() - started} ms)`,
  );
  assert.ok(slow.text === "" || statusOf(slow.text) === 408, slow.text);
  assert.ok(Date.now() - started < 9000);
  await sleep(10);
  assert.equal((await http(dp.url("default", "/echo/x"))).status, 200);
  assert.equal(dp.proc.exitCode, null, "the process keeps serving");
});
