// Comparison targets `floor-raw`, `floor-rawserver` and `floor-rawclient` (issue 18): how much of
// `floor`'s cost is node:http's server and how much is undici, and what the cheapest proxy Node can
// run costs. Each side is either the usual library or a "raw" one: net sockets and Node's own
// llhttp binding (HTTPParser from `_http_common`, the parser node:http itself uses, with its strict
// defaults), no IncomingMessage/ServerResponse streams, no undici dispatcher.
//
//   SERVER=http|raw   the side facing the client (node:http server, or net + HTTPParser)
//   CLIENT=undici|raw the side facing the upstream (one undici Pool, or a keep-alive net socket list + HTTPParser)
//
// A measurement instrument, NOT a proxy to run: it forwards GET/HEAD and bodies with a
// content-length, answers one request at a time per connection (a pipelined second request waits),
// and has none of the data plane's limits, timeouts or checks. PORT (default 19480), UPSTREAM.
import http from "node:http";
import net from "node:net";
import { HTTPParser, methods } from "_http_common";
import { Pool } from "undici";

const HOST = process.env.HOST ?? "127.0.0.1";
const PORT = Number(process.env.PORT ?? 19480);
const UPSTREAM = new URL(process.env.UPSTREAM ?? "http://127.0.0.1:19000");
const SERVER = process.env.SERVER ?? "raw";
const CLIENT = process.env.CLIENT ?? "raw";
const HOP = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "proxy-connection",
  "upgrade",
  "te",
  "trailer",
  "host",
]);
const MAX_HEADER = 16 * 1024;

// ---- the upstream side -------------------------------------------------------------------------
// forward(method, url, headers[flat, lowercase-free], body|null, sink): sink.head(status, flatHeaders),
// sink.data(buf) -> false when the client is full, sink.end(), sink.fail(err); returns { pause, resume }.

function rawClient() {
  const idle = [];
  const upstreamHost = `${UPSTREAM.hostname}:${UPSTREAM.port}`;
  function connect() {
    const socket = net.connect({ host: UPSTREAM.hostname, port: Number(UPSTREAM.port), noDelay: true });
    const parser = new HTTPParser();
    parser.initialize(HTTPParser.RESPONSE, {}, MAX_HEADER, 0);
    // Node's parser hands each body chunk to JS as a copy. A body with a content-length is passed on
    // as the socket's own buffers instead: the parser sees only the head ("bypass"), and is reset
    // once the counted body has gone through. `fresh`: nothing of the next head has been parsed yet.
    const conn = { socket, parser, sink: null, keepAlive: true, fresh: true, isolated: false, bodyLeft: 0 };
    parser[HTTPParser.kOnHeadersComplete] = (_maj, _min, headers, _m, _u, status, _msg, _up, keepAlive) => {
      conn.keepAlive = keepAlive;
      const out = [];
      let length = -1;
      for (let i = 0; i < headers.length; i += 2) {
        const k = headers[i].toLowerCase();
        if (k === "content-length") length = Number(headers[i + 1]);
        if (!HOP.has(k)) out.push(headers[i], headers[i + 1]);
      }
      conn.sink.head(status, out);
      if (conn.method === "HEAD") return 1; // 1: skip the body
      if (conn.isolated && length > 0 && status >= 200 && status !== 204 && status !== 304) conn.bodyLeft = length;
      return 0;
    };
    parser[HTTPParser.kOnBody] = (chunk) => {
      if (!conn.sink.data(chunk)) socket.pause();
    };
    const complete = () => {
      const sink = conn.sink;
      conn.sink = null;
      conn.fresh = true;
      if (conn.keepAlive) idle.push(conn);
      else socket.destroy();
      sink.end();
    };
    parser[HTTPParser.kOnMessageComplete] = complete;
    const bypass = (buf) => {
      const n = Math.min(buf.length, conn.bodyLeft);
      conn.bodyLeft -= n;
      if (!conn.sink.data(n === buf.length ? buf : buf.subarray(0, n))) socket.pause();
      if (conn.bodyLeft === 0) complete();
      if (n < buf.length) socket.destroy(); // bytes past the response: nothing was asked for them
    };
    socket.on("data", (buf) => {
      if (conn.bodyLeft > 0) return bypass(buf);
      if (conn.fresh) {
        const end = buf.indexOf("\r\n\r\n");
        if (end >= 0) {
          conn.fresh = false;
          conn.isolated = true;
          const r = parser.execute(end + 4 === buf.length ? buf : buf.subarray(0, end + 4));
          conn.isolated = false;
          if (r instanceof Error) return void socket.destroy(r);
          const rest = buf.subarray(end + 4);
          if (conn.bodyLeft > 0) {
            parser.initialize(HTTPParser.RESPONSE, {}, MAX_HEADER, 0);
            if (rest.length) bypass(rest);
            return;
          }
          if (rest.length === 0) return;
          buf = rest;
        }
      }
      conn.fresh = false;
      const r = parser.execute(buf);
      if (r instanceof Error) socket.destroy(r);
    });
    const gone = (err) => {
      const i = idle.indexOf(conn);
      if (i >= 0) idle.splice(i, 1);
      if (conn.sink) conn.sink.fail(err ?? new Error("upstream closed"));
      conn.sink = null;
    };
    socket.on("error", gone);
    socket.on("close", () => gone());
    return conn;
  }
  return (method, url, headers, body, sink) => {
    const conn = idle.pop() ?? connect();
    conn.sink = sink;
    conn.method = method;
    let head = `${method} ${url} HTTP/1.1\r\nhost: ${upstreamHost}\r\n`;
    for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    head += "\r\n";
    conn.socket.write(body ? Buffer.concat([Buffer.from(head, "latin1"), body]) : head, "latin1");
    return { pause: () => conn.socket.pause(), resume: () => conn.socket.resume(), abort: () => conn.socket.destroy() };
  };
}

