/**
 * Host-routing attacks (Gateway API hostnames): a route served only for admin.example.com must
 * not be reached by a request that shows the gateway one host and an upstream or cache another —
 * two Host headers, an absolute-form target naming another host, HTTP/2 :authority and Host that
 * disagree — and a header regex in config cannot be made to backtrack by a hostile header value.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { connect as http2Connect } from "node:http2";
import { join } from "node:path";
import {
  baseConfig,
  startDataplane,
  startUpstream,
  tempDir,
  writeTree,
  type Dataplane,
} from "../../dataplane/test/helpers.js";
import { assertStillServes, fdCount, rawExchange } from "./harness.js";

let dp: Dataplane;
let upstream: Awaited<ReturnType<typeof startUpstream>>;
/** Requests that reached the admin route's upstream. */
let adminHits = 0;

before(async () => {
  upstream = await startUpstream((req, res) => {
    if (req.url!.startsWith("/admin")) adminHits++;
    res.end(req.url!.split("/")[1]);
  });
  const pki = tempDir("harmony-hostile-host-");
  const r = spawnSync(
    "bash",
    [
      "-c",
      `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=gw" -keyout gw.key -out gw.crt 2>/dev/null`,
    ],
    { cwd: pki },
  );
  assert.equal(r.status, 0);
  const route = (name: string, extra: string) => `
[pipelines.${name}]
networks = ["default", "h2"]
endpoints = ["${name}_in"]
backends = ["${name}_out"]
[endpoints.${name}_in]
service = "http"
[endpoints.${name}_in.options]
path_prefix = "/"
${extra}
[backends.${name}_out]
service = "http"
[backends.${name}_out.options]
base_url = "${upstream.url}/${name}"
`;
  const dir = writeTree({
    "config.toml": baseConfig(`
[network.h2.http]
bind_address = "127.0.0.1"
bind_port = 0
cert_path = "${join(pki, "gw.crt")}"
key_path = "${join(pki, "gw.key")}"
${route("admin", 'hostnames = ["admin.example.com"]')}
${route("public", "")}
${route("slow", 'path_prefix = "/re"\nheaders = [ { name = "x-re", value = "^(a|aa)+$", type = "regex" } ]').replace('path_prefix = "/"\n', "")}
`),
  });
  dp = await startDataplane(join(dir, "config.toml"));
});

after(async () => {
  await dp.stop();
  await upstream.close();
});

test("the admin host route is reachable by its Host, and only by it", async () => {
  const ok = await rawExchange(dp.ports.default!, [
    "GET /x HTTP/1.1\r\nHost: ADMIN.example.com:8080\r\nConnection: close\r\n\r\n",
  ]);
  assert.equal(ok.status, 200);
  assert.match(ok.text, /\r\n\r\nadmin$/);
  const pub = await rawExchange(dp.ports.default!, [
    "GET /x HTTP/1.1\r\nHost: public.test\r\nConnection: close\r\n\r\n",
  ]);
  assert.match(pub.text, /\r\n\r\npublic$/);
});

test("smuggled hosts never reach the admin route", async () => {
  const before = adminHits;
  const fds = await fdCount(dp.pid);
  const attacks: string[] = [
    // Two Host headers, either order: Node keeps the first, an upstream might read the last.
    "GET /x HTTP/1.1\r\nHost: public.test\r\nHost: admin.example.com\r\nConnection: close\r\n\r\n",
    "GET /x HTTP/1.1\r\nHost: admin.example.com\r\nHost: public.test\r\nConnection: close\r\n\r\n",
    // A Host folded over two lines (obsolete line folding).
    "GET /x HTTP/1.1\r\nHost: public.test\r\n admin.example.com\r\nConnection: close\r\n\r\n",
    // Absolute-form target naming the admin host while Host names another.
    "GET http://admin.example.com/x HTTP/1.1\r\nHost: public.test\r\nConnection: close\r\n\r\n",
    "GET http://public.test/x HTTP/1.1\r\nHost: admin.example.com\r\nConnection: close\r\n\r\n",
    // Host with userinfo or a path: not a host name at all.
    "GET /x HTTP/1.1\r\nHost: public.test@admin.example.com\r\nConnection: close\r\n\r\n",
    "GET /x HTTP/1.1\r\nHost: admin.example.com/..\r\nConnection: close\r\n\r\n",
  ];
  for (const a of attacks) {
    const r = await rawExchange(dp.ports.default!, [a], 30_000);
    assert.ok(r.status !== undefined, `an answer to ${JSON.stringify(a)}`);
    assert.doesNotMatch(r.text, /\r\n\r\nadmin$/, `admin reached by ${JSON.stringify(a)}`);
  }
  assert.equal(adminHits, before, "the admin upstream saw none of them");
  await assertStillServes(dp, "default", "/x");
  assert.ok((await fdCount(dp.pid)) <= fds + 2, "no descriptors left behind");
});

test("HTTP/2: a Host header that disagrees with :authority is refused", async () => {
  const session = http2Connect(`https://127.0.0.1:${dp.ports.h2}`, { rejectUnauthorized: false });
  after(() => session.close());
  const ask = (headers: Record<string, string>) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const s = session.request({ ":path": "/x", ...headers });
      let body = "";
      let status = 0;
      s.on("response", (h) => (status = Number(h[":status"])));
      s.setEncoding("utf8").on("data", (c: string) => (body += c));
      s.on("end", () => resolve({ status, body }));
      s.on("error", reject);
      s.end();
    });
  const before = adminHits;
  const good = await ask({ ":authority": "admin.example.com" });
  assert.deepEqual(good, { status: 200, body: "admin" });
  const smuggled = await ask({ ":authority": "public.test", host: "admin.example.com" });
  assert.equal(smuggled.status, 400);
  const smuggled2 = await ask({ ":authority": "admin.example.com", host: "public.test" });
  assert.equal(smuggled2.status, 400);
  assert.equal(adminHits, before + 1, "only the honest request reached admin");
});

test("a header regex cannot be made to backtrack by the header value", async () => {
  // ^(a|aa)+$ takes exponential time in a backtracking engine on "aaa...a!"; a hang here would
  // hold the event loop and every other request with it.
  const value = "a".repeat(8000) + "!";
  const r = await rawExchange(
    dp.ports.default!,
    [`GET /re/x HTTP/1.1\r\nHost: public.test\r\nx-re: ${value}\r\nConnection: close\r\n\r\n`],
    60_000,
  );
  assert.equal(r.status, 200);
  assert.match(r.text, /\r\n\r\npublic$/, "not the regex route: the value does not match");
  const hit = await rawExchange(
    dp.ports.default!,
    [`GET /re/x HTTP/1.1\r\nHost: p\r\nx-re: ${"a".repeat(8000)}\r\nConnection: close\r\n\r\n`],
    60_000,
  );
  assert.match(hit.text, /\r\n\r\nslow$/);
  await assertStillServes(dp, "default", "/x");
});
