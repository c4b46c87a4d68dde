/**
 * A client that pipelines many HTTP/1.1 requests on one connection and never reads its answers
 * must not get them forwarded: node:http dispatches every pipelined request at once (it queues the
 * answers, not the requests), so one such client held a backend's whole connection pool and the
 * memory of every answer it did not read. Each listener node:http serves is attacked here: a plain
 * one with `http1_server = "node"`, a TLS one, and a connection the llhttp lane hands off (POSTs
 * with bodies). The recording upstream counts what arrives per client; a second, polite client
 * must still be served meanwhile. And pipelining must still work for a client that reads: answers
 * in order, none lost, `Connection: close` mid-pipeline, HEAD, request bodies, Expect:
 * 100-continue, and a client that leaves with requests still queued.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import { request as httpsRequest } from "node:https";
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { once } from "node:events";
import { join } from "node:path";
import {
  eventually,
  sleep,
  startDataplane,
  startUpstream,
  writeTree,
  type Dataplane,
} from "../../dataplane/test/helpers.js";
import { selfSignedCert } from "./self-signed.js";
import { parseResponses } from "./http1-exchange.js";

/** The backend's pool: above the bounds asserted below, so that they are ours and not the pool's. */
const POOL = 32;
const BIG = 1024 * 1024;
const big = Buffer.alloc(BIG, "B");

interface Arrival {
  client: string;
  i: number;
  method: string;
  bodyBytes: number;
}

/** Answers by path: `/p/hold` waits while `holding`; `/p/big` 1 MiB; `/p/slow` after 150 ms; else an echo of what arrived. */
const arrivals: Arrival[] = [];
let holding = false;
const held: (() => void)[] = [];
const seen = (client: string) => arrivals.filter((a) => a.client === client).length;

function answer(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
  const url = new URL(req.url ?? "/", "http://up");
  const client = url.searchParams.get("c") ?? "";
  const i = Number(url.searchParams.get("i") ?? -1);
  arrivals.push({ client, i, method: req.method ?? "", bodyBytes: body.length });
  const echo = `${req.method} ${client} ${i} ${body.length} ${createHash("sha256").update(body).digest("hex").slice(0, 12)}`;
  const reply = () => {
    if (res.destroyed) return;
    if (url.pathname.endsWith("/big")) {
      res.writeHead(200, { "content-length": BIG, "x-i": String(i) }).end(big);
      return;
    }
    res.writeHead(200, { "content-type": "text/plain", "content-length": Buffer.byteLength(echo), "x-i": String(i) });
    res.end(echo);
  };
  if (url.pathname.endsWith("/hold") && holding) held.push(reply);
  else if (url.pathname.endsWith("/slow")) setTimeout(reply, 150);
  else reply();
}

function release(): void {
  holding = false;
  for (const r of held.splice(0)) r();
}

function config(mode: "node" | "llhttp", upstream: string, tls: { cert: string; key: string }): string {
  return `[proxy]
id = "flood-${mode}"
shutdown_timeout_ms = 1000
http1_server = "${mode}"
[logging]
log_level = "info"
access_log = false
[network.default.http]
bind_address = "127.0.0.1"
bind_port = 0
[network.secure.http]
bind_address = "127.0.0.1"
bind_port = 0
cert_path = "${tls.cert}"
key_path = "${tls.key}"
[network.secure1.http]
bind_address = "127.0.0.1"
bind_port = 0
cert_path = "${tls.cert}"
key_path = "${tls.key}"
http2 = false
[pipelines.p]
networks = ["default", "secure", "secure1"]
endpoints = ["p_in"]
backends = ["p_out"]
[endpoints.p_in]
service = "http"
options = { path_prefix = "/p" }
[backends.p_out]
service = "http"
options = { base_url = "${upstream}", max_connections = ${POOL}, headers_timeout_ms = 20000, body_timeout_ms = 20000 }
`;
}

let up: Awaited<ReturnType<typeof startUpstream>>;
let dpNode: Dataplane;
let dpLane: Dataplane;

before(async () => {
  up = await startUpstream((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => answer(req, res, Buffer.concat(chunks)));
  });
  const tls = selfSignedCert("harmony-flood-");
  const start = (mode: "node" | "llhttp") =>
    startDataplane(join(writeTree({ "config.toml": config(mode, up.url, tls) }), "config.toml"));
  [dpNode, dpLane] = await Promise.all([start("node"), start("llhttp")]);
});

after(async () => {
  release();
  await Promise.all([dpNode?.stop(), dpLane?.stop()]);
  await up?.close();
});

