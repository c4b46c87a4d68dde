/**
 * 5xx answers and a backend's several targets, as Envoy's outlier detection (`consecutive_5xx`)
 * and retry policy (`retry_on: 5xx`) treat them: a target that starts answering 500 mid-load is
 * ejected after `consecutive_5xx` of them, and with `retry_on_5xx` no idempotent request fails
 * meanwhile; without it the 500s pass through until the ejection, and never more of them.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { once } from "node:events";
import { join } from "node:path";
import { baseConfig, http, startDataplane, writeTree, type Dataplane } from "./helpers.js";

/** An upstream that says who it is, or answers 500 while `broken`. */
class Target {
  server!: Server;
  port = 0;
  broken = false;
  errors = 0;

  constructor(readonly name: string) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      req.resume();
      if (this.broken) {
        this.errors++;
        res.statusCode = 500;
        return res.end("broken");
      }
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ target: this.name }));
    });
    this.server.listen(0, "127.0.0.1");
    await once(this.server, "listening");
    this.port = (this.server.address() as { port: number }).port;
  }

  stop(): void {
    this.server.close();
    this.server.closeAllConnections();
  }
}

const targets = { a1: new Target("a1"), b1: new Target("b1"), a2: new Target("a2"), b2: new Target("b2") };
let dp: Dataplane;

const route = (name: string, a: string, b: string, options: string) => `
[targets.${name}_a]
connection.host = "127.0.0.1"
connection.port = ${targets[a as keyof typeof targets].port}

[targets.${name}_b]
connection.host = "127.0.0.1"
connection.port = ${targets[b as keyof typeof targets].port}

[pipelines.${name}]
networks = ["default"]
endpoints = ["${name}_in"]
backends = ["${name}"]

[endpoints.${name}_in]
service = "http"
options = { path_prefix = "/${name}" }

[backends.${name}]
service = "http"
targets = ["${name}_a", "${name}_b"]
options = { ${options} }
`;

before(async () => {
  for (const t of Object.values(targets)) await t.start();
  const dir = writeTree({
    "config.toml": baseConfig(
      route("retry", "a1", "b1", "retry_on_5xx = true, consecutive_5xx = 3, eject_secs = 600") +
        route("eject", "a2", "b2", "eject_secs = 600"),
    ),
  });
  dp = await startDataplane(join(dir, "config.toml"));
});

after(async () => {
  await dp?.stop();
  for (const t of Object.values(targets)) t.stop();
});

async function metric(name: string, labels: string): Promise<number | undefined> {
  const text = (await http(dp.url("management", "/metrics"))).text;
  const m = new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : undefined;
}

test("retry_on_5xx: a target turning to 500 mid-load fails no idempotent request and is ejected", async () => {
  const total = 200;
  const statuses: number[] = [];
  let next = 0;
  const worker = async () => {
    while (next < total) {
      next++;
      const r = await http(dp.url("default", `/retry/item/${next}`));
      statuses.push(r.status);
      if (statuses.length === 40) targets.b1.broken = true;
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  assert.equal(statuses.length, total);
  assert.deepEqual(
    statuses.filter((s) => s !== 200),
    [],
    "every GET answered 200 although b1 answered 500",
  );
  assert.ok(targets.b1.errors >= 3, `b1 answered ${targets.b1.errors} 500s`);
  assert.equal(await metric("harmony_upstream_target_healthy", 'backend="retry",target="retry_b"'), 0);
  assert.ok(
    ((await metric("harmony_upstream_target_requests_total", 'backend="retry",target="retry_b",outcome="retried"')) ??
      0) >= 3,
  );
  // Ejected: b1 sees nothing more.
  const seen = targets.b1.errors;
  for (let i = 0; i < 6; i++) assert.equal((await http(dp.url("default", "/retry/x"))).status, 200);
  assert.equal(targets.b1.errors, seen);
});

test("default consecutive_5xx (5): without retries the 500s pass through, five of them, then the target is out", async () => {
  targets.b2.broken = true;
  const statuses: number[] = [];
  for (let i = 0; i < 30; i++) statuses.push((await http(dp.url("default", "/eject/x"))).status);
  assert.equal(statuses.filter((s) => s === 500).length, 5, statuses.join(","));
  assert.deepEqual(statuses.slice(-10), Array(10).fill(200));
  assert.equal(await metric("harmony_upstream_target_healthy", 'backend="eject",target="eject_b"'), 0);
});
