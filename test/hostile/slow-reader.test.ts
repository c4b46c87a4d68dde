/**
 * Clients that ask for an answer and never read it (`proxy.client_send_timeout_ms`). The upstream's
 * pause is the proxy's backpressure, so the upstream body timeout never fires: before the send
 * timeout, each such client held an upstream connection for as long as it stayed connected, and a
 * backend's pool's worth of them (here 2) starved everyone else; one HTTP/2 connection held as many
 * as it had streams. Attacked on every listener kind: the llhttp lane, node:http, TLS (HTTP/1.1 by
 * ALPN), a connection the lane hands off, HTTP/2 streams, a reload while a client stalls. And what must not be cut: a slow but
 * steady reader (curl --limit-rate, on each listener kind), an answer whose upstream is silent for
 * a while (nothing waits to be sent), an idle keep-alive connection; with the timeout at 0, nothing is.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { once } from "node:events";
import { Agent, request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import { connect as http2Connect, constants as h2, type ClientHttp2Session } from "node:http2";
import { request as httpsRequest } from "node:https";
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  echoPipeline,
  eventually,
  sleep,
  startDataplane,
  startUpstream,
  writeTree,
  type Dataplane,
} from "../../dataplane/test/helpers.js";
import { selfSignedCert } from "./self-signed.js";

const SEND_TIMEOUT_MS = 1000;
/**
 * For curl's paced reads: --limit-rate keeps an average, so after a burst that empties every buffer
 * on the way (about 22 MiB on loopback here) it sleeps the burst's worth of its rate, ~1.4 s at 16 MiB/s.
 */
const PACED_TIMEOUT_MS = 5000;
/** The backend's pool: two non-readers fill it. */
const POOL = 2;
const CHUNK = Buffer.alloc(64 * 1024, "S");
/** Far more than every buffer between the upstream and a client that reads nothing holds. */
const STREAM_CHUNKS = 512; // 32 MiB

interface Exchange {
  closed: boolean;
  finished: boolean;
}
/** What the upstream saw, by the `c` query parameter. */
const exchanges = new Map<string, Exchange>();

/** `/p/stream` 32 MiB with backpressure; `/p/late` a head, a silence of 3 timeouts, then a body; else a short answer. */
function upstreamHandler(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? "/", "http://up");
  const ex: Exchange = { closed: false, finished: false };
  exchanges.set(url.searchParams.get("c") ?? "", ex);
  res.on("close", () => (ex.closed = true));
  if (url.pathname.endsWith("/stream")) {
    const total = Number(url.searchParams.get("chunks") ?? STREAM_CHUNKS);
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": total * CHUNK.length });
    let n = 0;
    const pump = () => {
      while (n < total) {
        n++;
        if (!res.write(CHUNK)) return void res.once("drain", pump);
      }
      res.end(() => (ex.finished = true));
    };
    pump();
  } else if (url.pathname.endsWith("/late")) {
    res.writeHead(200, { "content-type": "text/plain" });
    res.flushHeaders();
    setTimeout(() => res.end("late but whole", () => (ex.finished = true)), 3 * SEND_TIMEOUT_MS);
  } else {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("polite", () => (ex.finished = true));
  }
}

function config(id: string, mode: "node" | "llhttp", sendTimeoutMs: number, upstream: string): string {
  const tls = selfSignedCert("harmony-slow-reader-");
  return `[proxy]
id = "${id}"
shutdown_timeout_ms = 1000
http1_server = "${mode}"
client_send_timeout_ms = ${sendTimeoutMs}
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
[pipelines.p]
networks = ["default", "secure"]
endpoints = ["p_in"]
backends = ["p_out"]
[endpoints.p_in]
service = "http"
options = { path_prefix = "/p" }
[backends.p_out]
service = "http"
options = { base_url = "${upstream}", max_connections = ${POOL}, headers_timeout_ms = 30000, body_timeout_ms = 30000 }
`;
}

let up: Awaited<ReturnType<typeof startUpstream>>;
let lane: Dataplane;
let node: Dataplane;
let off: Dataplane;
let paced: Dataplane;
/** The lane data plane's config file, rewritten by the reload test. */
let laneConfig: string;

before(async () => {
  up = await startUpstream(upstreamHandler);
  const start = (id: string, mode: "node" | "llhttp", t: number) => {
    const file = join(writeTree({ "config.toml": config(id, mode, t, up.url) }), "config.toml");
    if (id === "slow-lane") laneConfig = file;
    return startDataplane(file);
  };
  [lane, node, off, paced] = await Promise.all([
    start("slow-lane", "llhttp", SEND_TIMEOUT_MS),
    start("slow-node", "node", SEND_TIMEOUT_MS),
    start("slow-off", "llhttp", 0),
    start("slow-paced", "llhttp", PACED_TIMEOUT_MS),
  ]);
});

