/**
 * Harmony's HTTP → DICOM JSON API under hostile input, over raw sockets: bodies past
 * `json_api_max_body_bytes` (declared, and chunked without a length) are 413 without being read
 * to the end; deep nesting, thousands of keys, sequences, non-JSON bytes and wrong shapes are 400
 * problem+json; nothing of it reaches the DIMSE peer (there is none listening) and the data plane
 * serves on after each attack. Keys named after Object.prototype members ("__proto__",
 * "constructor"), in a JSON identifier or a QIDO-RS query, are unknown attributes (400), not a 500.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { baseConfig, freePort, startDataplane, writeTree, type Dataplane } from "../../dataplane/test/helpers.js";
import { assertStillServes, rawExchange, fdCount } from "./harness.js";

let dp: Dataplane;
let port: number;

before(async () => {
  // The peer's port is free: a request that got as far as DIMSE would be a 502, not the 4xx expected.
  const nobody = await freePort();
  const dir = writeTree({
    "config.toml": baseConfig(`
[pipelines.api]
networks = ["default"]
endpoints = ["api_in"]
backends = ["pacs"]

[endpoints.api_in]
service = "http"
options = { path_prefix = "/dimse" }

[backends.pacs]
service = "dicom"
options = { host = "127.0.0.1", port = ${nobody}, aet = "PACS", json_api_max_body_bytes = 8192 }

[pipelines.web]
networks = ["default"]
endpoints = ["web_in"]
backends = ["pacs"]

[endpoints.web_in]
service = "dicomweb"
options = { path_prefix = "/dw" }

[pipelines.ok]
networks = ["default"]
endpoints = ["ok_in"]
backends = ["echo"]

[endpoints.ok_in]
service = "http"
options = { path_prefix = "/ok" }

[backends.echo]
service = "echo"
`),
  });
  dp = await startDataplane(join(dir, "config.toml"));
  port = dp.ports.default!;
});

after(async () => {
  await dp?.stop();
});

const head = (extra: string) =>
  `POST /dimse/find HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n${extra}\r\n`;

async function attack(chunks: (string | Buffer | number)[], status: number, detail?: RegExp): Promise<void> {
  const r = await rawExchange(port, chunks, 10_000);
  assert.equal(r.status, status, r.text.slice(0, 400));
  assert.match(r.text, /content-type: application\/problem\+json/i);
  if (detail) assert.match(r.text, detail);
  await assertStillServes(dp, "default", "/ok/x");
}

test("a declared body past json_api_max_body_bytes: 413 before the body is sent", async () => {
  await attack([head("Content-Length: 100000000\r\n")], 413, /8192 bytes/);
});

test("a chunked body that never ends: 413 once it passes the API's limit, not the proxy's", async () => {
  const chunk = Buffer.alloc(4096, 0x20);
  const piece = Buffer.concat([Buffer.from("1000\r\n"), chunk, Buffer.from("\r\n")]);
  await attack([head("Transfer-Encoding: chunked\r\n"), ...Array<Buffer>(8).fill(piece)], 413, /8192 bytes/);
});

test("malformed and hostile JSON: 400 problem+json, never the peer", async () => {
  const send = (body: string | Buffer) => [head(`Content-Length: ${Buffer.byteLength(body)}\r\n`), body];
  await attack(send("[".repeat(4000) + "]".repeat(4000)), 400, /nests/);
  const many = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`0010${(0x1000 + i).toString(16)}`, {}]));
  await attack(send(JSON.stringify(many)), 400);
  await attack(send(JSON.stringify({ "00081115": { vr: "SQ", Value: [{}] } })), 400, /sequence/);
  await attack(send(Buffer.from([0xff, 0xfe, 0x00, 0x7b])), 400, /not valid JSON/);
  await attack(send('{"00100020": {"Value": [{"x": 1}]}}'), 400);
  await attack(send('{"identifier": {}, "destination": "' + "A".repeat(40) + '"}'), 400, /AE title/);
  await attack(send('{"__proto__": {"vr": "LO"}}'), 400);
});

test("GET /echo with the peer down: 502 in the API's shape, success false, nothing secret", async () => {
  const r = await rawExchange(port, ["GET /dimse/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"], 10_000);
  assert.equal(r.status, 502, r.text.slice(0, 300));
  const body = JSON.parse(r.text.slice(r.text.indexOf("\r\n\r\n") + 4)) as Record<string, unknown>;
  assert.equal(body.operation, "echo");
  assert.equal(body.success, false);
  assert.equal(body.remote_aet, "PACS");
  assert.match(String(body.error), /ECONNREFUSED/);
});

test("QIDO-RS keys named after Object.prototype members: 400, not a crash", async () => {
  for (const key of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
    const r = await rawExchange(port, [`GET /dw/studies?${key}=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`]);
    assert.equal(r.status, 400, `${key}: ${r.text.slice(0, 300)}`);
  }
  await assertStillServes(dp, "default", "/ok/x");
});

test("the attacks leave no descriptors behind", async () => {
  const before = await fdCount(dp.pid);
  for (let i = 0; i < 20; i++) await rawExchange(port, [head("Content-Length: 100000000\r\n")], 10_000);
  await assertStillServes(dp, "default", "/ok/x");
  assert.ok((await fdCount(dp.pid)) <= before + 2, "descriptors returned to where they were");
});