function undiciClient() {
  const pool = new Pool(UPSTREAM.origin, { connections: 128, pipelining: 1, keepAliveTimeout: 120_000 });
  return (method, url, headers, body, sink) => {
    const h = {};
    for (let i = 0; i < headers.length; i += 2) h[headers[i]] = headers[i + 1];
    let ctl = null;
    pool.dispatch(
      { path: url, method, headers: h, body },
      {
        onRequestStart(controller) {
          ctl = controller;
        },
        onResponseStart(_c, status, headers) {
          const out = [];
          for (const k in headers) if (!HOP.has(k)) out.push(k, headers[k]);
          sink.head(status, out);
        },
        onResponseData(controller, chunk) {
          if (!sink.data(chunk)) controller.pause();
        },
        onResponseEnd() {
          sink.end();
        },
        onResponseError(_c, err) {
          sink.fail(err);
        },
      },
    );
    return {
      pause: () => ctl?.pause(),
      resume: () => ctl?.resume(),
      abort: () => ctl?.abort(new Error("client gone")),
    };
  };
}

const forward = CLIENT === "raw" ? rawClient() : undiciClient();

// ---- the client side ---------------------------------------------------------------------------

function rawServer() {
  return net.createServer({ noDelay: true }, (socket) => {
    const parser = new HTTPParser();
    parser.initialize(HTTPParser.REQUEST, {}, MAX_HEADER, 0);
    const queue = [];
    let busy = false;
    let current = null;
    let inFlight = null; // the upstream exchange of the request being answered

    parser[HTTPParser.kOnHeadersComplete] = (_maj, _min, headers, method, url, _s, _m, _up, keepAlive) => {
      const out = [];
      let length = 0;
      for (let i = 0; i < headers.length; i += 2) {
        const k = headers[i].toLowerCase();
        if (k === "content-length") length = Number(headers[i + 1]);
        if (!HOP.has(k)) out.push(headers[i], headers[i + 1]);
      }
      current = { method: methods[method], url, headers: out, keepAlive, body: length > 0 ? [] : null };
      return 0;
    };
    parser[HTTPParser.kOnBody] = (chunk) => current.body.push(Buffer.from(chunk));
    parser[HTTPParser.kOnMessageComplete] = () => {
      queue.push(current);
      current = null;
      if (!busy) next();
    };
    function next() {
      const req = queue.shift();
      if (!req) return void (busy = false);
      busy = true;
      let chunked = false;
      let headBuf = "";
      let flow = null;
      const sink = {
        head(status, headers) {
          headBuf = `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ""}\r\n`;
          let hasLength = false;
          for (let i = 0; i < headers.length; i += 2) {
            if (headers[i].length === 14 && headers[i].toLowerCase() === "content-length") hasLength = true;
            headBuf += `${headers[i]}: ${headers[i + 1]}\r\n`;
          }
          chunked = !hasLength && req.method !== "HEAD" && status !== 204 && status !== 304;
          headBuf += chunked ? "transfer-encoding: chunked\r\n" : "";
          headBuf += req.keepAlive ? "\r\n" : "connection: close\r\n\r\n";
        },
        data(chunk) {
          let ok;
          if (headBuf) {
            socket.cork();
            socket.write(headBuf, "latin1");
            headBuf = "";
            ok = writeBody(chunk);
            socket.uncork();
          } else ok = writeBody(chunk);
          if (!ok) socket.once("drain", () => flow.resume());
          return ok;
        },
        end() {
          if (headBuf) socket.write(headBuf + (chunked ? "0\r\n\r\n" : ""), "latin1");
          else if (chunked) socket.write("0\r\n\r\n");
          inFlight = null;
          if (!req.keepAlive) socket.end();
          next();
        },
        fail() {
          if (headBuf || !busy) socket.destroy();
          else socket.end("HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        },
      };
      function writeBody(chunk) {
        if (!chunked) return socket.write(chunk);
        socket.write(`${chunk.length.toString(16)}\r\n`);
        socket.write(chunk);
        return socket.write("\r\n");
      }
      flow = forward(req.method, req.url, req.headers, req.body ? Buffer.concat(req.body) : null, sink);
      inFlight = flow;
    }
    socket.on("data", (buf) => {
      const r = parser.execute(buf);
      if (r instanceof Error) socket.destroy();
    });
    socket.on("error", () => {});
    // A client gone mid-response must not leave the upstream connection paused forever.
    socket.on("close", () => inFlight?.abort());
  });
}

function httpServer() {
  const server = http.createServer((req, res) => {
    const headers = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2)
      if (!HOP.has(req.rawHeaders[i].toLowerCase())) headers.push(req.rawHeaders[i], req.rawHeaders[i + 1]);
    const run = (body) => {
      let flow = null;
      flow = forward(req.method, req.url, headers, body, {
        head(status, h) {
          const obj = {};
          for (let i = 0; i < h.length; i += 2) obj[h[i]] = h[i + 1];
          res.writeHead(status, obj);
        },
        data(chunk) {
          const ok = res.write(chunk);
          if (!ok) res.once("drain", () => flow.resume());
          return ok;
        },
        end() {
          res.end();
        },
        fail() {
          if (res.headersSent) res.destroy();
          else res.writeHead(502).end();
        },
      });
      res.on("close", () => {
        if (!res.writableFinished) flow.abort();
      });
    };
    if (req.method === "GET" || req.method === "HEAD") return run(null);
    const parts = [];
    req.on("data", (c) => parts.push(c)).on("end", () => run(parts.length ? Buffer.concat(parts) : null));
  });
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 121_000;
  return server;
}

const server = SERVER === "raw" ? rawServer() : httpServer();
server.listen(PORT, HOST, () => {
  process.stdout.write(
    `floor-raw (server ${SERVER}, client ${CLIENT}) on http://${HOST}:${PORT} -> ${UPSTREAM.origin} (pid ${process.pid})\n`,
  );
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
