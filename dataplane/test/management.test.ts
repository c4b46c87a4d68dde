/** Management API, health, metrics, secrets redaction and graceful shutdown, over real sockets. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  baseConfig,
  http,
  proxyPipeline,
  startDataplane,
  startUpstream,
  tempDir,
  writeTree,
  sleep,
} from "./helpers.js";

const SECRET = "s3cr3t-value-that-must-not-leak";

function configWith(upstream: string, extra = ""): string {
  return (
    baseConfig(extra) +
    proxyPipeline("api", "/api", upstream, `headers = { authorization = "Bearer ${SECRET}" }`) +
    `
[pipelines.echo]
networks = ["default"]
endpoints = ["echo_in"]
backends = ["echo_out"]
[endpoints.echo_in]
service = "echo"
[endpoints.echo_in.options]
path_prefix = "/echo"
methods = ["GET", "POST"]
[backends.echo_out]
service = "echo"

[targets.partner]
type = "http"
url = "https://user:${SECRET}@partner.example/api"
password = "${SECRET}"
password_file = "/etc/harmony/password"
`
  );
}

test("management routes have their documented shapes and counters follow traffic", async (t) => {
  const upstream = await startUpstream((_req, res) => res.end("up"));
  t.after(() => upstream.close());
  const cfg = join(writeTree({ "config.toml": configWith(upstream.url) }), "config.toml");
  const dp = await startDataplane(cfg);
  t.after(() => dp.stop());
  const m = (p: string) => dp.url("management", p);

  assert.deepEqual((await http(m("/healthz"))).json(), { status: "ok" });
  const ready = await http(m("/readyz"));
  assert.equal(ready.status, 200);
  const readyBody = ready.json() as { status: string; config_hash: string };
  assert.equal(readyBody.status, "ready");

  const info = (await http(m("/admin/info"))).json() as Record<string, unknown> & {
    config: { hash: string; files: string[] };
    last_reload: { ok: boolean; trigger: string };
  };
  assert.equal(info.id, "test");
  assert.match(String(info.version), /^\d+\.\d+\.\d+$/);
  assert.equal(typeof info.uptime_seconds, "number");
  assert.ok((info.uptime_seconds as number) < 60, "uptime is an uptime, not a clock");
  assert.match(info.config.hash, /^[0-9a-f]{64}$/);
  assert.deepEqual(info.config.files, [cfg]);
  assert.equal(info.last_reload.ok, true);
  assert.equal(info.last_reload.trigger, "startup");
  assert.equal(readyBody.config_hash, info.config.hash, "/readyz reports the serving config hash");

  const pipelines = (await http(m("/admin/pipelines"))).json() as {
    pipelines: { name: string; backend: string | null; middleware: unknown }[];
  };
  assert.deepEqual(pipelines.pipelines.map((p) => [p.name, p.backend]).sort(), [
    ["api", "api_out"],
    ["echo", "echo_out"],
  ]);
  assert.deepEqual(pipelines.pipelines.find((p) => p.name === "api")?.middleware, {
    left: ["passthru"],
    right: ["passthru"],
  });

  const routes = (await http(m("/admin/routes"))).json() as {
    routes: { path: string; methods: string[]; network: string; pipeline: string }[];
  };
  assert.deepEqual(
    routes.routes.map((r) => [r.network, r.path, r.methods.join(","), r.pipeline]),
    [
      ["default", "/api", "*", "api"],
      ["default", "/echo", "GET,POST", "echo"],
    ],
  );

  // Secrets are redacted in /admin/config; the places they come from are not.
  const config = await http(m("/admin/config"));
  assert.equal(config.status, 200);
  assert.ok(!config.text.includes(SECRET), config.text);
  const doc = (config.json() as { config: { targets: { partner: Record<string, string> } } }).config;
  assert.equal(doc.targets.partner.password, "<redacted>");
  assert.equal(doc.targets.partner.password_file, "/etc/harmony/password");
  assert.equal(doc.targets.partner.url, "https://<redacted>@partner.example/api");

  // Counters move with traffic.
  const count = async (labels: string) => {
    const text = (await http(m("/metrics"))).text;
    const line = text.split("\n").find((l) => l.startsWith("harmony_http_requests_total{") && l.includes(labels));
    return line ? Number(line.split(" ").pop()) : 0;
  };
  const label = 'pipeline="echo",endpoint="echo_in",backend="echo_out",method="GET",status="200"';
  const before = await count(label);
  for (let i = 0; i < 7; i++) assert.equal((await http(dp.url("default", "/echo/x"))).status, 200);
  assert.equal(await count(label), before + 7);
  assert.equal((await http(dp.url("default", "/echo/x"), { method: "DELETE" })).status, 405);
  assert.equal((await http(dp.url("default", "/nowhere"))).status, 404);
  const text = (await http(m("/metrics"))).text;
  assert.match(text, /harmony_http_unrouted_requests_total\{network="default",status="405"\} 1/);
  assert.match(text, /harmony_http_unrouted_requests_total\{network="default",status="404"\} 1/);
  assert.match(
    text,
    /harmony_http_request_duration_seconds_count\{pipeline="echo",endpoint="echo_in",backend="echo_out"\} 7/,
  );
  assert.match(text, new RegExp(`harmony_config_info\\{hash="${info.config.hash}"\\} 1`));
  assert.match(text, /^harmony_config_last_reload_successful 1$/m);
  assert.match(text, /^process_resident_memory_bytes \d+/m);

  // The proxied request carried the secret header upstream, yet no log line contains it.
  assert.equal((await http(dp.url("default", "/api/x?token=abc"))).status, 200);
  const access = await dp.waitForLog((l) => l.message === "access" && l.path === "/api/x");
  const logs = JSON.stringify(dp.logs) + dp.stderr();
  assert.ok(!logs.includes(SECRET), "secret in logs");
  assert.ok(!logs.includes("token=abc"), "query strings are not logged");
  assert.equal(access.status, 200);
  assert.equal(access.pipeline, "api");
  assert.match(String(access.request_id), /^[0-9a-f-]{36}$/);

  // Unknown management paths are problem+json 404s.
  const missing = await http(m("/admin/nope"));
  assert.equal(missing.status, 404);
  assert.equal(missing.headers["content-type"], "application/problem+json");
});

test("admin routes require the token when one is configured; health and metrics stay open", async (t) => {
  const dir = tempDir();
  writeFileSync(join(dir, "admin-token"), "tok-123\n");
  const cfg = join(dir, "config.toml");
  writeFileSync(
    cfg,
    baseConfig().replace('network = "management"', 'network = "management"\ntoken_file = "admin-token"'),
  );
  const dp = await startDataplane(cfg);
  t.after(() => dp.stop());
  const m = (p: string) => dp.url("management", p);
  const denied = await http(m("/admin/info"));
  assert.equal(denied.status, 401);
  assert.match(String(denied.headers["www-authenticate"]), /^Bearer/);
  assert.equal((await http(m("/admin/info"), { headers: { authorization: "Bearer wrong" } })).status, 401);
  assert.equal((await http(m("/admin/info"), { headers: { authorization: "Bearer tok-123" } })).status, 200);
  assert.equal((await http(m("/admin/reload"), { method: "POST" })).status, 401);
  assert.equal((await http(m("/healthz"))).status, 200);
  assert.equal((await http(m("/metrics"))).status, 200);
  assert.ok(!JSON.stringify(dp.logs).includes("tok-123"));
});

test("SIGTERM drains in-flight requests, refuses new connections and exits 0", async (t) => {
  const upstream = await startUpstream((_req, res) => {
    setTimeout(() => res.end("finished"), 700);
  });
  t.after(() => upstream.close());
  const cfg = join(
    writeTree({ "config.toml": baseConfig() + proxyPipeline("slow", "/slow", upstream.url) }),
    "config.toml",
  );
  const dp = await startDataplane(cfg);
  const port = dp.ports.default!;
  const inflight = [http(dp.url("default", "/slow/1")), http(dp.url("default", "/slow/2"))];
  await sleep(150);
  const exit = dp.stop("SIGTERM");
  await sleep(100);
  await assert.rejects(http(`http://127.0.0.1:${port}/slow/3`, { agent: false }), /ECONNREFUSED|ECONNRESET/);
  for (const r of await Promise.all(inflight)) {
    assert.equal(r.status, 200);
    assert.equal(r.text, "finished");
  }
  assert.equal(await exit, 0);
  assert.ok(dp.logs.some((l) => l.message === "draining" && l.signal === "SIGTERM"));
});

test("SIGTERM gives up on requests that outlive shutdown_timeout_ms", async (t) => {
  const upstream = await startUpstream(() => undefined); // never answers
  t.after(() => upstream.close());
  const cfg = join(
    writeTree({
      "config.toml":
        baseConfig().replace("shutdown_timeout_ms = 5000", "shutdown_timeout_ms = 300") +
        proxyPipeline("hang", "/hang", upstream.url),
    }),
    "config.toml",
  );
  const dp = await startDataplane(cfg);
  const hung = http(dp.url("default", "/hang")).catch((e: Error) => e);
  await sleep(150);
  const started = Date.now();
  assert.equal(await dp.stop("SIGTERM"), 0);
  assert.ok(Date.now() - started < 3000, "bounded by the timeout");
  assert.ok((await hung) instanceof Error, "the hung request was cut");
});
