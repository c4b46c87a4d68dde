/**
 * Hostile upstreams and clients around the streaming URL rewrite of a `fhir` backend: a compressed
 * body that does not decode (the client must be able to tell the body was cut), and a client that
 * leaves in the middle of an endless Bundle (the gateway must stop reading the upstream and keep
 * no sockets). The data plane must keep serving after each.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { request, type IncomingMessage, type ServerResponse } from "node:http";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import {
  baseConfig,
  eventually,
  startDataplane,
  startUpstream,
  writeTree,
  type Dataplane,
} from "../../dataplane/test/helpers.js";
import { assertStillServes, fdCount, rawExchange } from "./harness.js";

let dp: Dataplane;
let up: Awaited<ReturnType<typeof startUpstream>>;
let answer: (req: IncomingMessage, res: ServerResponse) => void;

before(async () => {
  up = await startUpstream((req, res) => {
    if (req.url === "/fhir/metadata") {
      res.writeHead(200, { "content-type": "application/fhir+json" });
      return void res.end(`{"resourceType":"CapabilityStatement","url":"${up.url}/fhir/metadata"}`);
    }
    answer(req, res);
  });
  const dir = writeTree({
    "config.toml": baseConfig(`
[pipelines.fhir]
networks = ["default"]
endpoints = ["fhir_in"]
backends = ["fhir_out"]

[endpoints.fhir_in]
service = "fhir"
options = { path_prefix = "/fhir" }

[backends.fhir_out]
service = "fhir"
options = { base_url = "${up.url}/fhir" }
`),
  });
  dp = await startDataplane(join(dir, "config.toml"));
});

after(async () => {
  await dp?.stop();
  await up?.close();
});

test("a gzip body that does not decode: a 502 before any byte of it, a cut connection after", async () => {
  const good = gzipSync(`{"resourceType":"Bundle","link":[{"relation":"self","url":"${up.url}/fhir/Patient"}],"x":"`);
  // A valid gzip start, then bytes that are no deflate stream.
  const body = Buffer.concat([good.subarray(0, 20), Buffer.alloc(4096, 0xff)]);
  answer = (_req, res) => {
    res.writeHead(200, { "content-type": "application/fhir+json", "content-encoding": "gzip" });
    res.end(body);
  };
  const r = await rawExchange(dp.ports.default!, [
    "GET /fhir/Patient HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
  ]);
  assert.equal(r.status, 502, r.text.slice(0, 300));
  assert.match(r.text, /OperationOutcome/);
  assert.ok(!r.text.includes(up.url) && !r.text.includes("127.0.0.1"), "the upstream address is not disclosed");

  // Valid for a while, then garbage: the head and the first rewritten bytes are out, so the only
  // honest signal left is a cut connection without the terminating chunk.
  const long = gzipSync(`{"resourceType":"Bundle","entry":[${`{"fullUrl":"${up.url}/fhir/Patient/1"},`.repeat(20000)}`);
  answer = (_req, res) => {
    res.writeHead(200, { "content-type": "application/fhir+json", "content-encoding": "gzip" });
    res.end(Buffer.concat([long.subarray(0, long.length - 64), Buffer.alloc(4096, 0xff)]));
  };
  const cut = await rawExchange(dp.ports.default!, [
    "GET /fhir/Patient HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
  ]);
  assert.equal(cut.status, 200);
  assert.equal(cut.closed, true, "the gateway closed the connection");
  assert.match(cut.text, /transfer-encoding: chunked/i);
  assert.doesNotMatch(cut.text, /content-encoding/i, "a decoded body is not labelled compressed");
  assert.ok(!cut.text.endsWith("0\r\n\r\n"), "no terminating chunk: the client can tell the body is incomplete");
  await assertStillServes(dp, "default", "/fhir/metadata");
});

test("a client leaving an endless Bundle mid-body: the upstream exchange is aborted, no sockets kept", async () => {
  await assertStillServes(dp, "default", "/fhir/metadata");
  const fdsBefore = await fdCount(dp.pid);
  let upstreamClosed!: Promise<unknown>;
  answer = (_req, res) => {
    upstreamClosed = once(res, "close");
    res.writeHead(200, { "content-type": "application/fhir+json" });
    res.write(`{"resourceType":"Bundle","entry":[`);
    const entry = Buffer.from(`{"fullUrl":"${up.url}/fhir/Patient/1"},`.repeat(1000));
    const more = () => {
      while (!res.destroyed && res.write(entry));
      if (!res.destroyed) res.once("drain", more);
    };
    more();
  };
  const res = await new Promise<IncomingMessage>((resolve, reject) =>
    request(dp.url("default", "/fhir/Patient"), { agent: false }, resolve).on("error", reject).end(),
  );
  assert.equal(res.statusCode, 200);
  // Read until the first entry's URL is through (the rewrite holds back a few bytes at chunk ends).
  let seen = "";
  for await (const c of res) {
    seen += (c as Buffer).toString("latin1");
    if (seen.includes("/Patient/1")) break;
  }
  assert.ok(
    seen.includes(`"${dp.url("default", "/fhir")}/Patient/1"`),
    `rewritten as it streams: ${seen.slice(0, 200)}`,
  );
  res.destroy();
  await upstreamClosed; // the gateway let go of the upstream: an endless body is not read on
  await eventually("the data plane's descriptors back to where they were", async () =>
    (await fdCount(dp.pid)) <= fdsBefore ? true : undefined,
  );
  await assertStillServes(dp, "default", "/fhir/metadata");
});
