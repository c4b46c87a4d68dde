/**
 * The llhttp engine on one kept-alive socket whose answers change kind from one to the next
 * (issue 18): a counted body (handed on past the parser, which is then not asked to report the
 * message's end), a chunked one with trailers, 204, 304, HEAD, informational answers before the
 * final one, and a close-delimited body. Each kind must still end its exchange, with its bytes,
 * whatever kind came before it on the socket. Real sockets on 127.0.0.1, the pool in-process.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:net";
import type { AddressInfo } from "node:net";
import type { Dispatcher } from "undici";
import { H1Pool } from "../src/http1/pool.js";
import { CHUNK_RELEASED } from "../src/http1/read-buffer.js";

/** Raw answers by path: written as bytes, so framing is exactly what the test says. */
const ANSWERS: Record<string, string> = {
  "/len": "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
  "/chunked":
    "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-t\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nx-t: 1\r\n\r\n",
  "/204": "HTTP/1.1 204 No Content\r\n\r\n",
  "/304": "HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n",
  "/early": "HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nxyz",
  "/close": "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end",
};
const BODIES: Record<string, string> = {
  "/len": "hello",
  "/chunked": "abcde",
  "/204": "",
  "/304": "",
  "/early": "xyz",
  "/close": "until the end",
};

let server: Server;
let origin = "";
let connections = 0;

before(async () => {
  server = createServer((sock) => {
    connections++;
    let buf = "";
    sock.on("data", (d) => {
      buf += d.toString("latin1");
      for (let end = buf.indexOf("\r\n\r\n"); end >= 0; end = buf.indexOf("\r\n\r\n")) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        const [method, path] = head.split(" ");
        if (method === "HEAD") sock.write("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n");
        else if (path === "/close") sock.end(ANSWERS["/close"]!);
        else sock.write(ANSWERS[path!] ?? "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
      }
    });
    sock.on("error", () => {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((r) => server.close(() => r())));

interface Got {
  statuses: number[];
  body: string;
  trailers: Record<string, unknown>;
}

function exchange(p: H1Pool, method: string, path: string, released: boolean): Promise<Got> {
  return new Promise((resolve, reject) => {
    const got: Got = { statuses: [], body: "", trailers: {} };
    const timer = setTimeout(() => reject(new Error(`${method} ${path}: no end in 5 s`)), 5000);
    const handler: Dispatcher.DispatchHandler & { [CHUNK_RELEASED]?(): boolean } = {
      onResponseStart: (_c, status) => void got.statuses.push(status),
      onResponseData: (_c, chunk) => void (got.body += chunk.toString("latin1")),
      onResponseEnd: (_c, trailers) => {
        clearTimeout(timer);
        got.trailers = { ...trailers };
        resolve(got);
      },
      onResponseError: (_c, e) => {
        clearTimeout(timer);
        reject(e);
      },
    };
    if (released) handler[CHUNK_RELEASED] = () => true;
    p.dispatch({ method, path, headers: {} }, handler);
  });
}

test("every kind of answer ends its exchange after every other kind on the same socket", async () => {
  const p = new H1Pool(origin, {
    connections: 1,
    keepAliveTimeout: 4000,
    headersTimeout: 5000,
    bodyTimeout: 5000,
    connectTimeout: 5000,
  });
  try {
    const kinds: [string, string][] = [
      ["GET", "/len"],
      ["GET", "/chunked"],
      ["GET", "/204"],
      ["GET", "/304"],
      ["HEAD", "/len"],
      ["GET", "/early"],
    ];
    // Every ordered pair of kinds, each pair twice (a counted body first, then each other kind...).
    const order: [string, string][] = [];
    for (const a of kinds) for (const b of kinds) order.push(a, b, a, b);
    let released = false;
    for (const [method, path] of order) {
      released = !released; // handlers that release chunks and handlers that keep them, alternately
      const got = await exchange(p, method, path, released);
      const what = `${method} ${path}`;
      assert.equal(got.body, method === "HEAD" ? "" : BODIES[path], what);
      assert.deepEqual(got.statuses, path === "/early" ? [103, 200] : [Number(path.slice(1)) || 200], what);
      if (path === "/chunked") assert.deepEqual(got.trailers, { "x-t": "1" }, what);
    }
    // HEAD answers close their socket (as undici); every other kind left it for the next one.
    const heads = order.filter(([m]) => m === "HEAD").length;
    assert.ok(connections <= heads + 1, `${connections} connections for ${heads} HEADs`);
    const last = await exchange(p, "GET", "/close", true);
    assert.equal(last.body, BODIES["/close"]);
    assert.equal((await exchange(p, "GET", "/len", true)).body, "hello", "a counted body after a close-delimited one");
  } finally {
    await p.destroy();
  }
});