after(async () => {
  await Promise.all([lane?.stop(), node?.stop(), off?.stop(), paced?.stop()]);
  await up?.close();
});

/** An HTTP/1.1 request written on a raw connection whose answer is never read. */
async function neverRead(dp: Dataplane, network: "default" | "secure", head: string): Promise<Socket> {
  const port = dp.ports[network]!;
  const s =
    network === "secure"
      ? tlsConnect({ port, host: "127.0.0.1", rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] })
      : netConnect({ port, host: "127.0.0.1" });
  s.on("error", () => undefined);
  await once(s, network === "secure" ? "secureConnect" : "connect");
  s.pause();
  s.write(head);
  return s;
}

/** A GET that reads its whole answer; its status and body, or an error after `timeoutMs`. */
function politeGet(dp: Dataplane, network: "default" | "secure", path: string, timeoutMs = 15_000) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const request = network === "secure" ? httpsRequest : httpRequest;
    const r = request(
      { host: "127.0.0.1", port: dp.ports[network], path, agent: false, rejectUnauthorized: false },
      (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode!, body }));
      },
    );
    r.setTimeout(timeoutMs, () => r.destroy(new Error(`no answer to ${path} in ${timeoutMs} ms`)));
    r.on("error", reject);
    r.end();
  });
}

const ex = (c: string) => exchanges.get(c);
const cutUpstream = (c: string) => {
  const e = ex(c);
  return e !== undefined && e.closed && !e.finished;
};
/** The send timeout's warnings, each naming the client's address. */
const sendLogs = (dp: Dataplane, what: string) =>
  dp.logs.filter(
    (l) =>
      l.level === "warn" &&
      l.message.includes("took none of an answer") &&
      l.message.endsWith(what) &&
      l.remote === "127.0.0.1",
  ).length;

interface Kind {
  name: string;
  dp: () => Dataplane;
  network: "default" | "secure";
  head: (c: string) => string;
}

const get = (c: string) => `GET /p/stream?c=${c} HTTP/1.1\r\nHost: dp.test\r\n\r\n`;
const KINDS: Kind[] = [
  { name: "the llhttp lane", dp: () => lane, network: "default", head: get },
  { name: "http1_server = node", dp: () => node, network: "default", head: get },
  { name: "TLS, HTTP/1.1 by ALPN", dp: () => lane, network: "secure", head: get },
  {
    // A request with a body is not the lane's: it hands the connection to node:http.
    name: "a connection the lane hands off",
    dp: () => lane,
    network: "default",
    head: (c) => `POST /p/stream?c=${c} HTTP/1.1\r\nHost: dp.test\r\nContent-Length: 4\r\n\r\nbody`,
  },
];

describe("a client that never reads loses its connection, and the upstream request with it", () => {
  for (const kind of KINDS) {
    test(kind.name, async (t) => {
      const tag = kind.name.replace(/\W+/g, "-");
      const clients = [`${tag}-a`, `${tag}-b`];
      const before = sendLogs(kind.dp(), "connection closed");
      const sockets = await Promise.all(clients.map((c) => neverRead(kind.dp(), kind.network, kind.head(c))));
      try {
        // Both hold the pool: the upstream is streaming to each.
        await eventually("both upstream exchanges under way", () => clients.every((c) => ex(c) !== undefined));
        const started = Date.now();
        const polite = await politeGet(kind.dp(), kind.network, `/p/small?c=${tag}-polite`);
        t.diagnostic(`polite client served after ${Date.now() - started} ms`);
        assert.deepEqual(polite, { status: 200, body: "polite" });
        await eventually("both upstream requests cut", () => clients.every(cutUpstream), { timeoutMs: 10_000 });
        assert.equal(sendLogs(kind.dp(), "connection closed") - before, 2, "one warning per connection cut");
      } finally {
        for (const s of sockets) s.destroy();
      }
    });
  }

  test("HTTP/2: each stream that is never read is reset (CANCEL), the session and its other streams live on", async (t) => {
    const session = http2Connect(`https://127.0.0.1:${lane.ports.secure}`, { rejectUnauthorized: false });
    session.on("error", () => undefined);
    try {
      const clients = ["h2-a", "h2-b"];
      const streams = clients.map((c) => {
        const s = session.request({ ":path": `/p/stream?c=${c}` });
        s.on("error", () => undefined);
        s.pause();
        return s;
      });
      const rst = streams.map((s) => once(s, "close").then(() => s.rstCode));
      await eventually("both upstream exchanges under way", () => clients.every((c) => ex(c) !== undefined));
      const started = Date.now();
      assert.deepEqual(await Promise.all(rst), [h2.NGHTTP2_CANCEL, h2.NGHTTP2_CANCEL]);
      t.diagnostic(`streams reset after ${Date.now() - started} ms`);
      await eventually("both upstream requests cut", () => clients.every(cutUpstream), { timeoutMs: 10_000 });
      // The same session still serves.
      const polite = await h2Get(session, "/p/small?c=h2-polite");
      assert.deepEqual(polite, { status: 200, body: "polite" });
      assert.ok(sendLogs(lane, "stream closed") >= 2, "a warning per stream reset");
    } finally {
      session.destroy();
    }
  });
});

