/**
 * SIGTERM under load with `proxy.drain_delay_ms`, over real sockets: the order a load balancer
 * needs to lose no request. /readyz turns 503 while the listeners still serve; every response
 * during the drain closes its keep-alive connection; only then do the listeners close, and a
 * request still in flight finishes. The "load balancer" here is what kube-proxy does: it stops
 * sending new requests once the instance is not ready, never before.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { Agent, request } from "node:http";
import { connect as http2Connect, type ClientHttp2Session } from "node:http2";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  baseConfig,
  eventually,
  http,
  proxyPipeline,
  startDataplane,
  startUpstream,
  tempDir,
  writeTree,
} from "./helpers.js";

interface Outcome {
  status: number;
  connection: string | undefined;
  /** The request went on a pooled keep-alive connection. */
  reused?: boolean;
  error?: string;
}

/** One GET on `agent` (keep-alive pool); an error is an outcome, not a rejection. */
function get(url: string, agent: Agent | false): Promise<Outcome> {
  return new Promise((resolve) => {
    const req = request(url, { agent }, (res) => {
      res.resume();
      res.on("end", () =>
        resolve({ status: res.statusCode!, connection: res.headers.connection, reused: req.reusedSocket }),
      );
      res.on("error", (e) => resolve({ status: 0, connection: undefined, error: e.message }));
    });
    req.on("error", (e) => resolve({ status: 0, connection: undefined, error: (e as NodeJS.ErrnoException).code }));
    req.end();
  });
}

test("SIGTERM with drain_delay_ms: /readyz 503 first, steady load loses nothing, then the listeners close and in-flight requests finish", async (t) => {
  let release: () => void = () => undefined;
  const released = new Promise<void>((r) => (release = r));
  const upstream = await startUpstream((req, res) => {
    if (req.url?.startsWith("/slow")) void released.then(() => res.end("finished"));
    else res.end("ok");
  });
  t.after(() => {
    release();
    return upstream.close();
  });
  const config = baseConfig().replace(
    "shutdown_timeout_ms = 5000",
    // Long enough that the checks made after /readyz turned 503 run inside the drain on a loaded machine.
    "shutdown_timeout_ms = 20000\ndrain_delay_ms = 4000",
  );
  const cfg = join(writeTree({ "config.toml": config + proxyPipeline("api", "/api", upstream.url) }), "config.toml");
  const dp = await startDataplane(cfg);
  t.after(() => dp.stop("SIGKILL"));
  const url = dp.url("default", "/api/x");
  const readyz = dp.url("management", "/readyz");
  assert.equal((await http(readyz)).status, 200);

  const inflight = get(dp.url("default", "/api/slow"), false);
  // A client that holds an idle keep-alive connection across the signal (as conntrack keeps it
  // pinned to this pod, whatever the Service's endpoints say).
  const pinned = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => pinned.destroy());
  assert.equal((await get(url, pinned)).status, 200);

  // Steady load on a keep-alive pool until the balancer drops this instance.
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  t.after(() => agent.destroy());
  let dropped = false;
  const outcomes: Outcome[] = [];
  const worker = async () => {
    while (!dropped) outcomes.push(await get(url, agent));
  };
  const workers = Array.from({ length: 8 }, worker);
  // The balancer: polls readiness and drops the instance on anything but 200.
  const balancer = (async () => {
    for (;;) {
      const o = await get(readyz, false);
      if (o.status !== 200) {
        dropped = true;
        return o;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();

  await new Promise((r) => setTimeout(r, 300));
  assert.ok(outcomes.length > 0, "load ran before the signal");
  const exit = dp.stop("SIGTERM");
  const seen = await balancer;
  await Promise.all(workers);
  assert.equal(seen.status, 503, `the balancer saw /readyz ${seen.status} (${seen.error ?? ""}), not 503`);

  // Not ready, yet serving: a new connection is accepted and told to close.
  const fresh = await get(url, false);
  assert.equal(fresh.status, 200, `a request during the drain: ${fresh.error ?? fresh.status}`);
  assert.equal(fresh.connection, "close");

  const again = await get(url, pinned);
  assert.equal(again.reused, true, "the pinned client reused its connection");
  assert.equal(again.status, 200, `a request on a kept-alive connection during the drain: ${again.error ?? ""}`);
  assert.equal(again.connection, "close", "and was told to reconnect");

  const failed = outcomes.filter((o) => o.status !== 200);
  assert.deepEqual(failed, [], `every one of ${outcomes.length} requests of the load succeeded`);

  // After the delay the listeners close; the request in flight still finishes.
  await dp.waitForLog((l) => l.message === "drain delay over; closing the listeners", 30_000);
  const refused = await get(url, false);
  assert.equal(refused.status, 0, "no new connection after the drain delay");
  release();
  const last = await inflight;
  assert.equal(last.status, 200, `the in-flight request: ${last.error ?? last.status}`);
  assert.equal(await exit, 0);
});

/** One GET on an HTTP/2 session: the status, or 0 and the error. */
function get2(session: ClientHttp2Session, path: string): Promise<{ status: number; error?: string }> {
  return new Promise((resolve) => {
    const r = session.request({ ":path": path });
    let status = 0;
    r.on("response", (h) => (status = Number(h[":status"])));
    r.on("data", () => undefined);
    r.on("end", () => resolve({ status }));
    r.on("error", (e: Error) => resolve({ status: 0, error: e.message }));
    r.end();
  });
}

test("SIGTERM with drain_delay_ms over HTTP/2: requests on an open session are served, then a graceful GOAWAY", async (t) => {
  const pki = tempDir("harmony-drain-pki-");
  execFileSync("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=localhost",
    "-addext",
    "subjectAltName=IP:127.0.0.1",
    "-keyout",
    join(pki, "tls.key"),
    "-out",
    join(pki, "tls.crt"),
  ]);
  const upstream = await startUpstream((_req, res) => res.end("ok"));
  t.after(() => upstream.close());
  const config =
    baseConfig().replace("shutdown_timeout_ms = 5000", "shutdown_timeout_ms = 20000\ndrain_delay_ms = 4000") +
    `
[network.secure.http]
bind_address = "127.0.0.1"
bind_port = 0
cert_path = "${join(pki, "tls.crt")}"
key_path = "${join(pki, "tls.key")}"
` +
    proxyPipeline("api", "/api", upstream.url).replace('networks = ["default"]', 'networks = ["secure"]');
  const dp = await startDataplane(join(writeTree({ "config.toml": config }), "config.toml"));
  t.after(() => dp.stop("SIGKILL"));
  const session = http2Connect(`https://127.0.0.1:${dp.ports.secure}`, { ca: readFileSync(join(pki, "tls.crt")) });
  t.after(() => session.destroy());
  session.on("error", () => undefined);
  let goaway = false;
  session.on("goaway", () => (goaway = true));
  assert.equal((await get2(session, "/api/x")).status, 200);

  const exit = dp.stop("SIGTERM");
  await eventually("/readyz answers 503", async () => (await http(dp.url("management", "/readyz"))).status === 503, {
    intervalMs: 20,
  });
  // The session opened before the signal is still served, and told to go away once that stream is done.
  const during = await get2(session, "/api/y");
  assert.equal(during.status, 200, `a request on the open session during the drain: ${during.error ?? ""}`);
  await eventually("the client got GOAWAY", () => goaway, { intervalMs: 20 });
  assert.ok(
    !dp.logs.some((l) => l.message === "drain delay over; closing the listeners"),
    "GOAWAY came with the response during the drain, not when the listeners closed",
  );
  assert.equal(await exit, 0);
});
