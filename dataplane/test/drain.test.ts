/**
 * SIGTERM under load with `proxy.drain_delay_ms`, over real sockets: the order a load balancer
 * needs to lose no request. /readyz turns 503 while the listeners still serve; every response
 * during the drain closes its keep-alive connection; only then do the listeners close, and a
 * request still in flight finishes. The "load balancer" here is what kube-proxy does: it stops
 * sending new requests once the instance is not ready, never before.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Agent, request } from "node:http";
import { join } from "node:path";
import { baseConfig, http, proxyPipeline, startDataplane, startUpstream, writeTree } from "./helpers.js";

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
