/**
 * The plugin contract over real sockets: request middleware that buffers and rewrites the body,
 * response middleware in configured order, the body limit, untouched pass-through of what no
 * middleware asked for. The middleware here are test plugins registered the way built-ins are
 * (a file and a registry line), run by an in-process Gateway against a real upstream.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { Type } from "@sinclair/typebox";
import { Gateway } from "../src/runtime/gateway.js";
import { createRegistry } from "../src/plugins/registry.js";
import type { MiddlewarePlugin } from "../src/plugins/types.js";
import { createLogger } from "../src/observability/logger.js";
import { Metrics } from "../src/observability/metrics.js";
import { jsonResponse } from "../src/pipeline/json-response.js";
import { HttpError } from "../src/pipeline/errors.js";
import { baseConfig, http, startUpstream, writeTree } from "./helpers.js";

const NoOptions = Type.Object({}, { additionalProperties: false });

/** Upper-cases every string in a JSON request body; leaves other bodies alone. */
const shout: MiddlewarePlugin<typeof NoOptions> = {
  kind: "middleware",
  type: "test_shout",
  options: NoOptions,
  create: () => ({
    async onRequest(ctx) {
      const body = await ctx.body.json();
      if (body === undefined) return;
      ctx.body.replaceJson(
        JSON.parse(JSON.stringify(body), (_k, v: unknown) => (typeof v === "string" ? v.toUpperCase() : v)),
      );
    },
  }),
};

/** Buffers the request body whatever its type (exercises the limit). */
const slurp: MiddlewarePlugin<typeof NoOptions> = {
  kind: "middleware",
  type: "test_slurp",
  options: NoOptions,
  create: () => ({
    async onRequest(ctx) {
      ctx.locals.size = (await ctx.body.buffer()).length;
    },
  }),
};

/** Appends its tag to an `x-trail` response header: shows the order response middleware ran in. */
const Tag = Type.Object({ tag: Type.String() }, { additionalProperties: false });
const trail: MiddlewarePlugin<typeof Tag> = {
  kind: "middleware",
  type: "test_trail",
  options: Tag,
  create: (o) => ({
    onRequest(ctx) {
      ctx.locals.trail = `${(ctx.locals.trail as string | undefined) ?? ""}>${o.tag}`;
    },
    onResponse(ctx) {
      const r = ctx.response!;
      r.headers["x-trail"] = `${(r.headers["x-trail"] as string | undefined) ?? (ctx.locals.trail as string)}<${o.tag}`;
    },
  }),
};

/** Reads the whole upstream response and wraps it: a response middleware that replaces the body. */
const wrap: MiddlewarePlugin<typeof NoOptions> = {
  kind: "middleware",
  type: "test_wrap",
  options: NoOptions,
  create: () => ({
    async onResponse(ctx) {
      const r = ctx.response!;
      const chunks: Buffer[] = [];
      for await (const c of r.body as AsyncIterable<Buffer>) chunks.push(c);
      ctx.response = jsonResponse(r.status, { wrapped: Buffer.concat(chunks).toString("utf8") });
    },
  }),
};

/** Refuses requests without `x-ok`, before any backend runs. */
const gate: MiddlewarePlugin<typeof NoOptions> = {
  kind: "middleware",
  type: "test_gate",
  options: NoOptions,
  create: () => ({
    onRequest(ctx) {
      if (!ctx.req.headers["x-ok"]) throw new HttpError(403, "x-ok header required");
    },
  }),
};

