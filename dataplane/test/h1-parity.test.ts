/**
 * Two gaps of the llhttp engine closed, over real sockets:
 * - trailers: the fields after a chunked body reach the dispatch handler's onResponseEnd as undici
 *   hands them (repeated names as arrays, a `__proto__` field an own property), checked on the
 *   engine's Dispatcher itself, side by side with undici's Pool;
 * - a queued request's abort: with every socket busy, a client that leaves while its request
 *   waits ends it at once (499 in the access log while the busy socket is still held), and the
 *   abandoned request costs no socket: the next one reuses the held one when it is free.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { request as httpRequest, type ServerResponse } from "node:http";
import { join } from "node:path";
import { Pool, type Dispatcher } from "undici";
import { H1Pool } from "../src/http1/pool.js";
import {
  baseConfig,
  eventually,
  http,
  proxyPipeline,
  startDataplane,
  startUpstream,
  writeTree,
  type Dataplane,
} from "./helpers.js";

let upstream: Awaited<ReturnType<typeof startUpstream>>;
let dp: Dataplane;
/** Connections the upstream accepted, and requests it received (paths). */
let connections = 0;
const seen: string[] = [];
const held: ServerResponse[] = [];

before(async () => {
  upstream = await startUpstream((req, res) => {
    seen.push(req.url!);
    if (req.url!.endsWith("/hold")) return void held.push(res);
    if (req.url!.endsWith("/trailers")) {
      res.setHeader("trailer", "x-sum, x-dup");
      res.write("body");
      res.addTrailers([
        ["x-sum", "abc"],
        ["X-Dup", "1"],
        ["x-dup", "2"],
        ["__proto__", "own"],
      ]);
      return void res.end();
    }
    res.end("ok");
  });
  upstream.server.on("connection", () => connections++);
  const cfg = writeTree({
    "config.toml": baseConfig() + proxyPipeline("q", "/q", upstream.url, 'client = "llhttp"\nmax_connections = 1'),
  });
  dp = await startDataplane(join(cfg, "config.toml"));
});

after(async () => {
  for (const r of held) r.destroy();
  await dp?.stop();
  await upstream?.close();
});

async function trailersVia(d: Dispatcher): Promise<Record<string, unknown>> {
  try {
    const r = await d.request({ path: "/trailers", method: "GET" });
    assert.equal(await r.body.text(), "body");
    return r.trailers;
  } finally {
    await d.close();
  }
}

test("trailers reach the handler's onResponseEnd as undici hands them", async () => {
  const u = await trailersVia(new Pool(upstream.url));
  const l = await trailersVia(
    new H1Pool(upstream.url, {
      connections: 1,
      keepAliveTimeout: 4000,
      headersTimeout: 10_000,
      bodyTimeout: 10_000,
      connectTimeout: 5000,
    }),
  );
  assert.deepEqual(l, u);
  assert.equal(l["x-sum"], "abc");
  assert.deepEqual(l["x-dup"], ["1", "2"]);
  assert.ok(Object.hasOwn(l, "__proto__"), "a __proto__ trailer is an own field");
  assert.equal(Object.getOwnPropertyDescriptor(l, "__proto__")?.value, "own");
});

async function inFlight(): Promise<number> {
  const text = (await http(dp.url("management", "/metrics"))).text;
  return Number(/^harmony_http_requests_in_flight (\d+)/m.exec(text)?.[1] ?? NaN);
}

test("a client leaving while its request waits for a socket ends it at once, and costs no socket", async () => {
  connections = 0;
  // A takes the pool's only socket and is held by the upstream.
  const a = http(dp.url("default", "/q/hold"));
  await eventually("the upstream holds A", () => held.length === 1);
  // B waits for that socket (both are in the pipeline once the gauge says 2).
  const b = httpRequest(dp.url("default", "/q/b"));
  b.on("error", () => undefined);
  b.end();
  await eventually("B in flight", async () => (await inFlight()) === 2);
  b.destroy();
  // B is over while A still holds the socket: it did not wait for one to say so.
  const line = await dp.waitForLog((l) => l.message === "access" && l.path === "/q/b");
  assert.equal(line.status, 499);
  assert.equal(held.length, 1, "A is still held");
  held.shift()!.end("a");
  assert.equal((await a).text, "a");
  // C goes out on A's socket: B's abort did not close it.
  assert.equal((await http(dp.url("default", "/q/c"))).text, "ok");
  assert.equal(connections, 1);
  assert.deepEqual(
    seen.filter((p) => p !== "/trailers"),
    ["/hold", "/c"],
  );
});
