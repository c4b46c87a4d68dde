/**
 * `metadata_transform` over real sockets: a JOLT spec over the request's method, uri, headers,
 * query and cookies changes what a real upstream receives; a second one maps metadata; a right-side
 * one sets and removes response headers from that metadata; outputs that would pick the origin,
 * escape the base path or inject headers fail the request instead of reaching the upstream.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { baseConfig, http, runCli, startDataplane, startUpstream, writeTree, type Dataplane } from "./helpers.js";

let dp: Dataplane;
let upstream: Awaited<ReturnType<typeof startUpstream>>;
const seen: { method: string; url: string; headers: Record<string, unknown> }[] = [];

const pipeline = (name: string, middleware: string[]) => `
[pipelines.${name}]
networks = ["default"]
endpoints = ["${name}_in"]
middleware = [${middleware.map((m) => `"${m}"`).join(", ")}]
backends = ["up"]

[endpoints.${name}_in]
service = "http"
options = { path_prefix = "/${name}" }
`;

const mw = (name: string, options: string) => `
[middleware.${name}]
type = "metadata_transform"
options = ${options}
`;

before(async () => {
  upstream = await startUpstream((req, res) => {
    seen.push({ method: req.method!, url: req.url!, headers: req.headers });
    res.setHeader("content-type", "application/json");
    res.setHeader("x-upstream-secret", "s3cr3t");
    res.end(JSON.stringify({ ok: true }));
  });
  const dir = writeTree({
    "config.toml": baseConfig(
      pipeline("route", ["target", "meta", "resp"]) +
        pipeline("origin", ["origin"]) +
        pipeline("badheader", ["badheader"]) +
        pipeline("soft", ["soft", "resp"]) +
        mw("target", `{ spec_path = "target.json" }`) +
        mw("meta", `{ spec_path = "meta.json", transform_target = "metadata" }`) +
        mw("resp", `{ spec_path = "response.json", apply = "right" }`) +
        mw("origin", `{ spec_path = "origin.json" }`) +
        mw("badheader", `{ spec_path = "badheader.json" }`) +
        mw("soft", `{ spec_path = "origin.json", fail_on_error = false }`) +
        `
[backends.up]
service = "http"
options = { base_url = "${upstream.url}/base" }
`,
    ),
    "transforms/target.json": JSON.stringify([
      {
        operation: "shift",
        spec: {
          query_params: { to: "uri", keep: "query_params.kept" },
          headers: { "x-method-override": "method", "x-tenant": ["headers.x-tenant-id", "metadata.tenant"] },
        },
      },
      // "" removes a header: the client's cookies do not travel upstream.
      { operation: "default", spec: { headers: { cookie: "" } } },
    ]),
    "transforms/meta.json": JSON.stringify([{ operation: "shift", spec: { tenant: "region" } }]),
    "transforms/response.json": JSON.stringify([
      { operation: "shift", spec: { metadata: { region: "headers.x-region" } } },
      { operation: "default", spec: { headers: { "x-upstream-secret": "" } } },
    ]),
    "transforms/origin.json": JSON.stringify([{ operation: "shift", spec: { query_params: { host: "base_url" } } }]),
    "transforms/badheader.json": JSON.stringify([
      { operation: "shift", spec: { query_params: { v: "headers.x-injected" } } },
    ]),
  });
  dp = await startDataplane(join(dir, "config.toml"));
});

after(async () => {
  await dp?.stop();
  await upstream?.close();
});

test("left target_details: method, path, query and headers of the upstream request come from the spec", async () => {
  seen.length = 0;
  const r = await http(dp.url("default", "/route/original/path?to=/v2/items&keep=yes&drop=1"), {
    headers: { "x-method-override": "put", "x-tenant": "acme", cookie: "session=abc" },
  });
  assert.equal(r.status, 200, r.text);
  assert.equal(seen.length, 1);
  const got = seen[0]!;
  assert.equal(got.method, "PUT");
  assert.equal(got.url, "/base/v2/items?kept=yes");
  assert.equal(got.headers["x-tenant-id"], "acme");
  assert.equal(got.headers.cookie, undefined);
  // Right side: metadata set on the way in (tenant → region by the second spec) becomes a header.
  assert.equal(r.headers["x-region"], "acme");
  assert.equal(r.headers["x-upstream-secret"], undefined);
});

test("a uri from the transform is forwarded in canonical form", async () => {
  seen.length = 0;
  const r = await http(dp.url("default", "/route/x?to=/%2561dmin//%252a"));
  assert.equal(r.status, 200);
  assert.equal(seen[0]!.url, "/base/admin/%2A?to=/%2561dmin//%252a");
});

test("keys the spec leaves out keep their value", async () => {
  seen.length = 0;
  const r = await http(dp.url("default", "/route/a/b?x=1"), { method: "DELETE" });
  assert.equal(r.status, 200);
  assert.equal(seen[0]!.method, "DELETE");
  assert.equal(seen[0]!.url, "/base/a/b?x=1");
  assert.equal(r.headers["x-region"], undefined);
});

test("an output that picks the origin or escapes the base path fails the request before the upstream", async () => {
  seen.length = 0;
  const origin = await http(dp.url("default", "/origin/x?host=http://169.254.169.254"));
  assert.equal(origin.status, 500);
  assert.equal(
    (origin.json() as { detail: string }).detail,
    "the configured metadata transform failed on this request",
  );
  const traversal = await http(dp.url("default", "/route/x?to=/../admin"));
  assert.equal(traversal.status, 500);
  const authority = await http(dp.url("default", "/route/x?to=//evil.example/x"));
  assert.equal(authority.status, 500);
  // The uri's path gets the client path's canonical form: encoded dot segments and slashes too.
  for (const to of ["/%252e%252e/admin", "/x/..%252fadmin", "/%25c0%25ae%25c0%25ae/admin", "/a;b"])
    assert.equal((await http(dp.url("default", `/route/x?to=${to}`))).status, 500, to);
  const injected = await http(dp.url("default", "/badheader/x?v=a%0d%0aX-Evil:%201"));
  assert.equal(injected.status, 500);
  assert.equal(seen.length, 0, "nothing reached the upstream");
  const lines = dp.logs.filter((l) => l.message === "metadata_transform failed");
  assert.ok(lines.some((l) => /base_url cannot be set/.test(String(l.error))));
  assert.ok(lines.some((l) => /dot segments/.test(String(l.error))));
});

test("fail_on_error = false: the request goes on unchanged", async () => {
  seen.length = 0;
  const r = await http(dp.url("default", "/soft/x?host=http://elsewhere"));
  assert.equal(r.status, 200);
  assert.equal(seen[0]!.url, "/base/x?host=http://elsewhere");
});

test("a missing spec is a config error naming the key", async () => {
  const dir = writeTree({
    "config.toml": baseConfig(
      pipeline("m", ["gone"]) +
        mw("gone", `{ spec_path = "nope.json" }`) +
        `\n[backends.up]\nservice = "http"\noptions = { base_url = "http://127.0.0.1:9" }\n`,
    ),
  });
  const r = await runCli(["--check", "--config", join(dir, "config.toml")]);
  assert.equal(r.code, 1);
  assert.match(r.stdout + r.stderr, /middleware\.gone\.options\.spec_path: cannot read nope\.json: ENOENT/);
});
