/**
 * policies and path_filter over real sockets: every rule type, both config forms, the documented
 * evaluation (any deny → 403, no allow → 403), client addresses behind trusted proxies, rate
 * limits with 429 and RateLimit headers, and path tricks (encoded slashes, dot segments).
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { join } from "node:path";
import { baseConfig, http, runCli, startDataplane, writeTree, type Dataplane } from "./helpers.js";

let dp: Dataplane;

const pipeline = (name: string, mw: string, extra = "") => `
[pipelines.${name}]
networks = ["default"]
endpoints = ["${name}_in"]
middleware = ["${name}_mw"]
backends = ["echo"]

[endpoints.${name}_in]
service = "http"
options = { path_prefix = "/${name}" }

[middleware.${name}_mw]
${mw}
${extra}`;

const tomorrow = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"][
  (new Date().getUTCDay() + 1) % 7
];

const CONFIG = baseConfig(
  pipeline(
    "ip",
    `type = "policies"
options = { trusted_proxies = ["127.0.0.1/32", "::1/128"], policies = [{ rules = [{ type = "ip_allow", ip_addresses = ["10.0.0.0/8", "2001:db8::/32"] }] }] }`,
  ) +
    pipeline(
      "ref",
      `type = "policies"\noptions = { policies = ["corp"] }`,
      `
[policies.corp]
name = "Corporate"
rules = ["allow_reads", "deny_admin", "disabled_deny"]

[rules.allow_reads]
type = "method"
weight = 10
options = { methods = ["GET", "HEAD"] }

[rules.deny_admin]
type = "path"
weight = 100
options = { mode = "deny", paths = ["/admin/{*rest}"] }

[rules.disabled_deny]
type = "deny_all"
enabled = false
`,
    ) +
    pipeline(
      "filters",
      `type = "policies"
[[middleware.filters_mw.options.policies]]
rules = [
  { type = "allow_all" },
  { type = "header", mode = "deny", headers = [{ name = "x-debug", match_type = "exists" }] },
  { type = "user_agent", mode = "deny", patterns = ["/sqlmap|nikto/i"] },
  { type = "query_parameter", mode = "deny", parameters = [{ name = "debug", match_type = "exact", value = "1" }] },
  { type = "content_type", mode = "deny", content_types = ["application/xml", "text/*"] },
  { type = "geo", mode = "deny", country_codes = ["KP"] },
]`,
    ) +
    pipeline(
      "rate",
      `type = "policies"
options = { policies = [{ rules = [{ type = "allow_all" }, { type = "rate_limit", max_requests = 3, window_seconds = 60 }] }] }`,
    ) +
    pipeline(
      "hours",
      `type = "policies"
options = { policies = [{ rules = [{ type = "time_based", timezone = "Australia/Sydney", start_time = "00:00", end_time = "23:59" }] }] }`,
    ) +
    pipeline(
      "weekday",
      `type = "policies"
options = { policies = [{ rules = [{ type = "time_based", days_of_week = ["${tomorrow}"] }] }] }`,
    ) +
    pipeline("pf", `type = "path_filter"\noptions = { rules = ["/Patient/{id}", "/metadata"] }`) +
    pipeline("pf2", `type = "path_filter"\noptions = { rules = [{ allow = "/api/{*rest}" }, { deny = "/{*rest}" }] }`) +
    `
[backends.echo]
service = "echo"
`,
);

before(async () => {
  dp = await startDataplane(join(writeTree({ "config.toml": CONFIG }), "config.toml"));
});

after(async () => {
  await dp?.stop();
});

const req = (path: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}) =>
  http(dp.url("default", path), opts);
const detail = (r: { text: string }) => (JSON.parse(r.text) as { detail: string }).detail;

test("ip_allow: the client behind trusted proxies, never a spoofed X-Forwarded-For", async () => {
  assert.equal((await req("/ip/x")).status, 403, "127.0.0.1 is a proxy, not an allowed client");
  assert.equal((await req("/ip/x", { headers: { "x-forwarded-for": "10.1.2.3" } })).status, 200);
  assert.equal((await req("/ip/x", { headers: { "x-forwarded-for": "2001:db8::7" } })).status, 200);
  const spoofed = await req("/ip/x", { headers: { "x-forwarded-for": "10.1.2.3, 203.0.113.9" } });
  assert.equal(spoofed.status, 403, "the right-most untrusted hop is the client");
  assert.equal(detail(spoofed), "no rule allows this request");
});

test("the reference form: [policies] and [rules], weights, disabled rules, any deny wins", async () => {
  assert.equal((await req("/ref/records")).status, 200);
  const post = await req("/ref/records", { method: "POST", body: "{}" });
  assert.equal(post.status, 403);
  assert.equal(detail(post), "no rule allows this request");
  const admin = await req("/ref/admin/users");
  assert.equal(admin.status, 403);
  assert.equal(detail(admin), 'denied by rule "deny_admin"');
  assert.equal(admin.headers["content-type"], "application/problem+json");
});

test("header, user agent, query parameter, content type and geo rules", async () => {
  assert.equal((await req("/filters/x")).status, 200);
  assert.equal((await req("/filters/x", { headers: { "x-debug": "" } })).status, 403);
  assert.equal((await req("/filters/x", { headers: { "user-agent": "sqlmap/1.7" } })).status, 403);
  assert.equal((await req("/filters/x?debug=1")).status, 403);
  assert.equal((await req("/filters/x?debug=0")).status, 200);
  assert.equal(
    (await req("/filters/x", { method: "POST", headers: { "content-type": "text/plain" }, body: "x" })).status,
    403,
  );
  assert.equal(
    (await req("/filters/x", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" })).status,
    200,
  );
  assert.equal((await req("/filters/x", { headers: { "x-country-code": "kp" } })).status, 403);
  assert.equal((await req("/filters/x", { headers: { "x-country-code": "AU" } })).status, 200);
});

test("rate_limit: 429 with Retry-After beyond the limit, RateLimit headers throughout", async () => {
  const h = { "x-forwarded-for": "192.0.2.1" }; // not trusted here: the limit is per socket address
  const rs = [];
  for (let i = 0; i < 5; i++) rs.push(await req("/rate/x", { headers: h }));
  assert.deepEqual(
    rs.map((r) => r.status),
    [200, 200, 200, 429, 429],
  );
  assert.equal(rs[1]!.headers["ratelimit-remaining"], "1");
  const last = rs[4]!;
  assert.equal(last.headers["ratelimit-limit"], "3");
  assert.equal(last.headers["ratelimit-remaining"], "0");
  assert.ok(Number(last.headers["retry-after"]) >= 1 && Number(last.headers["retry-after"]) <= 60);
  assert.equal(detail(last), "rate limit exceeded");
});

test("time_based: a window in a time zone, days of the week", async () => {
  const hours = await req("/hours/x");
  // 23:59–00:00 Sydney time is outside the window; everything else is inside.
  const sydney = new Intl.DateTimeFormat("en-GB", {
    timeZone: "Australia/Sydney",
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  }).format(new Date());
  assert.equal(hours.status, sydney === "23:59" ? 403 : 200);
  assert.equal((await req("/weekday/x")).status, 403, `only ${tomorrow} is allowed`);
});

test("path_filter: allowed patterns, ordered allow/deny, and no path tricks", async () => {
  assert.equal((await req("/pf/Patient/123")).status, 200);
  assert.equal((await req("/pf/metadata")).status, 200);
  const other = await req("/pf/Observation/1");
  assert.equal(other.status, 404);
  assert.equal(other.headers["content-type"], "application/problem+json");
  assert.equal((await req("/pf/Patient/1/_history")).status, 404, "{id} is one segment");
  assert.equal((await req("/pf2/api/anything/below")).status, 200);
  assert.equal((await req("/pf2/private")).status, 403);
  // Sent as written (a WHATWG URL would resolve the dot segments before they left the client).
  const raw = (path: string) =>
    new Promise<number>((resolve, reject) => {
      const r = request({ host: "127.0.0.1", port: dp.ports.default, path }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      r.on("error", reject);
      r.end();
    });
  assert.equal(await raw("/pf/Patient/..%2f..%2fadmin"), 400);
  assert.equal(await raw("/pf/Patient/%2e%2e"), 400);
  assert.equal(await raw("/pf2/api/../private"), 400);
  assert.equal(await raw("/pf2/api/%2e%2e/private"), 400);
});

test("bad policies are config errors with their key paths", async () => {
  const dir = writeTree({
    "config.toml": baseConfig(
      pipeline("a", `type = "policies"\noptions = { policies = ["nope"] }`) +
        pipeline(
          "b",
          `type = "policies"\noptions = { trusted_proxies = ["10.0.0.0/40"], policies = [{ rules = [{ type = "teleport" }, { type = "ip_deny", ip_addresses = ["banana"] }, { type = "time_based", timezone = "Mars/Olympus" }] }] }`,
        ) +
        pipeline("c", `type = "path_filter"\noptions = { rules = ["no-slash"] }`) +
        `\n[backends.echo]\nservice = "echo"\n`,
    ),
  });
  const r = await runCli(["--check", "--config", join(dir, "config.toml")]);
  const out = r.stdout + r.stderr;
  assert.equal(r.code, 1);
  assert.match(out, /middleware\.a_mw\.options\.policies\[0\]: policy "nope" is not defined under \[policies\]/);
  assert.match(out, /middleware\.b_mw\.options\.policies\[0\]\.rules\[0\]: rule "0\.0": unknown rule type "teleport"/);
  assert.match(out, /rules\[1\]: rule "0\.1": not addresses or CIDRs: banana/);
  assert.match(out, /rules\[2\]: rule "0\.2": unknown time zone Mars\/Olympus/);
  assert.match(out, /middleware\.b_mw\.options\.trusted_proxies: not addresses or CIDRs: 10\.0\.0\.0\/40/);
  assert.match(out, /middleware\.c_mw\.options\.rules\[0\]: path pattern "no-slash" must start with \//);
});
