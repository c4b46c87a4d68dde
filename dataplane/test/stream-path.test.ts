/**
 * The promise-less path (executor `stream`, issue 18) against the general one, request for
 * request: a route where only the backend runs takes the backend's `stream`; a route with a
 * middleware hook takes the async chain. Both must answer the client, log and count alike for
 * every way an upstream exchange can end: an answer, an error status, an upstream that is down,
 * one too slow for its headers, one that dies mid-body, and a client that leaves.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { join } from "node:path";
import { compileGeneration } from "../src/pipeline/compile.js";
import { diskFs, loadConfig } from "../src/config/load.js";
import { resolveConfig } from "../src/config/resolve.js";
import { buildContextFactory, readFromDisk } from "../src/build-context.js";
import { createRegistry } from "../src/plugins/registry.js";
import { Metrics } from "../src/observability/metrics.js";
import { SharedResources } from "../src/runtime/resources.js";
import { createLogger } from "../src/observability/logger.js";
import {
  baseConfig,
  eventually,
  freePort,
  http,
  proxyPipeline,
  startDataplane,
  startUpstream,
  stopAll,
  writeTree,
  type Dataplane,
  type LogLine,
} from "./helpers.js";

const stops: (() => unknown)[] = [];
let dp: Dataplane;
/** Upstream requests still open, by path (a client that left must close its upstream request). */
const open = new Set<string>();

/** The same pipeline twice: `fast` (nothing but the backend) and `slow` (a request-side hook). */
function pair(upstream: string, backendOptions = ""): string {
  const hook = `
[middleware.noop_hook]
type = "headers"
[middleware.noop_hook.options.request]
set = {}
`;
  return (
    proxyPipeline("fast", "/fast", upstream, backendOptions) +
    proxyPipeline("slow", "/slow", upstream, backendOptions).replace(
      'middleware = ["passthru"]',
      'middleware = ["noop_hook"]',
    ) +
    hook
  );
}

before(async () => {
  const up = await startUpstream((req, res) => {
    const path = (req.url ?? "").replace(/^\/(?:fast|slow)/, "");
    open.add(req.url!);
    res.on("close", () => open.delete(req.url!));
    if (path.startsWith("/ok")) {
      res.writeHead(200, { "content-type": "text/plain", "x-up": "1" }).end("hello " + path);
    } else if (path.startsWith("/status/")) {
      const status = Number(path.slice(8));
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify({ status }));
    } else if (path === "/slow-head") {
      setTimeout(() => res.writeHead(200).end("late"), 3000).unref();
    } else if (path === "/die") {
      res.writeHead(200, { "content-type": "text/plain", "content-length": "1000" });
      res.write("x".repeat(100));
      setTimeout(() => res.socket?.destroy(), 30);
    } else if (path === "/hold") {
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("part"); // never finishes: the client leaves
    } else res.writeHead(404).end();
  });
  stops.push(() => up.close());
  // The same upstream path under both prefixes: strip_prefix = false keeps /fast or /slow in front.
  const down = `http://127.0.0.1:${await freePort()}`;
  const config =
    baseConfig(pair(up.url, "strip_prefix = false\nheaders_timeout_ms = 300")) +
    proxyPipeline("fastdown", "/fastdown", down) +
    proxyPipeline("slowdown", "/slowdown", down).replace('middleware = ["passthru"]', 'middleware = ["noop_hook"]');
  dp = await startDataplane(join(writeTree({ "config.toml": config }), "config.toml"));
  stops.push(() => dp.stop("SIGKILL"));
});
after(() => stopAll(stops));