test("a reload while a client is stalled (a pipeline added, the listener kept): it is still cut, the new pipeline served", async () => {
  const before = sendLogs(lane, "connection closed");
  const loads = () => lane.logs.filter((l) => l.message === "config loaded").length;
  const loaded = loads();
  const s = await neverRead(lane, "default", get("reload-a"));
  try {
    await eventually("the upstream exchange under way", () => ex("reload-a") !== undefined);
    writeFileSync(laneConfig, `${readFileSync(laneConfig, "utf8")}\n${echoPipeline("extra", "/extra")}`);
    await eventually("the reload", () => loads() > loaded, { timeoutMs: 15_000 });
    await eventually("the stalled upstream request cut", () => cutUpstream("reload-a"), { timeoutMs: 10_000 });
    assert.equal(sendLogs(lane, "connection closed") - before, 1);
    const extra = await politeGet(lane, "default", "/extra/x");
    assert.equal(extra.status, 200);
  } finally {
    s.destroy();
  }
});

function h2Get(session: ClientHttp2Session, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const s = session.request({ ":path": path });
    let status = 0;
    let body = "";
    s.on("response", (h) => (status = Number(h[":status"])));
    s.setEncoding("utf8").on("data", (c: string) => (body += c));
    s.on("end", () => resolve({ status, body }));
    s.on("error", reject);
  });
}

describe("what the send timeout leaves alone", () => {
  // An independent client: curl's --limit-rate reads in bursts and sleeps between them (on HTTP/2
  // it paces its flow-control window too). 96 MiB at 16 MiB/s, longer than the timeout: a send
  // timeout that counted time instead of progress would cut it.
  const READERS = [
    { scheme: "http", network: "default", version: "--http1.1", name: "the llhttp lane" },
    { scheme: "https", network: "secure", version: "--http1.1", name: "TLS" },
    { scheme: "https", network: "secure", version: "--http2", name: "TLS" },
  ] as const;
  for (const r of READERS)
    test(`curl ${r.version} --limit-rate 16M gets all 96 MiB (${r.name})`, async (t) => {
      const chunks = 1536;
      const c = `curl-${r.network}${r.version}`;
      const out = await new Promise<string>((resolve, reject) =>
        execFile(
          "curl",
          [
            "-sS",
            "-k",
            r.version,
            "--limit-rate",
            "16M",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download} %{http_version}",
            `${r.scheme}://127.0.0.1:${paced.ports[r.network]}/p/stream?c=${c}&chunks=${chunks}`,
          ],
          { timeout: 60_000 },
          (e, stdout, stderr) => (e ? reject(new Error(`${e.message}\n${stderr}`)) : resolve(stdout)),
        ),
      );
      t.diagnostic(out);
      assert.equal(out, `200 ${chunks * CHUNK.length} ${r.version === "--http2" ? "2" : "1.1"}`);
      assert.equal(ex(c)?.finished, true, "the upstream sent it all");
    });

  test("an upstream silent for three timeouts: nothing waits to be sent, the answer arrives whole", async () => {
    for (const network of ["default", "secure"] as const) {
      const r = await politeGet(lane, network, `/p/late?c=late-${network}`);
      assert.deepEqual(r, { status: 200, body: "late but whole" });
    }
  });

  test("an idle keep-alive connection outlives three timeouts", async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const port = (r: IncomingMessage) => r.socket.localPort;
    const one = () =>
      new Promise<number | undefined>((resolve, reject) => {
        httpRequest({ host: "127.0.0.1", port: lane.ports.default, path: "/p/small?c=idle", agent }, (res) => {
          const local = port(res); // before the end hands the socket back to the agent
          res.resume().on("end", () => resolve(local));
        })
          .on("error", reject)
          .end();
      });
    try {
      const first = await one();
      await sleep(3 * SEND_TIMEOUT_MS);
      assert.equal(await one(), first, "the second request went over the same connection");
    } finally {
      agent.destroy();
    }
  });

  test("client_send_timeout_ms = 0: a client that never reads is not cut", async () => {
    const s = await neverRead(off, "default", get("off"));
    try {
      await eventually("the upstream exchange under way", () => ex("off") !== undefined);
      await sleep(3 * SEND_TIMEOUT_MS);
      assert.equal(ex("off")?.closed, false, "the upstream request still open");
      assert.equal(sendLogs(off, "connection closed"), 0);
    } finally {
      s.destroy();
    }
  });
});
