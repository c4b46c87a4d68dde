/**
 * Authentication middleware over real sockets: jwt_auth against a JWKS server with key rotation
 * and against PEM keys and HMAC secrets, including the classic attacks (alg none, algorithm
 * confusion, forged and malformed tokens); basic_auth with bcrypt, {SHA} and plain users; api_key
 * in a header or the query. Each failure checks its status, WWW-Authenticate and problem body.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync } from "node:crypto";
import { join } from "node:path";
import bcrypt from "bcryptjs";
import { SignJWT, exportJWK, generateKeyPair, type JWK } from "jose";

type SigningKey = Parameters<SignJWT["sign"]>[0];
import { baseConfig, http, startDataplane, startUpstream, writeTree, type Dataplane } from "./helpers.js";

let dp: Dataplane;
let jwks: Awaited<ReturnType<typeof startUpstream>>;
let served: JWK[] = [];
let fetches = 0;
const keys: Record<string, { privateKey: SigningKey; jwk: JWK }> = {};
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
const ed = generateKeyPairSync("ed25519");
const HS = "a-shared-secret-that-is-long-enough-for-hs512-0123456789";
const ISS = "https://idp.example";

async function newKey(kid: string) {
  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: "RS256", use: "sig" };
  keys[kid] = { privateKey, jwk };
  return jwk;
}

const token = (
  key: SigningKey,
  alg: string,
  claims: Record<string, unknown> = {},
  opts: { kid?: string; exp?: string | number; nbf?: number; aud?: string; iss?: string } = {},
) =>
  new SignJWT({ sub: "user-1", ...claims })
    .setProtectedHeader({ alg, ...(opts.kid ? { kid: opts.kid } : {}) })
    .setIssuedAt()
    .setIssuer(opts.iss ?? ISS)
    .setAudience(opts.aud ?? "harmony")
    .setExpirationTime(opts.exp ?? "5m")
    .setNotBefore(opts.nbf ?? Math.floor(Date.now() / 1000) - 10)
    .sign(key);

const pipeline = (name: string, mw: string) => `
[pipelines.${name}]
networks = ["default"]
endpoints = ["${name}_in"]
middleware = ["${name}_auth"]
backends = ["echo"]

[endpoints.${name}_in]
service = "http"
options = { path_prefix = "/${name}" }

[middleware.${name}_auth]
${mw}
`;

before(async () => {
  served = [await newKey("k1")];
  jwks = await startUpstream((req, res) => {
    fetches++;
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ keys: served }));
  });
  const dir = writeTree({
    "rsa.pem": rsa.publicKey.export({ type: "spki", format: "pem" }).toString(),
    "ec.pem": ec.publicKey.export({ type: "spki", format: "pem" }).toString(),
    "ed.pem": ed.publicKey.export({ type: "spki", format: "pem" }).toString(),
    "hs.secret": HS + "\n",
    htpasswd: `carol:{SHA}${createHash("sha1").update("carol-pass").digest("base64")}\n`,
    "config.toml": baseConfig(
      pipeline(
        "jwks",
        `type = "jwt_auth"
options = { jwks_url = "${jwks.url}/jwks.json", jwks_cooldown_secs = 0, issuer = "${ISS}", audience = "harmony", required_claims = ["sub"], claims_to_headers = { sub = "x-user" } }`,
      ) +
        pipeline(
          "slowjwks",
          `type = "jwt_auth"\noptions = { jwks_url = "${jwks.url}/jwks.json", jwks_cooldown_secs = 60 }`,
        ) +
        pipeline("rsa", `type = "jwt_auth"\noptions = { public_key_path = "rsa.pem", audience = "harmony" }`) +
        pipeline("ec", `type = "jwt_auth"\noptions = { public_key_path = "ec.pem" }`) +
        pipeline("ed", `type = "jwt_auth"\noptions = { public_key_path = "ed.pem" }`) +
        pipeline("hs", `type = "jwtauth"\noptions = { secret_file = "hs.secret", algorithms = ["HS512"] }`) +
        pipeline(
          "basic",
          `type = "basic_auth"\noptions = { users = { alice = "${bcrypt.hashSync("alice-pass", 8)}", bob = "bob-pass" }, htpasswd_path = "htpasswd" }`,
        ) +
        pipeline(
          "key",
          `type = "api_key"\noptions = { keys = ["sha256:${createHash("sha256").update("k-123").digest("hex")}"] }`,
        ) +
        pipeline("qkey", `type = "api_key"\noptions = { keys = ["q-456"], query_param = "api_key" }`) +
        `
[backends.echo]
service = "echo"
`,
    ),
  });
  dp = await startDataplane(join(dir, "config.toml"));
});

after(async () => {
  await dp?.stop();
  await jwks?.close();
});

const get = (path: string, headers: Record<string, string> = {}) => http(dp.url("default", path), { headers });
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
type Echo = { headers: Record<string, string>; query: Record<string, string[]> };

function assertDenied(r: Awaited<ReturnType<typeof get>>, detail: RegExp, status = 401) {
  assert.equal(r.status, status, r.text);
  assert.equal(r.headers["content-type"], "application/problem+json");
  assert.match((JSON.parse(r.text) as { detail: string }).detail, detail);
}

test("JWKS: a valid token passes with its claims forwarded; rotation refreshes on an unknown kid", async () => {
  const ok = await get("/jwks/x", {
    ...bearer(await token(keys.k1!.privateKey, "RS256", {}, { kid: "k1" })),
    "x-user": "forged",
  });
  assert.equal(ok.status, 200, ok.text);
  assert.equal((JSON.parse(ok.text) as Echo).headers["x-user"], "user-1", "the claim, not the client's header");
  const before = fetches;
  served = [await newKey("k2")]; // the IdP rotates
  const rotated = await get("/jwks/x", bearer(await token(keys.k2!.privateKey, "RS256", {}, { kid: "k2" })));
  assert.equal(rotated.status, 200, rotated.text);
  assert.equal(fetches, before + 1, "one refetch for the new kid");
  const old = await get("/jwks/x", bearer(await token(keys.k1!.privateKey, "RS256", {}, { kid: "k1" })));
  assertDenied(old, /no key matches/);
});

test("JWKS refetches are bounded by the cooldown", async () => {
  const stranger = await newKey("never-served");
  void stranger;
  await get("/slowjwks/x", bearer(await token(keys.k2!.privateKey, "RS256", {}, { kid: "k2" })));
  const before = fetches;
  for (let i = 0; i < 5; i++)
    assertDenied(
      await get(
        "/slowjwks/x",
        bearer(await token(keys["never-served"]!.privateKey, "RS256", {}, { kid: "never-served" })),
      ),
      /no key matches/,
    );
  assert.ok(fetches - before <= 1, `${fetches - before} fetches for 5 unknown-kid tokens`);
});

test("claims: expired, not yet valid, wrong audience or issuer, missing required claim", async () => {
  const k = keys.k2!.privateKey;
  const now = Math.floor(Date.now() / 1000);
  assertDenied(await get("/jwks/x", bearer(await token(k, "RS256", {}, { kid: "k2", exp: now - 3600 }))), /expired/);
  assertDenied(await get("/jwks/x", bearer(await token(k, "RS256", {}, { kid: "k2", nbf: now + 3600 }))), /"nbf"/);
  assertDenied(await get("/jwks/x", bearer(await token(k, "RS256", {}, { kid: "k2", aud: "someone-else" }))), /"aud"/);
  assertDenied(
    await get("/jwks/x", bearer(await token(k, "RS256", {}, { kid: "k2", iss: "https://evil.example" }))),
    /"iss"/,
  );
  const noSub = await new SignJWT({})
    .setProtectedHeader({ alg: "RS256", kid: "k2" })
    .setIssuer(ISS)
    .setAudience("harmony")
    .setExpirationTime("5m")
    .sign(k);
  assertDenied(await get("/jwks/x", bearer(noSub)), /"sub"/);
  // Within the leeway (60 s) an expiry just past still passes.
  assert.equal((await get("/jwks/x", bearer(await token(k, "RS256", {}, { kid: "k2", exp: now - 5 })))).status, 200);
});

test("attacks: alg none, HS256 signed with the RSA public key, a forged signature, garbage", async () => {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const payload = { sub: "admin", aud: "harmony", exp: Math.floor(Date.now() / 1000) + 300 };
  const none = `${b64({ alg: "none", typ: "JWT" })}.${b64(payload)}.`;
  assertDenied(await get("/rsa/x", bearer(none)), /algorithm is not accepted|malformed/);
  const pem = rsa.publicKey.export({ type: "spki", format: "pem" });
  const confused = await new SignJWT(payload).setProtectedHeader({ alg: "HS256" }).sign(Buffer.from(pem));
  assertDenied(await get("/rsa/x", bearer(confused)), /algorithm is not accepted/);
  const good = await token(rsa.privateKey, "RS256");
  const [h, , s] = good.split(".");
  assertDenied(await get("/rsa/x", bearer(`${h}.${b64(payload)}.${s}`)), /signature does not verify/);
  assertDenied(await get("/rsa/x", bearer("not.a.jwt")), /malformed/);
  const r = await get("/rsa/x", { authorization: "Basic Zm9vOmJhcg==" });
  assertDenied(r, /not a bearer token/);
  assert.match(r.headers["www-authenticate"] ?? "", /^Bearer realm="harmony", error="invalid_request"/);
  const missing = await get("/rsa/x");
  assertDenied(missing, /required/);
  assert.equal(missing.headers["www-authenticate"], 'Bearer realm="harmony"');
  assert.doesNotMatch(JSON.stringify(r), /Zm9vOmJhcg/, "credentials are not echoed");
});

test("PEM keys for RS256, PS256, ES256 and EdDSA; an HMAC secret from a file, HS512 only", async () => {
  assert.equal((await get("/rsa/x", bearer(await token(rsa.privateKey, "RS256")))).status, 200);
  assert.equal((await get("/rsa/x", bearer(await token(rsa.privateKey, "PS256")))).status, 200);
  assert.equal((await get("/ec/x", bearer(await token(ec.privateKey, "ES256")))).status, 200);
  assert.equal((await get("/ed/x", bearer(await token(ed.privateKey, "EdDSA")))).status, 200);
  assertDenied(await get("/ec/x", bearer(await token(rsa.privateKey, "RS256"))), /algorithm is not accepted/);
  const secret = new TextEncoder().encode(HS);
  assert.equal((await get("/hs/x", bearer(await token(secret, "HS512")))).status, 200);
  assertDenied(await get("/hs/x", bearer(await token(secret, "HS256"))), /algorithm is not accepted/);
});

test("basic_auth: bcrypt, plain and {SHA} users; wrong or unknown users get the same 401", async () => {
  const basic = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString("base64")}` });
  for (const [u, p] of [
    ["alice", "alice-pass"],
    ["bob", "bob-pass"],
    ["carol", "carol-pass"],
  ])
    assert.equal((await get("/basic/x", basic(u!, p!))).status, 200, u);
  const wrong = await get("/basic/x", basic("alice", "nope"));
  assertDenied(wrong, /wrong user name or password/);
  assert.equal(wrong.headers["www-authenticate"], 'Basic realm="harmony", charset="UTF-8"');
  assertDenied(await get("/basic/x", basic("mallory", "x")), /wrong user name or password/);
  assertDenied(await get("/basic/x", { authorization: "Basic !!!" }), /not Basic credentials/);
  assertDenied(await get("/basic/x"), /required/);
});

test("api_key: hashed keys in a header or the query; the key does not travel upstream", async () => {
  const ok = await get("/key/x", { "x-api-key": "k-123" });
  assert.equal(ok.status, 200);
  assert.equal((JSON.parse(ok.text) as Echo).headers["x-api-key"], undefined);
  assertDenied(await get("/key/x", { "x-api-key": "k-124" }), /not valid/);
  assertDenied(await get("/key/x"), /required/);
  const q = await get("/qkey/x?api_key=q-456&keep=1");
  assert.equal(q.status, 200);
  assert.deepEqual((JSON.parse(q.text) as Echo).query, { keep: ["1"] });
  assertDenied(await get("/qkey/x?api_key=wrong"), /not valid/);
});

test("a missing key file or a too-short HMAC secret is a config error, with file and key", async () => {
  const { runCli } = await import("./helpers.js");
  const dir = writeTree({
    "config.toml": baseConfig(
      pipeline("a", `type = "jwt_auth"\noptions = { public_key_path = "missing.pem" }`) +
        pipeline("b", `type = "jwt_auth"\noptions = { secret = "short" }`) +
        pipeline("c", `type = "basic_auth"\noptions = { htpasswd_path = "nope" }`) +
        pipeline("d", `type = "jwt_auth"\noptions = { public_key_path = "k.pem", algorithms = ["HS256"] }`) +
        `\n[backends.echo]\nservice = "echo"\n`,
    ),
    "k.pem": rsa.publicKey.export({ type: "spki", format: "pem" }).toString(),
  });
  const r = await runCli(["--check", "--config", join(dir, "config.toml")]);
  assert.equal(r.code, 1);
  assert.match(r.stdout + r.stderr, /middleware\.a_auth\.options\.public_key_path: cannot use missing\.pem/);
  assert.match(r.stdout + r.stderr, /middleware\.b_auth\.options\.secret: an HMAC secret must be at least 32 bytes/);
  assert.match(r.stdout + r.stderr, /middleware\.c_auth\.options\.htpasswd_path: cannot read nope: ENOENT/);
  assert.match(r.stdout + r.stderr, /middleware\.d_auth\.options\.algorithms: HS256 cannot be verified with this key/);
  assert.doesNotMatch(r.stdout + r.stderr, /short/, "the secret's value is not printed");
});
