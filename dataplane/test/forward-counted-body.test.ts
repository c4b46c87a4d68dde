/**
 * A counted body's last chunk is held for `res.end(last)` (backends/http-forward.ts, issue 18): the
 * client must still get every byte in order, whatever the chunking, and the answers that carry no
 * body (HEAD, 204, 304) their headers only.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  baseConfig,
  http,
  proxyPipeline,
  sleep,
  startDataplane,
  startUpstream,
  stopAll,
  writeTree,
} from "./helpers.js";
import type { Dataplane } from "./helpers.js";

const stops: (() => unknown)[] = [];
let dp: Dataplane;

/** `n` bytes that differ by position, so a reordered or repeated chunk shows. */
function body(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = 33 + ((i * 7 + (i >> 8)) % 90);
  return b;
}

before(async () => {
  const up = await startUpstream((req, res) => {
    const u = new URL(req.url ?? "/", "http://x");
    const size = Number(u.searchParams.get("size") ?? 0);
    const pieces = Number(u.searchParams.get("pieces") ?? 1);
    const b = body(size);
    if (u.pathname.endsWith("/status")) {
      res.writeHead(Number(u.searchParams.get("code")), { "content-length": String(size) }).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(size) });
    if (req.method === "HEAD") return void res.end();
    // Separate writes some milliseconds apart: separate reads at the proxy, the last completing the count.
    void (async () => {
      const step = Math.ceil(size / pieces);
      for (let at = 0; at < size; at += step) {
        res.write(b.subarray(at, Math.min(size, at + step)));
        await sleep(15);
      }
      res.end();
    })();
  });
  stops.push(() => up.close());
  const dir = writeTree({ "config.toml": baseConfig(proxyPipeline("api", "/api", up.url)) });
  dp = await startDataplane(join(dir, "config.toml"));
  stops.push(() => dp.stop("SIGKILL"));
});
after(() => stopAll(stops));

describe("a counted body through the proxy", () => {
  for (const [size, pieces] of [
    [1024, 1],
    [1, 1],
    [1024, 3],
    [5000, 5],
    [40_000, 2], // a last chunk too large to hold: written as it comes
    [200_000, 4],
  ] as const) {
    it(`${size} bytes in ${pieces} write(s): every byte, in order, with its length`, async () => {
      const r = await http(dp.url("default", `/api/b?size=${size}&pieces=${pieces}`));
      assert.equal(r.status, 200);
      assert.equal(r.headers["content-length"], String(size));
      assert.ok(r.body.equals(body(size)), "the body as the upstream sent it");
    });
  }

  it("HEAD: the length announced, no body", async () => {
    const r = await http(dp.url("default", "/api/b?size=1024"), { method: "HEAD" });
    assert.equal(r.status, 200);
    assert.equal(r.headers["content-length"], "1024");
    assert.equal(r.body.length, 0);
  });

  for (const code of [204, 304]) {
    it(`${code}: no body, and the next request on the connection is answered`, async () => {
      const r = await http(dp.url("default", `/api/status?code=${code}&size=0`));
      assert.equal(r.status, code);
      assert.equal(r.body.length, 0);
      const next = await http(dp.url("default", "/api/b?size=10"));
      assert.ok(next.body.equals(body(10)));
    });
  }
});
