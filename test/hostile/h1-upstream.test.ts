/**
 * A hostile upstream against the lean upstream engine (`client = "llhttp"`), each answer compared
 * with what undici makes of it: one data plane, one pipeline per engine, both to the same raw
 * socket server that misbehaves on purpose (CL+TE together, two content-lengths, bad chunk sizes,
 * a head over the limit, bytes after the answer, a close mid-body, a slow head, a body that never
 * ends, an answer before the request body is read, an upgrade, a garbled status line, a reset).
 * Every case must give the client the same outcome on both engines and the one expected (a 502/504
 * problem, a cut connection, or the answer), never a crash; no descriptor leaks, both still serve.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { request } from "node:http";
import { join } from "node:path";
import {
  baseConfig,
  eventually,
  proxyPipeline,
  startDataplane,
  writeTree,
  type Dataplane,
} from "../../dataplane/test/helpers.js";
import { assertStillServes, fdCount } from "./harness.js";

const OK = "HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nfine";

/** What each path answers, given the socket (the request head has been read). */
const SCRIPTS: Record<string, (s: Socket) => void> = {
  "/ok": (s) => s.write(OK),
  "/cl-te": (s) =>
    s.write("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
  "/two-cl": (s) => s.write("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!"),
  "/bad-chunk": (s) => s.write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
  "/big-head": (s) => s.write(`HTTP/1.1 200 OK\r\nx-big: ${"a".repeat(20_000)}\r\ncontent-length: 2\r\n\r\nok`),
  // A second answer smuggled behind the first: it must never reach the next request.
  "/extra": (s) =>
    s.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nevil"),
  "/close-mid": (s) => {
    s.write("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789");
    setTimeout(() => s.destroy(), 50);
  },
  "/slow-head": () => {}, // never answers: the headers timeout
  "/endless": (s) => s.write("HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n0123456789"), // then stalls: the body timeout
  "/early": (s) => {
    // Answers before reading the request body, then closes its side (a server refusing an upload).
    s.end("HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
  },
  "/upgrade": (s) => s.write("HTTP/1.1 101 Switching Protocols\r\nupgrade: evil\r\nconnection: upgrade\r\n\r\n"),
  "/bad-status": (s) => s.write("HTTP/1.1 2x0 OK\r\ncontent-length: 0\r\n\r\n"),
  "/reset": (s) => s.resetAndDestroy(),
  // A long body trickling out; counts the upstream sockets closed while it was sending one.
  "/slow-body": (s) => {
    s.write("HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n0123456789");
    s.once("close", () => slowBodyClosed++);
  },
};
let slowBodyClosed = 0;

/** What the client must see, per path. */
const EXPECTED: Record<string, string> = {
  "/cl-te": "502 upstream-error",
  "/two-cl": "502 upstream-error",
  "/bad-chunk": "cut",
  "/big-head": "502 upstream-error",
  "/extra": "200 ok",
  "/close-mid": "cut",
  "/slow-head": "504 upstream-timeout",
  "/endless": "cut",
  "/early": "413 ",
  "/upgrade": "502 upstream-error",
  "/bad-status": "502 upstream-error",
  "/reset": "502 upstream-error",
};

let upstream: Server;
let dp: Dataplane;
/** Requests per upstream connection, to tell a reused socket from a fresh one. */
let staleClosed = 0;

before(async () => {
  upstream = createServer((s) => {
    s.on("error", () => {});
    let buf = "";
    let served = 0;
    s.on("data", (c: Buffer) => {
      buf += c.toString("latin1");
      let end: number;
      while ((end = buf.indexOf("\r\n\r\n")) >= 0) {
        const path = /^\w+ \/\w+(\/[\w-]+)/.exec(buf)?.[1] ?? "/ok";
        buf = path === "/early" ? "" : buf.slice(end + 4); // only bodiless requests except /early
        served++;
        if (path === "/stale" && served > 1) {
          // A kept-alive socket the upstream drops as the next request arrives on it.
          staleClosed++;
          s.destroy();
          return;
        }
        (SCRIPTS[path] ?? SCRIPTS["/ok"]!)(s);
        if (path === "/early") return;
      }
    });
  });
  upstream.listen(0, "127.0.0.1");
  await new Promise((r) => upstream.once("listening", r));
  const url = `http://127.0.0.1:${(upstream.address() as { port: number }).port}`;
  const opts = "headers_timeout_ms = 400\nbody_timeout_ms = 400\nkeep_alive_timeout_ms = 300";
  const cfg = join(
    writeTree({
      "config.toml":
        baseConfig() +
        proxyPipeline("u", "/u", url, `client = "undici"\n${opts}`) +
        proxyPipeline("l", "/l", url, `client = "llhttp"\n${opts}`) +
        // Sockets kept long enough that the next request surely picks the same one; no body
        // timeout, so that only the engine's abort can close an abandoned answer's socket.
        proxyPipeline("s", "/s", url, `client = "llhttp"\nkeep_alive_timeout_ms = 600000\nbody_timeout_ms = 0`),
    }),
    "config.toml",
  );
  dp = await startDataplane(cfg);
});

after(async () => {
  await dp?.stop();
  upstream?.close();
});

/** The client's view: `<status> <problem type>`, `200 <body>`, or `cut` (no complete answer). */
function outcome(path: string, method = "GET", body?: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const req = request(dp.url("default", path), { method, agent: false }, (res) => {
      const got: Buffer[] = [];
      res.on("data", (c: Buffer) => got.push(c));
      res.on("error", () => resolve("cut"));
      res.on("aborted", () => resolve("cut"));
      res.on("end", () => {
        const text = Buffer.concat(got).toString();
        if (res.statusCode === 200) return resolve(`200 ${text}`);
        let type = "";
        try {
          type = String((JSON.parse(text) as { type?: string }).type ?? "").replace(/^.*\//, "");
        } catch {
          type = "";
        }
        resolve(`${res.statusCode} ${type}`);
      });
    });
    req.on("error", () => resolve("cut"));
    req.end(body);
  });
}

test("each hostile answer gives the same outcome through both engines, and the expected one", async () => {
  await assertStillServes(dp, "default", "/l/x/ok");
  await assertStillServes(dp, "default", "/u/x/ok");
  const fdsBefore = await fdCount(dp.pid);
  for (const path of Object.keys(EXPECTED)) {
    const early = path === "/early";
    const body = early ? Buffer.alloc(1 << 20, 1) : undefined;
    const method = early ? "POST" : "GET";
    const u = await outcome(`/u/x${path}`, method, body);
    const l = await outcome(`/l/x${path}`, method, body);
    assert.equal(l, u, `${path}: llhttp gave "${l}", undici "${u}"`);
    assert.equal(l, EXPECTED[path], path);
    // The pool is still usable right after, and a smuggled answer did not stay queued on a socket.
    assert.equal(await outcome("/l/x/ok"), "200 fine", `after ${path}`);
    assert.equal(await outcome("/u/x/ok"), "200 fine", `after ${path}`);
  }
  await assertStillServes(dp, "default", "/l/x/ok");
  // Idle upstream sockets close after keep_alive_timeout_ms: nothing is left open by the attacks.
  let n = 0;
  await eventually(
    "the data plane's descriptors back to their count before the attacks",
    async () => (n = await fdCount(dp.pid)) <= fdsBefore,
    { context: () => `${fdsBefore} before, ${n} now` },
  );
});

test("a kept-alive socket the upstream closed as it was reused: an idempotent bodiless request is sent again", async () => {
  assert.equal(await outcome("/s/x/stale"), "200 fine");
  const before = staleClosed;
  // The same pooled socket is picked for the next request; the upstream drops it on arrival.
  assert.equal(await outcome("/s/x/stale"), "200 fine");
  assert.equal(staleClosed, before + 1, "the request was not sent on the reused socket");
});

test("a client that leaves mid-body: the upstream socket is closed, not kept paused", async () => {
  const before = slowBodyClosed;
  await new Promise<void>((resolve) => {
    const req = request(dp.url("default", "/s/x/slow-body"), { agent: false }, (res) => {
      res.once("data", () => {
        req.destroy();
        resolve();
      });
    });
    req.end();
  });
  await eventually("the upstream socket of the abandoned answer closed", () => slowBodyClosed > before);
  assert.equal(await outcome("/s/x/ok"), "200 fine");
});
