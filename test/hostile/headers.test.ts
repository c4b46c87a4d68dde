/**
 * Header and identity attacks against the real binary: stripping the gateway's identity headers
 * through Connection, claims that cannot go on the wire as they are, request heads nginx refuses
 * (two Host headers, HTTP/0.9, an absolute target naming another host), and the management API
 * reached by DNS rebinding or a cross-site POST.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { isLoopbackAddress, isLoopbackIp } from "../../dataplane/src/runtime/loopback.js";
import {
  baseConfig,
  http,
  startDataplane,
  startUpstream,
  writeTree,
  type Dataplane,
} from "../../dataplane/test/helpers.js";
import { assertStillServes, rawExchange } from "./harness.js";

const SECRET = "a-shared-secret-that-is-long-enough-for-hs256-0123456789";

let dp: Dataplane;
let upstream: Awaited<ReturnType<typeof startUpstream>>;

before(async () => {
  // Answers with the headers it was sent, so a test sees exactly what crossed the gateway.
  upstream = await startUpstream((req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify(req.headers));
  });
  const dir = writeTree({
    "hs.secret": SECRET,
    "config.toml": baseConfig(`
[pipelines.id]
networks = ["default"]
endpoints = ["id_in"]
middleware = ["jwt"]
backends = ["id_out"]
[endpoints.id_in]
service = "http"
options = { path_prefix = "/id" }
[middleware.jwt]
type = "jwt_auth"
options = { secret_file = "hs.secret", algorithms = ["HS256"], claims_to_headers = { sub = "x-user", name = "x-user-name", groups = "x-groups" } }
[backends.id_out]
service = "http"
options = { base_url = "${upstream.url}" }

[mesh.clinical]
type = "http"
provider = "local"
jwt_secret = "${SECRET}"
ingress = ["mesh_ingress"]

[pipelines.meshed]
networks = ["default"]
endpoints = ["mesh_in"]
backends = ["id_out"]
[pipelines.meshed.mesh.ingress.mesh_ingress]
type = "http"
urls = ["http://127.0.0.1/mesh"]
[endpoints.mesh_in]
service = "http"
options = { path_prefix = "/mesh" }

[pipelines.open]
networks = ["default"]
endpoints = ["open_in"]
backends = ["open_out"]
[endpoints.open_in]
service = "echo"
options = { path_prefix = "/open" }
[backends.open_out]
service = "echo"
`).replace('network = "management"', 'network = "management"\nallowed_hosts = ["harmony-admin.internal"]'),
  });
  dp = await startDataplane(`${dir}/config.toml`, { HARMONY_WATCH: "0" });
});

after(async () => {
  await dp.stop();
  await upstream.close();
});

const token = (claims: Record<string, unknown>) =>
  new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256" })
    .setExpirationTime("5m")
    .sign(new TextEncoder().encode(SECRET));

async function seen(headers: Record<string, string>): Promise<Record<string, string>> {
  const r = await http(dp.url("default", "/id/x"), { headers });
  assert.equal(r.status, 200, r.text);
  return r.json() as Record<string, string>;
}

test("Connection: x-user cannot strip the identity header jwt_auth sets, nor smuggle the client's own", async () => {
  const bearer = `Bearer ${await token({ sub: "alice", groups: ["a", "b"] })}`;
  const got = await seen({
    authorization: bearer,
    connection: "x-user, x-groups, x-user-name",
    "x-user": "mallory",
    "x-user-name": "Mallory",
    "x-groups": "admins",
  });
  assert.equal(got["x-user"], "alice");
  assert.equal(got["x-groups"], '["a","b"]');
  assert.equal(got["x-user-name"], undefined, "the claim is absent, so the client's value is dropped, not passed on");
  // The client's own hop-by-hop nomination still works for headers the gateway does not set.
  const plain = await seen({ authorization: bearer, connection: "x-private", "x-private": "1", "x-public": "2" });
  assert.equal(plain["x-private"], undefined);
  assert.equal(plain["x-public"], "2");
  await assertStillServes(dp, "default", "/open");
});

test("Connection: x-harmony-mesh-source cannot strip the mesh identity, nor keep a forged one", async () => {
  const meshToken = (sub: string) =>
    new SignJWT({ mesh_id: "clinical" })
      .setProtectedHeader({ alg: "HS256" })
      .setIssuer("clinical")
      .setSubject(sub)
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(new TextEncoder().encode(SECRET));
  const send = async (headers: Record<string, string>) => {
    const r = await http(dp.url("default", "/mesh/x"), { headers });
    assert.equal(r.status, 200, r.text);
    return r.json() as Record<string, string>;
  };
  const got = await send({
    "x-harmony-mesh": await meshToken("gateway-a"),
    connection: "x-harmony-mesh-source",
    "x-harmony-mesh-source": "forged",
  });
  assert.equal(got["x-harmony-mesh-source"], "gateway-a");
  assert.equal(got["x-harmony-mesh"], undefined, "the mesh token itself does not travel on");
  const unsigned = await send({ connection: "x-user", "x-harmony-mesh-source": "forged" });
  assert.equal(unsigned["x-harmony-mesh-source"], undefined, "without a token there is no source");
  const named = await send({ "x-harmony-mesh": await meshToken("Zürich gw") });
  assert.equal(named["x-harmony-mesh-source"], "UTF-8''Z%C3%BCrich%20gw");
  await assertStillServes(dp, "default", "/open");
});

test("a claim in non-Latin-1 text is sent as an RFC 8187 ext-value instead of failing with 502", async () => {
  const got = await seen({ authorization: `Bearer ${await token({ sub: "jose", name: "José 山田" })}` });
  assert.equal(got["x-user-name"], "UTF-8''Jos%C3%A9%20%E5%B1%B1%E7%94%B0");
  assert.equal(decodeURIComponent(got["x-user-name"].slice("UTF-8''".length)), "José 山田");
  // Control characters and a value that looks encoded already are encoded too (so the prefix is unambiguous).
  const odd = await seen({ authorization: `Bearer ${await token({ sub: "UTF-8''x", name: "a\r\nx-evil: 1" })}` });
  assert.equal(odd["x-user"], "UTF-8''UTF-8%27%27x");
  assert.equal(odd["x-user-name"], "UTF-8''a%0D%0Ax-evil%3A%201");
  assert.equal(odd["x-evil"], undefined);
  await assertStillServes(dp, "default", "/open");
});

test("request heads nginx refuses are refused with 400: two Host headers, HTTP/0.9, a target naming another host", async () => {
  const port = dp.ports.default!;
  const cases: [string, string][] = [
    ["two Host headers", "GET /open HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n"],
    ["two Host headers, one empty", "GET /open HTTP/1.1\r\nHost: a.example\r\nhost:\r\n\r\n"],
    ["HTTP/0.9", "GET /open\r\n\r\n"],
    ["HTTP/0.9 spelled out", "GET /open HTTP/0.9\r\n\r\n"],
    ["absolute target, other Host", "GET http://internal.example/open HTTP/1.1\r\nHost: public.example\r\n\r\n"],
  ];
  for (const [what, head] of cases) {
    const r = await rawExchange(port, [head]);
    assert.equal(r.status, 400, `${what}: ${r.text}`);
    assert.match(r.text, /content-type: application\/problem\+json/i, what);
    assert.ok(r.closed, `${what}: the connection is closed`);
    await assertStillServes(dp, "default", "/open");
  }
  // The same target with its own host in Host is not refused for that reason.
  const ok = await rawExchange(port, ["GET http://h.example/open HTTP/1.1\r\nHost: h.example\r\n\r\n"], 1000);
  assert.notEqual(ok.status, 400, ok.text);
});

test("management on loopback answers only loopback names and allowed_hosts (DNS rebinding)", async () => {
  const port = dp.ports.management!;
  const info = (host: string) => http(dp.url("management", "/admin/info"), { headers: { host } });
  for (const host of ["evil.example", `evil.example:${port}`, "127.0.0.1.evil.example", "localhost.evil.example"]) {
    const r = await info(host);
    assert.equal(r.status, 421, `${host}: ${r.text}`);
    assert.equal(r.headers["content-type"], "application/problem+json");
  }
  const reload = await http(dp.url("management", "/admin/reload"), {
    method: "POST",
    headers: { host: "evil.example" },
  });
  assert.equal(reload.status, 421);
  for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, "harmony-admin.internal"])
    assert.equal((await info(host)).status, 200, host);
  // Probes answer under any Host: the kubelet sends the pod's IP.
  assert.equal((await http(dp.url("management", "/readyz"), { headers: { host: "10.1.2.3:9090" } })).status, 200);
});

test("management refuses state-changing requests with a foreign Origin", async () => {
  const port = dp.ports.management!;
  const post = (origin: string) => http(dp.url("management", "/admin/reload"), { method: "POST", headers: { origin } });
  for (const origin of ["http://evil.example", "null", `http://evil.example:${port}`]) {
    const r = await post(origin);
    assert.equal(r.status, 403, `${origin}: ${r.text}`);
  }
  assert.equal((await post(`http://127.0.0.1:${port}`)).status, 200, "same origin");
  assert.equal((await post("https://harmony-admin.internal")).status, 200, "an allowed host");
  // Reading is not state-changing: a foreign Origin on GET is answered (CORS keeps the body from that page).
  const get = await http(dp.url("management", "/admin/info"), { headers: { origin: "http://evil.example" } });
  assert.equal(get.status, 200);
  const info = get.json() as { last_reload: { trigger: string } };
  assert.equal(info.last_reload.trigger, "api", "only the allowed reloads ran");
});

test("loopback is decided on the resolved address, not on how bind_address is spelled", async () => {
  // The old test was /^(127\.|::1$|localhost$)/: its ^ bound only the first branch.
  for (const a of ["fe80::1", "2001:db8::1", "0.0.0.0", "::", "10.0.0.127"]) assert.equal(isLoopbackIp(a), false, a);
  for (const a of ["127.0.0.1", "127.8.9.10", "::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"])
    assert.equal(isLoopbackIp(a), true, a);
  assert.equal(await isLoopbackAddress("localhost"), true);
  assert.equal(await isLoopbackAddress("no-such-host.invalid"), false);

  // End to end: management on ::1 written long-hand needs no token, being loopback.
  const dir = writeTree({
    "config.toml": baseConfig().replace(
      '[network.management.http]\nbind_address = "127.0.0.1"',
      '[network.management.http]\nbind_address = "0:0:0:0:0:0:0:1"',
    ),
  });
  const v6 = await startDataplane(`${dir}/config.toml`, { HARMONY_WATCH: "0" });
  try {
    const r = await http(`http://[::1]:${v6.ports.management}/admin/info`);
    assert.equal(r.status, 200, r.text);
  } finally {
    await v6.stop();
  }
});

test("an unknown Expect is answered 417 with a problem body, and the connection ends", async () => {
  const r = await rawExchange(dp.ports.default!, [
    "POST /id/x HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: 3\r\nX-Request-Id: expect-417\r\n\r\n",
  ]);
  assert.equal(r.status, 417, r.text);
  assert.match(r.text, /content-type: application\/problem\+json/i);
  const body = JSON.parse(r.text.slice(r.text.indexOf("\r\n\r\n") + 4)) as { status: number; instance: string };
  assert.equal(body.status, 417);
  assert.equal(body.instance, "urn:request:expect-417");
  assert.ok(r.closed, "the connection must end: the body was never read");
  await assertStillServes(dp, "default", "/open");
});
