/** What logs and metrics record when an upstream fails mid-stream or the client leaves. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { join } from "node:path";
import { baseConfig, http, proxyPipeline, sleep, startDataplane, startUpstream, writeTree } from "./helpers.js";

test("an upstream that dies mid-body: the client sees a cut connection, logs and metrics say 502", async (t) => {
  const upstream = await startUpstream((req, res) => {
    if (req.url === "/leave") {
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("part");
      return; // never finishes; the client leaves
    }
    res.writeHead(200, { "content-type": "text/plain", "content-length": "1000" });
    res.write("x".repeat(100));
    setTimeout(() => res.socket?.destroy(), 50);
  });
  t.after(() => upstream.close());
  const cfg = join(writeTree({ "config.toml": baseConfig() + proxyPipeline("p", "/p", upstream.url) }), "config.toml");
  const dp = await startDataplane(cfg);
  t.after(() => dp.stop());

  await assert.rejects(http(dp.url("default", "/p/x")), /aborted|ECONNRESET|socket hang up/);
  const line = await dp.waitForLog((l) => l.message === "access" && l.path === "/p/x");
  assert.equal(line.status, 502);

  // A client that leaves is recorded as 499, not as an upstream failure.
  await new Promise<void>((resolve) => {
    const req = request(dp.url("default", "/p/leave"), (res) => {
      res.once("data", () => {
        req.destroy();
        resolve();
      });
    });
    req.end();
  });
  const left = await dp.waitForLog((l) => l.message === "access" && l.path === "/p/leave");
  assert.equal(left.status, 499);
  await sleep(50);
  const metrics = (await http(dp.url("management", "/metrics"))).text;
  assert.match(
    metrics,
    /harmony_http_requests_total\{pipeline="p",endpoint="p_in",backend="p_out",method="GET",status="502"\} 1/,
  );
  assert.match(
    metrics,
    /harmony_http_requests_total\{pipeline="p",endpoint="p_in",backend="p_out",method="GET",status="499"\} 1/,
  );
  assert.doesNotMatch(metrics, /status="200"/);
});
