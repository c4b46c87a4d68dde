// Comparison target `floor`: the smallest node:http + undici proxy, with no features (issue 18).
// It is what any Node proxy on this stack pays: a node:http server, one undici Pool to the
// upstream, Pool.stream straight into the response, hop-by-hop headers dropped. The gap between
// it and `harmony`, measured on the same Node, is the pipeline's own cost (routing, ids, trace
// context, metrics, access log).
//
// It keeps only what a proxy cannot drop without being wrong in this bench: a client that goes
// away mid-body destroys the response, which aborts the upstream request (undici then drops the
// socket instead of leaking it, perf-anchors §4.3), and an upstream failure is a 502.
//
// PORT (default 19380), UPSTREAM (default http://127.0.0.1:19000).
import http from "node:http";
import { Pool } from "undici";

const HOST = process.env.HOST ?? "127.0.0.1";
const PORT = Number(process.env.PORT ?? 19380);
const UPSTREAM = process.env.UPSTREAM ?? "http://127.0.0.1:19000";

// Same pool shape as the data plane's default backend (keep-alive, no pipelining).
const pool = new Pool(UPSTREAM, { connections: 128, pipelining: 1, keepAliveTimeout: 120_000 });
const HOP = new Set(["connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te", "trailer"]);

const server = http.createServer((req, res) => {
  const headers = {};
  for (const k in req.headers) if (!HOP.has(k) && k !== "host") headers[k] = req.headers[k];
  const hasBody = req.method !== "GET" && req.method !== "HEAD";
  pool.stream(
    { path: req.url, method: req.method, headers, body: hasBody ? req : null, opaque: res },
    ({ statusCode, headers: h, opaque }) => {
      for (const k of HOP) delete h[k];
      opaque.writeHead(statusCode, h);
      return opaque;
    },
    (err) => {
      if (!err) return;
      if (res.headersSent) res.destroy();
      else res.writeHead(502, { "content-type": "text/plain" }).end("bad gateway\n");
    },
  );
});
server.keepAliveTimeout = 120_000;
server.headersTimeout = 121_000;
server.listen(PORT, HOST, () => {
  process.stdout.write(`floor listening on http://${HOST}:${PORT} -> ${UPSTREAM} (pid ${process.pid})\n`);
});

for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    server.closeAllConnections();
    server.close(() => void pool.close().then(() => process.exit(0)));
  });
}
