/**
 * The lean upstream engine (`client = "llhttp"`) against undici, differentially: one data plane,
 * two pipelines to the same real upstream, one per engine; every generated exchange (methods,
 * header sets, request bodies of 0/1/64 KiB/1 MiB+1 bytes sent with a content-length or chunked,
 * statuses incl. 1xx/204/304, HEAD, answers framed by content-length, chunks or the close) must
 * come back identical through both: status, headers (minus date and the request id) and body
 * bytes. The upstream echoes what it received, so the request side is compared as well.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Agent, request, type IncomingHttpHeaders } from "node:http";
import { join } from "node:path";
import { baseConfig, proxyPipeline, startDataplane, startUpstream, writeTree, type Dataplane } from "./helpers.js";

/** Deterministic bytes: a body whose every byte is checked, not just its length. */
function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + (i >> 8)) & 255;
  return b;
}
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

interface Case {
  method: string;
  reqSize: number;
  reqChunked: boolean;
  status: number;
  resSize: number;
  mode: "cl" | "chunked" | "close";
  info: boolean;
  headers: "none" | "many" | "dup";
}

/** Cycles each dimension with a different period, so the combinations spread without a full product. */
function cases(): Case[] {
  const methods = ["GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"];
  const sizes = [0, 1, 65536, 1048577];
  const statuses = [200, 201, 204, 304, 404, 500, 200];
  const modes = ["cl", "chunked", "close"] as const;
  const hsets = ["none", "many", "dup"] as const;
  const out: Case[] = [];
  for (let i = 0; i < 42; i++) {
    const method = methods[i % methods.length]!;
    const bodied = method === "POST" || method === "PUT" || method === "PATCH";
    out.push({
      method,
      reqSize: bodied ? sizes[(i >> 1) % sizes.length]! : 0,
      reqChunked: bodied && i % 3 === 0,
      status: statuses[i % statuses.length]!,
      resSize: sizes[(i * 3 + 1) % sizes.length]!,
      mode: modes[i % modes.length]!,
      info: i % 5 === 0,
      headers: hsets[i % hsets.length]!,
    });
  }
  return out;
}

let dp: Dataplane;
let upstream: Awaited<ReturnType<typeof startUpstream>>;
const agent = new Agent({ keepAlive: true, maxSockets: 4 });

before(async () => {
  upstream = await startUpstream((req, res) => {
    const q = new URL(req.url!, "http://x").searchParams;
    const got: Buffer[] = [];
    req.on("data", (c: Buffer) => got.push(c));
    req.on("end", () => {
      const body = Buffer.concat(got);
      const status = Number(q.get("status"));
      const size = Number(q.get("size"));
      const mode = q.get("mode");
      if (q.get("info") === "1") res.writeEarlyHints({ link: "</style.css>; rel=preload" });
      // What the upstream received, for the request side of the comparison.
      res.setHeader("x-got-method", req.method!);
      res.setHeader("x-got-url", req.url!);
      res.setHeader("x-got-length", String(body.length));
      res.setHeader("x-got-sha", sha(body));
      res.setHeader(
        "x-got-framing",
        req.headers["transfer-encoding"] ? "chunked" : `cl:${req.headers["content-length"] ?? "-"}`,
      );
      res.setHeader("x-got-host", req.headers.host ?? "");
      res.setHeader(
        "x-got-t",
        Object.keys(req.headers)
          .filter((k) => k.startsWith("x-t-"))
          .map((k) => `${k}=${String(req.headers[k])}`)
          .join(";"),
      );
      if (q.get("headers") === "many") for (let i = 0; i < 40; i++) res.setHeader(`x-many-${i}`, `v${i}`);
      if (q.get("headers") === "dup") res.setHeader("set-cookie", ["a=1", "b=2; Path=/", "c=3"]);
      res.setHeader("content-type", "application/octet-stream");
      const payload = pattern(size, status);
      if (mode === "cl") res.setHeader("content-length", String(payload.length));
      if (mode === "close") res.useChunkedEncodingByDefault = false; // framed by closing the connection
      res.writeHead(status);
      if (payload.length > 1) res.write(payload.subarray(0, payload.length >> 1));
      res.end(payload.length > 1 ? payload.subarray(payload.length >> 1) : payload);
    });
  });
  const opts = `headers_timeout_ms = 20000\nbody_timeout_ms = 20000`;
  const cfg = join(
    writeTree({
      "config.toml":
        baseConfig() +
        proxyPipeline("u", "/u", upstream.url, `client = "undici"\n${opts}`) +
        proxyPipeline("l", "/l", upstream.url, `client = "llhttp"\n${opts}`),
    }),
    "config.toml",
  );
  dp = await startDataplane(cfg);
});

after(async () => {
  agent.destroy();
  await dp?.stop();
  await upstream?.close();
});

interface Seen {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

function send(path: string, c: Case, i: number): Promise<Seen> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | string[]> = { "x-t-case": String(i), "x-t-multi": ["one", "two"] };
    if (c.headers === "many") for (let k = 0; k < 36; k++) headers[`x-t-h${k}`] = `value-${k}`;
    const body = pattern(c.reqSize, i);
    if (c.reqSize > 0 && !c.reqChunked) headers["content-length"] = String(body.length);
    const req = request(dp.url("default", path), { method: c.method, headers, agent }, (res) => {
      const got: Buffer[] = [];
      res.on("data", (b: Buffer) => got.push(b));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(got) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    if (c.reqSize > 0 && c.reqChunked) {
      // Two writes without a content-length: node:http sends them chunked.
      req.write(body.subarray(0, body.length >> 1));
      req.end(body.subarray(body.length >> 1));
    } else req.end(c.reqSize > 0 ? body : undefined);
  });
}

function comparable(h: IncomingHttpHeaders): IncomingHttpHeaders {
  const out = { ...h };
  delete out.date;
  delete out["x-request-id"];
  // The upstream saw the engine's path prefix stripped; the query names the case on both.
  return out;
}

test("every generated exchange is identical through undici and through the llhttp engine", async () => {
  const all = cases();
  for (const [i, c] of all.entries()) {
    const q = `/case?status=${c.status}&size=${c.resSize}&mode=${c.mode}&info=${c.info ? 1 : 0}&headers=${c.headers}`;
    const what = `case ${i} ${JSON.stringify(c)}`;
    const u = await send("/u" + q, c, i);
    const l = await send("/l" + q, c, i);
    assert.equal(l.status, u.status, what);
    assert.deepEqual(comparable(l.headers), comparable(u.headers), what);
    assert.ok(l.body.equals(u.body), `${what}: bodies differ (${l.body.length} vs ${u.body.length} bytes)`);
    // And both are right, not just alike.
    assert.equal(u.status, c.status, what);
    const bodyless = c.method === "HEAD" || c.status === 204 || c.status === 304;
    assert.equal(sha(l.body), sha(bodyless ? Buffer.alloc(0) : pattern(c.resSize, c.status)), what);
    if (c.method !== "HEAD") {
      assert.equal(l.headers["x-got-length"], String(c.reqSize), what);
      assert.equal(l.headers["x-got-sha"], sha(pattern(c.reqSize, i)), what);
    }
  }
});
