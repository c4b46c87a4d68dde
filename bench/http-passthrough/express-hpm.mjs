// Comparison target `express-hpm`: Express 5 + http-proxy-middleware 3 with an
// upstream keep-alive agent. This is the design the project rejected for the data
// plane; it is measured here so the reason stays reproducible (see bench/README.md).
//
// Without `agent`, http-proxy (under hpm) uses agent:false and sends
// `Connection: close` upstream: a new TCP connection per request, ~2.5x slower
// (perf-anchors §0). The agent below is the fair, best-known configuration.
// It is deliberately left otherwise at defaults (no client-abort handling added).
//
// PORT (default 19280), UPSTREAM (default http://127.0.0.1:19000).
import http from "node:http";
import express from "express";
import { createProxyMiddleware } from "http-proxy-middleware";

const HOST = process.env.HOST ?? "127.0.0.1";
const PORT = Number(process.env.PORT ?? 19280);
const UPSTREAM = process.env.UPSTREAM ?? "http://127.0.0.1:19000";

const agent = new http.Agent({ keepAlive: true });

const app = express();
app.use(createProxyMiddleware({ target: UPSTREAM, agent }));

const server = app.listen(PORT, HOST, () => {
  console.log(`express-hpm listening on http://${HOST}:${PORT} -> ${UPSTREAM} (pid ${process.pid})`);
});
server.keepAliveTimeout = 120_000;
server.headersTimeout = 121_000;

for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    server.closeAllConnections();
    agent.destroy();
    server.close(() => process.exit(0));
  });
}
