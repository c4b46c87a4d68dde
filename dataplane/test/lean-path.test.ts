/**
 * What the lean request path records and sends for every proxied request, kept while its cost was
 * cut (issue 18, bench/README.md "the lean path's cost over floor, by part"): the in-flight gauge
 * while requests are held and after, the request counter and both duration histograms, the
 * upstream's request headers (forwarding headers, request id, trace context) and the client's
 * response headers, and a client that leaves mid-exchange (the upstream request is aborted).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { join } from "node:path";
import type { IncomingHttpHeaders } from "node:http";
import {
  baseConfig,
  eventually,
  http,
  proxyPipeline,
  startDataplane,
  startUpstream,
  stopAll,
  writeTree,
  type Dataplane,
} from "./helpers.js";

const stops: (() => unknown)[] = [];
let dp: Dataplane;
/** Requests the upstream holds until released, and the headers each arrived with. */
const held: (() => void)[] = [];
const seen: IncomingHttpHeaders[] = [];
let aborted = 0;

before(async () => {
  const up = await startUpstream((req, res) => {
    seen.push(req.headers);
    res.on("close", () => {
      if (!res.writableFinished) aborted++;
    });
    if (req.url?.startsWith("/hold")) held.push(() => res.end("held"));
    else res.writeHead(200, { "content-type": "text/plain", "x-up": "1", connection: "keep-alive" }).end("ok");
  });
  stops.push(() => up.close());
  const dir = writeTree({ "config.toml": baseConfig(proxyPipeline("api", "/api", up.url)) });
  dp = await startDataplane(join(dir, "config.toml"));
  stops.push(() => dp.stop("SIGKILL"));
});
after(() => stopAll(stops));

const metrics = async () => (await http(dp.url("management", "/metrics"))).text;
const metric = (text: string, line: RegExp) => Number(line.exec(text)?.[1] ?? NaN);

describe("the lean path's bookkeeping", () => {
  it("the in-flight gauge counts requests while they are held, and 0 once they are answered", async () => {
    const N = 5;
    const responses = Array.from({ length: N }, (_, i) => http(dp.url("default", `/api/hold/${i}`)));
    await eventually("all held", () => held.length === N);
    assert.equal(metric(await metrics(), /^harmony_http_requests_in_flight (\d+)/m), N);
    for (const release of held.splice(0)) release();
    for (const r of await Promise.all(responses)) assert.equal(r.text, "held");
    assert.equal(metric(await metrics(), /^harmony_http_requests_in_flight (\d+)/m), 0);
  });

  it("each request counts once, in the counter and in both histograms", async () => {
    const count = (t: string) => ({
      total: metric(
        t,
        /^harmony_http_requests_total\{pipeline="api",endpoint="api_in",backend="api_out",method="GET",status="200"\} (\d+)/m,
      ),
      duration: metric(
        t,
        /^harmony_http_request_duration_seconds_count\{pipeline="api",endpoint="api_in",backend="api_out"\} (\d+)/m,
      ),
      upstream: metric(
        t,
        /^harmony_upstream_request_duration_seconds_count\{pipeline="api",backend="api_out"\} (\d+)/m,
      ),
    });
    const before = count(await metrics());
    for (let i = 0; i < 7; i++) assert.equal((await http(dp.url("default", "/api/x"))).status, 200);
    const after = count(await metrics());
    assert.deepEqual(
      {
        total: after.total - before.total,
        duration: after.duration - before.duration,
        upstream: after.upstream - before.upstream,
      },
      { total: 7, duration: 7, upstream: 7 },
    );
  });

  it("upstream request headers: forwarding, request id and a new span of the caller's trace", async () => {
    seen.length = 0;
    const trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    const r = await http(dp.url("default", "/api/h?q=1"), {
      headers: {
        "x-request-id": "rid-1",
        traceparent: `00-${trace}-00f067aa0ba902b7-01`,
        "x-forwarded-for": "10.0.0.1",
      },
    });
    assert.equal(r.status, 200);
    const h = seen[0]!;
    assert.equal(h["x-request-id"], "rid-1");
    assert.equal(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
    assert.equal(h["x-forwarded-proto"], "http");
    assert.match(String(h["x-forwarded-host"]), /^127\.0\.0\.1:\d+$/);
    const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(String(h.traceparent));
    assert.ok(m, String(h.traceparent));
    assert.equal(m[1], trace);
    assert.notEqual(m[2], "00f067aa0ba902b7", "a new span id for this hop");
    // The client's response: the upstream's end-to-end headers, our request id, no hop-by-hop ones.
    assert.equal(r.headers["x-request-id"], "rid-1");
    assert.equal(r.headers["x-up"], "1");
    assert.equal(r.headers["content-type"], "text/plain");

    seen.length = 0;
    const fresh = await http(dp.url("default", "/api/h"));
    const id = String(fresh.headers["x-request-id"]);
    assert.match(id, /^[0-9a-f-]{36}$/);
    assert.equal(seen[0]!["x-request-id"], id);
    assert.match(String(seen[0]!.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });

  it("a client that leaves while the upstream holds its request: the upstream request is aborted", async () => {
    const abortedBefore = aborted;
    const s = connect(dp.ports.default!, "127.0.0.1");
    s.write("GET /api/hold/gone HTTP/1.1\r\nhost: t\r\n\r\n");
    await eventually("held", () => held.length === 1);
    s.destroy();
    await eventually("upstream request aborted", () => aborted === abortedBefore + 1);
    held.splice(0);
    await eventually(
      "nothing in flight",
      async () => metric(await metrics(), /^harmony_http_requests_in_flight (\d+)/m) === 0,
    );
    const line = await dp.waitForLog((l) => l.message === "access" && l.path === "/api/hold/gone");
    assert.equal(line.status, 499);
  });
});
