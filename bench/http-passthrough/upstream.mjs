// Loopback upstream for bench/http-passthrough (plain JS, node:http only).
//
//   GET /1k  -> 1,024-byte JSON body (application/json, content-length)
//   GET /1m  -> 1,048,576-byte body (application/octet-stream, content-length)
//   POST /sink -> reads the request body to its end, then answers 200 with its length (upload.sh)
//   anything else -> 404
//
// PORT (default 19000) and HOST (default 127.0.0.1) come from the environment.
// The same file also serves the `direct` target (a second instance on its own port).
import http from "node:http";

const HOST = process.env.HOST ?? "127.0.0.1";
const PORT = Number(process.env.PORT ?? 19000);

// A small FHIR-ish JSON document padded to exactly 1 KiB.
function oneKiBJson() {
  const doc = {
    resourceType: "Bundle",
    type: "searchset",
    total: 3,
    entry: [1, 2, 3].map((i) => ({
      resource: {
        resourceType: "Observation",
        id: `obs-${i}`,
        status: "final",
        code: { coding: [{ system: "http://loinc.org", code: "8867-4", display: "Heart rate" }] },
        subject: { reference: `Patient/bench-${i}` },
        valueQuantity: { value: 60 + i, unit: "beats/minute" },
      },
    })),
    pad: "",
  };
  const base = Buffer.byteLength(JSON.stringify(doc));
  if (base > 1024) throw new Error(`1k body base is ${base} bytes`);
  doc.pad = "x".repeat(1024 - base);
  const buf = Buffer.from(JSON.stringify(doc));
  if (buf.length !== 1024) throw new Error(`1k body is ${buf.length} bytes`);
  return buf;
}

const ONE_K = oneKiBJson();
const ONE_M = Buffer.alloc(1024 * 1024);
for (let i = 0; i < ONE_M.length; i++) ONE_M[i] = 97 + (i % 26); // a..z repeating

const server = http.createServer((req, res) => {
  const path = req.url.split("?", 1)[0];
  if (path === "/1k") {
    res.writeHead(200, { "content-type": "application/json", "content-length": ONE_K.length });
    res.end(ONE_K);
  } else if (path === "/1m") {
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": ONE_M.length });
    res.end(ONE_M);
  } else if (path === "/sink") {
    let n = 0;
    req.on("data", (c) => (n += c.length));
    req.on("end", () => {
      const body = String(n);
      res.writeHead(200, { "content-type": "text/plain", "content-length": body.length });
      res.end(body);
    });
  } else {
    res.writeHead(404, { "content-type": "text/plain", "content-length": 10 });
    res.end("not found\n");
  }
});

// Targets stay idle for tens of seconds between their turns in a round. A long
// keep-alive timeout keeps the proxies' pooled upstream sockets from being closed
// under them (Node's default is 5 s), so no proxy pays for reconnect races.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 121_000;

server.listen(PORT, HOST, () => {
  console.log(`upstream listening on http://${HOST}:${PORT} (pid ${process.pid})`);
});

for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}
