/**
 * A mesh of two data-plane processes on loopback: A's egress signs a short-lived mesh JWT, B's
 * ingress verifies it. With `mode = "mesh"` B refuses callers outside the mesh (403); a token from
 * another mesh secret is 401. HS256 and RS256 meshes.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { join } from "node:path";
import { SignJWT } from "jose";
import { baseConfig, freePort, http, runCli, startDataplane, writeTree, type Dataplane } from "./helpers.js";

let a: Dataplane;
let b: Dataplane;
const SECRET = "mesh-secret-of-at-least-thirty-two-bytes!!";
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });

type Echo = { headers: Record<string, string> };

before(async () => {
  const bPort = await freePort();
  const bDir = writeTree({
    "public.pem": rsa.publicKey.export({ type: "spki", format: "pem" }).toString(),
    // B listens on a known port: A's backends and B's ingress urls name it.
    "config.toml": baseConfig(
      `
[mesh.clinical]
type = "http"
provider = "local"
jwt_secret_env = "MESH_SECRET"
ingress = ["records_in"]

[mesh.imaging]
type = "http"
provider = "local"
jwt_public_key_path = "public.pem"
ingress = ["images_in"]

[pipelines.records]
networks = ["default"]
endpoints = ["records"]
backends = ["echo"]
[pipelines.records.mesh.ingress.records_in]
type = "http"
urls = ["http://127.0.0.1:${bPort}/records"]
mode = "mesh"

[pipelines.images]
networks = ["default"]
endpoints = ["images"]
backends = ["echo"]
[pipelines.images.mesh.ingress.images_in]
type = "http"
urls = ["http://127.0.0.1:${bPort}/images"]

[endpoints.records]
service = "http"
options = { path_prefix = "/records" }

[endpoints.images]
service = "http"
options = { path_prefix = "/images" }

[backends.echo]
service = "echo"
`,
      { id: "gateway-b" },
    ).replace(/(\[network\.default\.http\]\nbind_address = "127\.0\.0\.1"\n)bind_port = 0/, `$1bind_port = ${bPort}`),
  });
  b = await startDataplane(join(bDir, "config.toml"), { MESH_SECRET: SECRET });
  const aDir = writeTree({
    "private.pem": rsa.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    "config.toml": baseConfig(
      `
[mesh.clinical]
type = "http"
provider = "local"
jwt_secret_env = "MESH_SECRET"
egress = ["to_records"]

[mesh.imaging]
type = "http"
provider = "local"
jwt_private_key_path = "private.pem"
egress = ["to_images"]

[pipelines.records]
networks = ["default"]
endpoints = ["records"]
backends = ["b_records"]
[pipelines.records.mesh.egress.to_records]
type = "http"

[pipelines.images]
networks = ["default"]
endpoints = ["images"]
backends = ["b_images"]
[pipelines.images.mesh.egress.to_images]
type = "http"

[endpoints.records]
service = "http"
options = { path_prefix = "/records" }

[endpoints.images]
service = "http"
options = { path_prefix = "/images" }

[backends.b_records]
service = "http"
options = { base_url = "http://127.0.0.1:${bPort}/records" }

[backends.b_images]
service = "http"
options = { base_url = "http://127.0.0.1:${bPort}/images" }
`,
      { id: "gateway-a" },
    ),
  });
  a = await startDataplane(join(aDir, "config.toml"), { MESH_SECRET: SECRET });
});

after(async () => {
  await a?.stop();
  await b?.stop();
});

test("through the mesh: A signs, B verifies and names the source (HS256 and RS256)", async () => {
  for (const path of ["/records/x", "/images/x"]) {
    const r = await http(a.url("default", path), { headers: { "x-harmony-mesh-source": "forged" } });
    assert.equal(r.status, 200, `${path}: ${r.text}`);
    const seen = JSON.parse(r.text) as Echo;
    assert.equal(seen.headers["x-harmony-mesh-source"], "gateway-a");
    assert.equal(seen.headers["x-harmony-mesh"], undefined, "the token stops at the ingress");
  }
});

test("mode = mesh refuses outsiders with 403; default mode lets them in; forged tokens are 401", async () => {
  const outsider = await http(b.url("default", "/records/x"));
  assert.equal(outsider.status, 403);
  assert.match((JSON.parse(outsider.text) as { detail: string }).detail, /mesh "clinical"/);
  assert.equal((await http(b.url("default", "/images/x"))).status, 200, "default mode admits non-mesh traffic");
  const forged = await new SignJWT({ mesh_id: "clinical" })
    .setProtectedHeader({ alg: "HS256" })
    .setIssuer("clinical")
    .setSubject("intruder")
    .setIssuedAt()
    .setExpirationTime("5m")
    .sign(new TextEncoder().encode("another-secret-that-is-also-long-enough"));
  const r = await http(b.url("default", "/records/x"), { headers: { "x-harmony-mesh": forged } });
  assert.equal(r.status, 401);
  const expired = await new SignJWT({ mesh_id: "clinical" })
    .setProtectedHeader({ alg: "HS256" })
    .setIssuer("clinical")
    .setSubject("old")
    .setIssuedAt(Math.floor(Date.now() / 1000) - 3600)
    .setExpirationTime(Math.floor(Date.now() / 1000) - 1800)
    .sign(new TextEncoder().encode(SECRET));
  const e = await http(b.url("default", "/records/x"), { headers: { "x-harmony-mesh": expired } });
  assert.equal(e.status, 401);
  assert.match((JSON.parse(e.text) as { detail: string }).detail, /expired/);
});

test("mesh config errors: an egress no mesh lists, a missing secret variable", async () => {
  const dir = writeTree({
    "config.toml": baseConfig(`
[mesh.m]
type = "http"
provider = "local"
jwt_secret_env = "NOT_SET_ANYWHERE"
egress = ["listed"]

[pipelines.p]
networks = ["default"]
endpoints = ["e"]
backends = ["b"]
[pipelines.p.mesh.egress.listed]
type = "http"
[pipelines.p.mesh.egress.unlisted]
type = "http"

[endpoints.e]
service = "http"
options = { path_prefix = "/p" }

[backends.b]
service = "echo"
`),
  });
  const r = await runCli(["--check", "--config", join(dir, "config.toml")]);
  const out = r.stdout + r.stderr;
  assert.equal(r.code, 1);
  assert.match(out, /pipelines\.p\.mesh\.egress\.unlisted: no enabled \[mesh\.\*\] lists "unlisted" in its egress/);
  assert.match(out, /mesh "m": environment variable NOT_SET_ANYWHERE is not set/);
});