/** One request's outcome as the client, the access log and the metrics see it, names left out. */
async function outcome(prefix: string, path: string, leave = false): Promise<Record<string, unknown>> {
  const id = `${prefix.slice(1)}-${path.replace(/\W/g, "")}-${Math.random().toString(36).slice(2)}`;
  let client: Record<string, unknown>;
  if (leave) {
    await new Promise<void>((resolve) => {
      const req = request(dp.url("default", prefix + path), { headers: { "x-request-id": id } }, (res) => {
        res.once("data", () => {
          req.destroy();
          resolve();
        });
      });
      req.on("error", () => undefined);
      req.end();
    });
    client = { left: true };
  } else {
    try {
      const r = await http(dp.url("default", prefix + path), { headers: { "x-request-id": id } });
      const problem = r.headers["content-type"] === "application/problem+json";
      const body = problem ? (r.json() as Record<string, unknown>) : r.text.replace(prefix, "<prefix>");
      if (problem) assert.equal((body as { instance?: string }).instance, `urn:request:${id}`);
      client = {
        status: r.status,
        body: problem ? { ...(body as object), instance: "<id>" } : body,
        type: r.headers["content-type"],
        up: r.headers["x-up"],
        id: r.headers["x-request-id"] === id,
      };
    } catch (e) {
      client = { cut: /aborted|ECONNRESET|socket hang up/.test(String(e)) };
    }
  }
  const line: LogLine = await dp.waitForLog((l) => l.message === "access" && l.request_id === id);
  const {
    timestamp: _t,
    request_id: _r,
    duration_ms: duration,
    upstream_ms: upstream,
    pipeline: _p,
    endpoint: _e,
    backend: _b,
    ...rest
  } = line;
  assert.equal(typeof duration, "number");
  return {
    client,
    log: { ...rest, path: String(rest.path).replace(prefix, "<prefix>"), upstream_ms: typeof upstream },
  };
}

const counts = async (pipeline: string): Promise<string[]> => {
  const text = (await http(dp.url("management", "/metrics"))).text;
  return [...text.matchAll(new RegExp(`^harmony_http_requests_total\\{pipeline="${pipeline}",[^}]*\\} \\d+$`, "gm"))]
    .map((m) => m[0].replace(/pipeline="\w+",endpoint="\w+",backend="\w+",/, ""))
    .sort();
};

describe("the promise-less path answers, logs and counts as the general one", () => {
  for (const path of ["/ok/a?q=1", "/status/404", "/status/500", "/status/204", "/slow-head", "/die", "/hold"]) {
    it(path, async () => {
      const leave = path === "/hold";
      const fast = await outcome("/fast", path, leave);
      const slow = await outcome("/slow", path, leave);
      assert.deepEqual(fast, slow);
      if (leave) assert.equal((fast.log as { status: number }).status, 499);
    });
  }

  it("an upstream that is down", async () => {
    const fast = await outcome("/fastdown", "/x");
    const slow = await outcome("/slowdown", "/x");
    assert.deepEqual(fast, slow);
    assert.equal((fast.client as { status: number }).status, 502);
  });

  it("the same counters, and no upstream request left open", async () => {
    await eventually("the same counters", async () => {
      assert.deepEqual(await counts("fast"), await counts("slow"));
      return true;
    });
    await eventually("every upstream request closed", () => open.size === 0, { context: () => [...open].join(", ") });
    assert.ok((await counts("fast")).length >= 5);
  });
});

describe("which routes take it", () => {
  it("a route with nothing but its backend; not one with a middleware hook, retries or several targets", () => {
    const dir = writeTree({
      "config.toml": baseConfig(
        pair("http://127.0.0.1:9", "") +
          proxyPipeline("retrying", "/retrying", "http://127.0.0.1:9", "retries = 1") +
          proxyPipeline("llhttp", "/llhttp", "http://127.0.0.1:9", 'client = "llhttp"'),
      ),
    });
    const loaded = loadConfig(join(dir, "config.toml"), diskFs);
    const resources = new SharedResources();
    const metrics = new Metrics({ process: false });
    const buildCtx = buildContextFactory(loaded, createLogger("error"), resources, readFromDisk, metrics);
    const { config, problems } = resolveConfig(loaded, createRegistry(), buildCtx);
    assert.ok(config, JSON.stringify(problems));
    const { generation } = compileGeneration(config, buildCtx, metrics, loaded.locate);
    void resources.closeAll(); // pools made while compiling have never connected
    const routes = new Map(
      generation!.tables
        .get("default")!
        .list()
        .map((e) => [e.prefix, e.route]),
    );
    assert.equal(typeof routes.get("/fast")!.stream, "function");
    assert.equal(typeof routes.get("/llhttp")!.stream, "function");
    assert.equal(routes.get("/slow")!.stream, undefined);
    assert.equal(routes.get("/retrying")!.stream, undefined);
  });
});