interface Listener {
  name: string;
  dp: () => Dataplane;
  network: "default" | "secure" | "secure1";
  tls: boolean;
  /** Every request a flooder sends: a POST with a body makes the lane hand its connection to node:http. */
  method: "GET" | "POST";
}

const LISTENERS: Listener[] = [
  { name: "http1_server = node", dp: () => dpNode, network: "default", tls: false, method: "GET" },
  // HTTPS listeners offer HTTP/2 by default: node:http2's server, whose HTTP/1.1 half is node:http's.
  { name: "TLS listener", dp: () => dpLane, network: "secure", tls: true, method: "GET" },
  { name: "TLS listener, http2 = false", dp: () => dpLane, network: "secure1", tls: true, method: "GET" },
  { name: "lane hand-off", dp: () => dpLane, network: "default", tls: false, method: "POST" },
];

async function open(l: Listener): Promise<Socket> {
  const port = l.dp().ports[l.network]!;
  const s = l.tls
    ? tlsConnect({ port, host: "127.0.0.1", rejectUnauthorized: false })
    : netConnect({ port, host: "127.0.0.1" });
  await once(s, l.tls ? "secureConnect" : "connect");
  return s;
}

function req(method: string, path: string, extra: string[] = [], body?: string): string {
  const lines = [`${method} ${path} HTTP/1.1`, "Host: dp.test", ...extra];
  if (body !== undefined && !extra.some((h) => /^transfer-encoding/i.test(h)))
    lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  return `${lines.join("\r\n")}\r\n\r\n${body ?? ""}`;
}

const flood = (l: Listener, path: string, client: string, n: number) =>
  Array.from({ length: n }, (_, i) =>
    req(l.method, `${path}?c=${client}&i=${i}`, [], l.method === "POST" ? `body-${i}` : undefined),
  ).join("");

/**
 * Reads `s` until `finals` final answers are complete or the server closes; the answers in order.
 * `leastEach`: bytes each answer has at least.
 */
async function readAnswers(s: Socket, methods: string[], finals: number, timeoutMs = 15_000, leastEach = 0) {
  const got: Buffer[] = [];
  let closed = false;
  let total = 0;
  const parsed = () => parseResponses(Buffer.concat(got), methods, closed).answers;
  const done = () => parsed().filter((a) => a.complete && !a.statusLine.includes(" 100 ")).length >= finals;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(finish, timeoutMs);
    function finish() {
      clearTimeout(timer);
      s.off("data", onData);
      resolve();
    }
    function onData(c: Buffer) {
      got.push(c);
      total += c.length;
      // Parsing a growing buffer on every read is quadratic: not before the answers can be all there.
      if (total >= finals * leastEach && done()) finish();
    }
    s.on("data", onData);
    s.on("error", () => undefined);
    s.once("close", () => {
      closed = true;
      finish();
    });
  });
  return { answers: parsed(), closed };
}

