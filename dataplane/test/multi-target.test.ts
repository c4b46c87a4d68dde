/**
 * A backend over several targets (`targets = ["a", "b"]`), against two real upstreams: round robin
 * and least request, a target killed mid-load with no failed idempotent request, passive ejection
 * and return after the cool-down, active health checks, and per-target metrics.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server, type ServerResponse } from "node:http";
import { once } from "node:events";
import { join } from "node:path";
import { baseConfig, eventually, http, runCli, startDataplane, writeTree, type Dataplane } from "./helpers.js";

/** An upstream that says who it is; `hold` parks /hold requests until released; `sick` fails /health. */
class Target {
  server!: Server;
  port = 0;
  hits = 0;
  sick = false;
  held: ServerResponse[] = [];

  constructor(readonly name: string) {}

  async start(port = 0): Promise<void> {
    this.server = createServer((req, res) => {
      if (req.url!.endsWith("/health")) {
        res.statusCode = this.sick ? 503 : 200;
        return res.end();
      }
      this.hits++;
      if (req.url!.endsWith("/hold")) return void this.held.push(res);
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ target: this.name }));
    });
    this.server.listen(port, "127.0.0.1");
    await once(this.server, "listening");
    this.port = (this.server.address() as { port: number }).port;
  }

  kill(): void {
    this.server.close();
    this.server.closeAllConnections();
  }

  release(): void {
    for (const r of this.held.splice(0)) r.end(JSON.stringify({ target: this.name }));
  }
}

const a = new Target("a");
const b = new Target("b");
let dp: Dataplane;

const route = (name: string, options: string) => `
[pipelines.${name}]
networks = ["default"]
endpoints = ["${name}_in"]
backends = ["${name}"]

[endpoints.${name}_in]
service = "http"
options = { path_prefix = "/${name}" }

[backends.${name}]
service = "http"
targets = ["a", "b"]
options = { ${options} }
`;

before(async () => {
  await a.start();
  await b.start();
  const dir = writeTree({
    "config.toml": baseConfig(
      `
[targets.a]
connection.host = "127.0.0.1"
connection.port = ${a.port}

[targets.b]
connection.host = "127.0.0.1"
connection.port = ${b.port}
` +
        route("rr", "max_failures = 2, eject_secs = 1") +
        route("lr", 'balance = "least_request"') +
        route("hc", 'health_check = { path = "/health", interval_secs = 0.2 }'),
    ),
  });
  dp = await startDataplane(join(dir, "config.toml"));
});

after(async () => {
  a.release();
  b.release();
  await dp?.stop();
  a.kill();
  b.kill();
});

const who = async (path: string) => ((await http(dp.url("default", path))).json() as { target: string }).target;

async function metric(name: string, labels: string): Promise<number | undefined> {
  const text = (await http(dp.url("management", "/metrics"))).text;
  const m = new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : undefined;
}

test("round robin: sequential requests alternate between the targets", async () => {
  const seen = [];
  for (let i = 0; i < 10; i++) seen.push(await who("/rr/x"));
  assert.deepEqual(seen, ["a", "b", "a", "b", "a", "b", "a", "b", "a", "b"]);
  assert.equal(await metric("harmony_upstream_target_requests_total", 'backend="rr",target="a",outcome="success"'), 5);
});

test("least request: while one target holds a request, the next ones go to the other", async () => {
  const parked = http(dp.url("default", "/lr/hold"));
  await eventually("the held request to reach a target", () => a.held.length + b.held.length === 1);
  const busy = a.held.length === 1 ? "a" : "b";
  const idle = busy === "a" ? "b" : "a";
  assert.deepEqual([await who("/lr/x"), await who("/lr/x"), await who("/lr/x")], [idle, idle, idle]);
  a.release();
  b.release();
  assert.equal((await parked).status, 200);
});

