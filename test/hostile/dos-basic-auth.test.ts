/**
 * basic_auth under a wrong-password flood (issue 12): bcrypt used to run on the event loop, so 32
 * clients guessing passwords stalled every other pipeline for seconds. Verification now runs on a
 * worker pool; verified credentials are cached; a client that keeps failing gets 429. Real binary.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import bcrypt from "bcryptjs";
import { baseConfig, http, startDataplane, writeTree, type Dataplane } from "../../dataplane/test/helpers.js";
import { assertStillServes } from "./harness.js";

let dp: Dataplane;

const pipeline = (name: string, middleware: string) => `
[pipelines.${name}]
networks = ["default"]
endpoints = ["${name}_in"]
middleware = [${middleware}]
backends = ["echo"]

[endpoints.${name}_in]
service = "http"
options = { path_prefix = "/${name}" }
`;

const basic = (user: string, password: string) => ({
  authorization: "Basic " + Buffer.from(`${user}:${password}`).toString("base64"),
});

before(async () => {
  // Cost 10: each verification is a noticeable slice of CPU, as real deployments configure it.
  const slow = bcrypt.hashSync("right", 10);
  const fast = bcrypt.hashSync("right", 4);
  const slowest = bcrypt.hashSync("right", 12);
  const config = baseConfig(
    pipeline("flood", `"flood_auth"`) +
      pipeline("guarded", `"guarded_auth"`) +
      pipeline("free", "") +
      pipeline("narrow", `"narrow_auth"`) +
      `
[backends.echo]
service = "echo"

[middleware.flood_auth]
type = "basic_auth"
options = { users = { alice = "${slow}" }, failure_limit = 0 }

[middleware.narrow_auth]
type = "basic_auth"
options = { users = { carol = "${slowest}" }, failure_limit = 0, max_pending = 2 }

[middleware.guarded_auth]
type = "basic_auth"
options = { users = { bob = "${fast}" }, failure_limit = 3, trusted_proxies = ["127.0.0.1/32"] }
`,
  ).replace('log_level = "info"', 'log_level = "debug"');
  dp = await startDataplane(join(writeTree({ "config.toml": config }), "config.toml"));
});

after(async () => {
  await dp?.stop();
});

test("a wrong-password flood does not hold up an unrelated pipeline", { timeout: 120_000 }, async () => {
  let done = 0;
  const flood = Array.from({ length: 32 }, () =>
    http(dp.url("default", "/flood/x"), { headers: basic("alice", "wrong"), agent: false }).then((r) => {
      done++;
      return r;
    }),
  );
  // The flood is being verified once its first answer is out; 31 are still queued behind it.
  await Promise.race(flood);
  const atStart = done;
  for (let i = 0; i < 5; i++) {
    const r = await http(dp.url("default", "/free/x"), { agent: false });
    assert.equal(r.status, 200);
  }
  const during = done - atStart;
  const replies = await Promise.all(flood);
  for (const r of replies) assert.equal(r.status, 401);
  // On the event loop, every unrelated request waited behind rounds of all 31 hashes, so the flood
  // finished first. Off it, at most a few verifications complete while the 5 requests are answered.
  assert.ok(during <= 8, `${during} of the flood's verifications finished while 5 unrelated requests waited`);
  await assertStillServes(dp, "default", "/free/x");
});

test("verified credentials are cached: the second request does no bcrypt", { timeout: 60_000 }, async () => {
  const first = await http(dp.url("default", "/flood/x"), { headers: basic("alice", "right") });
  assert.equal(first.status, 200);
  const second = await http(dp.url("default", "/flood/x"), { headers: basic("alice", "right") });
  assert.equal(second.status, 200);
  const lines = (id: string | string[] | undefined) =>
    dp.logs.filter((l) => l.message === "basic_auth credentials accepted" && l.request_id === id);
  await dp.waitForLog(
    (l) => l.message === "basic_auth credentials accepted" && l.request_id === second.headers["x-request-id"],
  );
  assert.equal(lines(first.headers["x-request-id"])[0]?.cached, false);
  assert.equal(lines(second.headers["x-request-id"])[0]?.cached, true);
  // A wrong password is never answered from the cache.
  assert.equal((await http(dp.url("default", "/flood/x"), { headers: basic("alice", "righ") })).status, 401);
  // Neither the password nor its hash reach the log.
  const all = JSON.stringify(dp.logs) + dp.stderr();
  assert.ok(!all.includes("right"), "the password appears in the log");
});

test("a client that keeps failing gets 429 with Retry-After; other clients do not", async () => {
  const from = (ip: string, user: string, password: string) =>
    http(dp.url("default", "/guarded/x"), { headers: { ...basic(user, password), "x-forwarded-for": ip } });
  for (let i = 0; i < 3; i++) assert.equal((await from("203.0.113.7", "bob", `guess${i}`)).status, 401);
  const blocked = await from("203.0.113.7", "bob", "right");
  assert.equal(blocked.status, 429, "even the right password waits out the backoff");
  assert.match(blocked.headers["content-type"] ?? "", /problem\+json/);
  assert.ok(Number(blocked.headers["retry-after"]) >= 1);
  assert.equal((await from("203.0.113.8", "bob", "right")).status, 200);
  await assertStillServes(dp, "default", "/free/x");
});

test(
  "verifications beyond max_pending are refused with 503 and Retry-After, not queued",
  { timeout: 120_000 },
  async () => {
    // Eight at once against a limit of two, each a cost-12 hash: the first two are still being
    // verified when the others arrive.
    const replies = await Promise.all(
      Array.from({ length: 8 }, () =>
        http(dp.url("default", "/narrow/x"), { headers: basic("carol", "wrong"), agent: false }),
      ),
    );
    const statuses = replies.map((r) => r.status).sort();
    assert.ok(statuses.includes(503), `statuses: ${statuses.join(",")}`);
    assert.ok(
      statuses.every((s) => s === 401 || s === 503),
      `statuses: ${statuses.join(",")}`,
    );
    const busy = replies.find((r) => r.status === 503)!;
    assert.equal(busy.headers["retry-after"], "1");
    assert.match(busy.headers["content-type"] ?? "", /problem\+json/);
    // Once they are done, the slots are free again.
    assert.equal((await http(dp.url("default", "/narrow/x"), { headers: basic("carol", "wrong") })).status, 401);
  },
);