/** A polite client's request on a connection of its own: its status, or "timeout". */
async function polite(l: Listener, client: string, timeoutMs = 5000): Promise<number | "timeout"> {
  const port = l.dp().ports[l.network]!;
  const options = { host: "127.0.0.1", port, path: `/p/ok?c=${client}`, agent: false, rejectUnauthorized: false };
  return new Promise((resolve) => {
    const r = (l.tls ? httpsRequest : httpRequest)(options, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    r.setTimeout(timeoutMs, () => {
      r.destroy();
      resolve("timeout");
    });
    r.on("error", () => resolve("timeout"));
    r.end();
  });
}

/** Waits until the upstream's count for `client` stops growing (the flooder's requests all wherever they go). */
async function settled(client: string): Promise<number> {
  let last = -1;
  let stableSince = Date.now();
  const end = Date.now() + 15_000;
  while (Date.now() < end) {
    const n = seen(client);
    if (n !== last) {
      last = n;
      stableSince = Date.now();
    } else if (n > 0 && Date.now() - stableSince > 600) return n;
    await sleep(50);
  }
  return last;
}

for (const l of LISTENERS) {
  describe(l.name, () => {
    test("a flooder that does not read has one request upstream at a time, and all answered in order once it reads", async () => {
      const client = `hold-${l.network}-${l.method}`;
      const N = 48;
      holding = true;
      const s = await open(l);
      try {
        s.write(flood(l, "/p/hold", client, N));
        await eventually("the flooder's first request upstream", () => seen(client) >= 1, { timeoutMs: 5000 });
        await sleep(400);
        const during = seen(client);
        const others = [await polite(l, `${client}-polite`), await polite(l, `${client}-polite`)];
        assert.ok(during <= 1, `the upstream saw ${during} of the flooder's ${N} requests at once`);
        assert.deepEqual(others, [200, 200], "a polite client is served while the flooder waits");
        release();
        const { answers } = await readAnswers(s, Array<string>(N).fill(l.method), N);
        assert.equal(answers.length, N, `${answers.length} of ${N} answers`);
        for (const [i, a] of answers.entries()) {
          assert.match(a.statusLine, /^HTTP\/1\.1 200 /);
          assert.equal(a.body.toString().split(" ").slice(0, 3).join(" "), `${l.method} ${client} ${i}`);
        }
      } finally {
        release();
        s.destroy();
      }
    });

    test("a flooder that never reads gets only what its socket buffers hold forwarded", async (t) => {
      const client = `big-${l.network}-${l.method}`;
      const N = 24;
      const s = await open(l);
      try {
        s.write(flood(l, "/p/big", client, N));
        const forwarded = await settled(client);
        t.diagnostic(`forwarded while not reading: ${forwarded} of ${N}`);
        const other = await polite(l, `${client}-polite`);
        // 1 MiB answers: the kernel's buffers on both ends and the socket's 256 KiB take a few.
        assert.ok(forwarded <= 12, `the upstream saw ${forwarded} of ${N} requests from a client that reads nothing`);
        assert.equal(other, 200, "a polite client is served meanwhile");
        const { answers } = await readAnswers(s, Array<string>(N).fill(l.method), N, 60_000, BIG);
        assert.equal(answers.length, N);
        for (const [i, a] of answers.entries()) {
          assert.equal(a.headers.find(([k]) => k === "x-i")?.[1], String(i));
          assert.equal(a.body.length, BIG);
        }
      } finally {
        s.destroy();
      }
    });

    test("a polite pipeline: answers in order, HEAD, bodies (sized and chunked), none lost", async () => {
      const client = `mix-${l.network}-${l.method}`;
      const first =
        l.method === "POST" ? req("POST", `/p/e?c=${client}&i=0`, [], "first") : req("GET", `/p/e?c=${client}&i=0`);
      const parts = [first];
      const methods: string[] = [l.method];
      const expect = [`${l.method} ${client} 0 ${l.method === "POST" ? 5 : 0}`];
      const bodyOf = (i: number) => "x".repeat((i * 7919) % 70_000);
      for (let i = 1; i < 30; i++) {
        const path = `/p/${i % 4 === 0 ? "slow" : "e"}?c=${client}&i=${i}`;
        const b = bodyOf(i);
        // HEAD, POST with a sized body, PUT with a chunked one, GET.
        const [method, text, echo] = [
          ["HEAD", req("HEAD", path), ""],
          ["POST", req("POST", path, [], b), `POST ${client} ${i} ${b.length}`],
          [
            "PUT",
            req("PUT", path, ["Transfer-Encoding: chunked"], `${b.length.toString(16)}\r\n${b}\r\n0\r\n\r\n`),
            `PUT ${client} ${i} ${b.length}`,
          ],
          ["GET", req("GET", path), `GET ${client} ${i} 0`],
          ["GET", req("GET", path), `GET ${client} ${i} 0`],
        ][i % 5]!;
        parts.push(text!);
        methods.push(method!);
        expect.push(echo!);
      }
      const s = await open(l);
      try {
        // In pieces of odd sizes, so that heads and bodies straddle reads.
        const all = Buffer.from(parts.join(""));
        for (let at = 0; at < all.length; at += 9973) s.write(all.subarray(at, at + 9973));
        const { answers } = await readAnswers(s, methods, methods.length);
        assert.equal(answers.length, methods.length);
        for (const [i, a] of answers.entries()) {
          assert.match(a.statusLine, /^HTTP\/1\.1 200 /, `answer ${i}`);
          assert.equal(a.body.toString().split(" ").slice(0, 4).join(" "), expect[i], `answer ${i}`);
          assert.equal(a.headers.find(([k]) => k === "x-i")?.[1], String(i), `answer ${i}`);
        }
      } finally {
        s.destroy();
      }
    });

    test("Connection: close mid-pipeline: answered up to it, then closed", async () => {
      const client = `close-${l.network}-${l.method}`;
      const body = l.method === "POST" ? "b" : undefined;
      const s = await open(l);
      try {
        s.write(
          req(l.method, `/p/slow?c=${client}&i=0`, [], body) +
            req(l.method, `/p/e?c=${client}&i=1`, ["Connection: close"], body),
        );
        // (Nothing after it: a client that sent close sends no more, RFC 9112 §9.6; node:http's
        // parser answers more bytes with a 400.)
        const { answers, closed } = await readAnswers(s, [l.method, l.method], 3, 5000);
        assert.equal(answers.length, 2, JSON.stringify(answers.map((a) => [a.statusLine, a.body.toString()])));
        assert.ok(closed, "the connection closes after the answer that said close");
        assert.deepEqual(
          answers.map((a) => a.headers.find(([k]) => k === "x-i")?.[1]),
          ["0", "1"],
        );
        await sleep(200);
        assert.deepEqual(
          arrivals.filter((a) => a.client === client).map((a) => a.i),
          [0, 1],
        );
      } finally {
        s.destroy();
      }
    });

    test("Expect: 100-continue behind a request in flight: 100 after the earlier answer, then its own", async () => {
      const client = `expect-${l.network}-${l.method}`;
      const body = l.method === "POST" ? "b" : undefined;
      const s = await open(l);
      try {
        const got: Buffer[] = [];
        s.on("data", (c: Buffer) => got.push(c));
        s.write(
          req(l.method, `/p/slow?c=${client}&i=0`, [], body) +
            req("POST", `/p/e?c=${client}&i=1`, ["Expect: 100-continue", "Content-Length: 5"]),
        );
        await eventually("100 Continue", () => Buffer.concat(got).includes("HTTP/1.1 100 Continue"), {
          timeoutMs: 5000,
          intervalMs: 20,
        });
        s.write("hello");
        const finalsOf = () =>
          parseResponses(Buffer.concat(got), [l.method, "POST"], false).answers.filter(
            (a) => a.complete && !a.statusLine.includes(" 100 "),
          );
        await eventually("both answers", () => finalsOf().length >= 2, { timeoutMs: 5000, intervalMs: 20 });
        const text = Buffer.concat(got).toString("latin1");
        const order = [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);
        assert.deepEqual(order, ["200", "100", "200"], text.slice(0, 600));
        const finals = finalsOf();
        assert.equal(finals.length, 2);
        assert.equal(finals[1]!.body.toString().split(" ").slice(0, 4).join(" "), `POST ${client} 1 5`);
      } finally {
        s.destroy();
      }
    });

    test("Expect: 100-continue with its body sent at once, behind a request in flight: the 100 is not written into an answer", async () => {
      const client = `expect-now-${l.network}-${l.method}`;
      const body = l.method === "POST" ? "b" : undefined;
      const s = await open(l);
      try {
        s.write(
          req(l.method, `/p/slow?c=${client}&i=0`, [], body) +
            req("POST", `/p/e?c=${client}&i=1`, ["Expect: 100-continue"], "abcd") +
            req("GET", `/p/e?c=${client}&i=2`),
        );
        const { answers } = await readAnswers(s, [l.method, "POST", "GET"], 3, 5000);
        const text = answers.map((a) => `${a.statusLine} ${a.body.toString("latin1")}`);
        // node:http wrote the 100 of a request it had queued after that request's final head,
        // into its body: the answer's head goes to the front of what a queued answer buffered.
        assert.deepEqual(
          answers.map((a) => a.statusLine.slice(0, 12)),
          ["HTTP/1.1 200", "HTTP/1.1 100", "HTTP/1.1 200", "HTTP/1.1 200"],
          text.join("\n"),
        );
        assert.equal(answers[2]!.body.toString(), `POST ${client} 1 4 ${answers[2]!.body.toString().split(" ")[4]}`);
        assert.equal(answers[3]!.headers.find(([k]) => k === "x-i")?.[1], "2");
      } finally {
        s.destroy();
      }
    });

    test("a flooder that leaves with requests queued: they are never forwarded, the listener serves on", async () => {
      const client = `leave-${l.network}-${l.method}`;
      holding = true;
      const s = await open(l);
      try {
        s.write(flood(l, "/p/hold", client, 20));
        await eventually("the first request upstream", () => seen(client) >= 1, { timeoutMs: 5000 });
        s.destroy();
        await sleep(300);
        release();
        await sleep(300);
        // The connection is not read while requests wait, so its end is seen at the next write: the
        // one in flight and the one after it may reach the upstream, none beyond.
        assert.ok(seen(client) <= 2, `the upstream saw ${seen(client)} of 20 requests of a client that left`);
        assert.equal(await polite(l, `${client}-after`), 200);
      } finally {
        release();
        s.destroy();
      }
    });
  });
}