test("active health check: a target failing its probe leaves the rotation and comes back", async () => {
  b.sick = true;
  await eventually(
    "b marked down",
    async () => (await metric("harmony_upstream_target_healthy", 'backend="hc",target="b"')) === 0,
  );
  const seen = [];
  for (let i = 0; i < 6; i++) seen.push(await who("/hc/x"));
  assert.deepEqual(seen, ["a", "a", "a", "a", "a", "a"]);
  b.sick = false;
  await eventually(
    "b back",
    async () => (await metric("harmony_upstream_target_healthy", 'backend="hc",target="b"')) === 1,
  );
  const after = new Set<string>();
  for (let i = 0; i < 4; i++) after.add(await who("/hc/x"));
  assert.deepEqual([...after].sort(), ["a", "b"]);
});

test("a target killed mid-load: no idempotent request fails; it is ejected, then back after the cool-down", async () => {
  const total = 200;
  const statuses: number[] = [];
  let next = 0;
  let killed = false;
  const worker = async () => {
    while (next < total) {
      next++;
      const r = await http(dp.url("default", `/rr/item/${next}`));
      statuses.push(r.status);
      if (!killed && statuses.length >= 40) {
        killed = true;
        b.kill(); // in-flight and pooled connections to b die with it
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  assert.equal(statuses.length, total);
  assert.deepEqual(
    statuses.filter((s) => s !== 200),
    [],
    "every GET answered 200 although b died under load",
  );
  assert.ok(
    ((await metric("harmony_upstream_target_requests_total", 'backend="rr",target="b",outcome="retried"')) ?? 0) >= 1,
    "requests that failed on b were retried on a",
  );
  assert.equal(await metric("harmony_upstream_target_healthy", 'backend="rr",target="b"'), 0);

  // Back on its old port: after the cool-down it takes traffic again.
  const hitsBefore = b.hits;
  await b.start(b.port);
  await eventually("b to receive traffic again", async () => {
    await who("/rr/x");
    return b.hits > hitsBefore;
  });
  assert.equal(await metric("harmony_upstream_target_healthy", 'backend="rr",target="b"'), 1);
});

test("--check: several targets are for HTTP-family backends, each listed once", async () => {
  const dir = writeTree({
    "config.toml":
      baseConfig(`
[targets.a]
connection.host = "127.0.0.1"
connection.port = 4242
connection.protocol = "dicom"
`) +
      `
[pipelines.p]
networks = ["default"]
endpoints = ["in"]
backends = ["pacs", "dup"]

[endpoints.in]
service = "dicomweb"
options = { path_prefix = "/p" }

[backends.pacs]
service = "dicom"
targets = ["a", "a"]
options = { aet = "PACS" }

[backends.dup]
service = "http"
targets = ["x", "x"]

[targets.s1]
connection.host = "localhost"
connection.protocol = "https"
connection.tls.ca_path = "missing-ca.pem"

[targets.s2]
connection.host = "127.0.0.1"

[pipelines.q]
networks = ["default"]
endpoints = ["q_in"]
backends = ["secure", "lonely"]

[endpoints.q_in]
service = "http"
options = { path_prefix = "/q" }

[backends.secure]
service = "http"
targets = ["s1", "s2"]

[backends.lonely]
service = "http"
target_ref = "s2"
options = { health_check = { path = "/health" } }
`,
  });
  const r = await runCli(["--check", "--config", join(dir, "config.toml")]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /backends\.pacs\.targets: service "dicom" takes one target \(target_ref\)/);
  assert.match(r.stderr, /backends\.dup\.targets\[0\]: target "x" is not defined/);
  assert.match(r.stderr, /backends\.dup\.targets: target "x" is listed twice/);
  assert.match(
    r.stderr,
    /error: backends\.secure\.options\.upstreams\[0\]\.tls\.ca_path: cannot read missing-ca\.pem: ENOENT/,
  );
  assert.match(r.stderr, /warning: backends\.lonely\.options\.health_check: applies to a backend with several targets/);
});