test("middleware transforms, order, limits and pass-through over real sockets", async (t) => {
  const seen: { path: string; type: string | undefined; body: Buffer }[] = [];
  const upstream = await startUpstream((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      seen.push({ path: req.url!, type: req.headers["content-type"], body: Buffer.concat(chunks) });
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(`upstream saw ${Buffer.concat(chunks).length} bytes`);
    });
  });
  t.after(() => upstream.close());

  const pipeline = (name: string, middleware: string) => `
[pipelines.${name}]
networks = ["default"]
endpoints = ["${name}_in"]
middleware = ${middleware}
backends = ["up"]
[endpoints.${name}_in]
service = "http"
[endpoints.${name}_in.options]
path_prefix = "/${name}"
`;
  const config =
    baseConfig().replace("[logging]", "[proxy.content_limits]\nmax_body_size = 1024\n\n[logging]") +
    `
[backends.up]
service = "http"
[backends.up.options]
base_url = "${upstream.url}"

[middleware.a]
type = "test_trail"
options = { tag = "a" }
[middleware.b]
type = "test_trail"
options = { tag = "b" }
` +
    pipeline("shout", '["test_shout"]') +
    pipeline("slurp", '["test_slurp"]') +
    pipeline("onion", '["a", "b"]') +
    pipeline("split", '{ left = ["a", "b"], right = ["a", "b"] }') +
    pipeline("wrap", '["test_wrap"]') +
    pipeline("gate", '["test_gate"]');
  const dir = writeTree({ "config.toml": config });
  const gateway = new Gateway({
    configFile: join(dir, "config.toml"),
    registry: createRegistry({ middleware: [shout, slurp, trail, wrap, gate] }),
    logger: createLogger("error"),
    metrics: new Metrics(),
    version: "test",
    watch: false,
  });
  await gateway.start();
  t.after(() => gateway.shutdown());
  const url = (p: string) => `http://127.0.0.1:${gateway.boundPorts().default}${p}`;

  // A request transform is what the backend receives, with a matching content-length.
  const r1 = await http(url("/shout/x"), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: '{"name":"ada","n":1}',
  });
  assert.equal(r1.status, 200);
  assert.deepEqual(JSON.parse(seen.at(-1)!.body.toString()), { name: "ADA", n: 1 });
  assert.equal(r1.text, `upstream saw ${seen.at(-1)!.body.length} bytes`);

  // Non-JSON passes through the same middleware byte for byte.
  const binary = Buffer.from([0, 1, 2, 250, 251, 252, 13, 10]);
  assert.equal(
    (
      await http(url("/shout/bin"), {
        method: "POST",
        headers: { "content-type": "application/octet-stream" },
        body: binary,
      })
    ).status,
    200,
  );
  assert.deepEqual(seen.at(-1)!.body, binary);
  assert.equal(seen.at(-1)!.type, "application/octet-stream");

  // Malformed JSON that a middleware must parse is the client's error.
  const bad = await http(url("/shout/x"), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{nope",
  });
  assert.equal(bad.status, 400);
  assert.equal(bad.headers["content-type"], "application/problem+json");

  // Buffering is bounded by proxy.content_limits.max_body_size: 413, and the upstream never sees it.
  const before = seen.length;
  const big = await http(url("/slurp/x"), { method: "POST", body: "x".repeat(2000) });
  assert.equal(big.status, 413);
  assert.match((big.json() as { detail: string }).detail, /1024 bytes/);
  const chunked = await http(url("/slurp/x"), {
    method: "POST",
    headers: { "transfer-encoding": "chunked" },
    body: "y".repeat(5000),
  });
  assert.equal(chunked.status, 413);
  assert.equal(seen.length, before);
  const small = await http(url("/slurp/x"), { method: "POST", body: "z".repeat(1000) });
  assert.equal(small.status, 200);
  assert.equal(
    createHash("sha256").update(seen.at(-1)!.body).digest("hex"),
    createHash("sha256").update("z".repeat(1000)).digest("hex"),
  );

  // The list form is an onion; the split form runs each side as written.
  assert.equal((await http(url("/onion/x"))).headers["x-trail"], ">a>b<b<a");
  assert.equal((await http(url("/split/x"))).headers["x-trail"], ">a>b<a<b");

  // A response middleware that needs the body gets it; the executor sends what it produced.
  const wrapped = await http(url("/wrap/x"));
  assert.deepEqual(wrapped.json(), { wrapped: "upstream saw 0 bytes" });
  assert.match(String(wrapped.headers["x-request-id"]), /^[0-9a-f-]{36}$/);

  // Middleware errors carry their own status; the backend is not called.
  const n = seen.length;
  const denied = await http(url("/gate/x"));
  assert.equal(denied.status, 403);
  assert.equal((denied.json() as { detail: string }).detail, "x-ok header required");
  assert.equal(seen.length, n);
  assert.equal((await http(url("/gate/x"), { headers: { "x-ok": "1" } })).status, 200);
});
