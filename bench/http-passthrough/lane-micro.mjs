// bench/http-passthrough/lane-micro.mjs: the llhttp server lane's own CPU per request, A against B,
// without the network (issue 18). For a cut of a microsecond or two the full benchmark needs a quiet
// box; this one does not: each build's real LaneConnection (http1/server/connection.js) reads a
// keep-alive GET from a stand-in socket, builds its request and response, and the stand-in backend
// answers as http-forward's exchange does for a 1 KiB upstream answer (writeHead with the relayed
// fields, end(body)). The socket's writes go nowhere. Builds alternate in short bursts, many times:
// the median of the paired ratios holds up on a busy box where absolute µs do not.
//
//   node bench/http-passthrough/lane-micro.mjs [--bursts 200] [--requests 2000] A/dist B/dist
//
// A and B are dataplane/dist directories (B: e.g. dataplane/.tmp/base-<sha>/dist from build-base.sh).
import { EventEmitter } from "node:events";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

const { values: opt, positionals: dists } = parseArgs({
  allowPositionals: true,
  options: { bursts: { type: "string", default: "200" }, requests: { type: "string", default: "2000" } },
});
if (dists.length !== 2) {
  console.error("usage: node lane-micro.mjs [--bursts N] [--requests N] A/dist B/dist");
  process.exit(2);
}

const REQUEST = Buffer.from(
  "GET /p/1k HTTP/1.1\r\nHost: 127.0.0.1:19180\r\nUser-Agent: wrk\r\nAccept: */*\r\nX-Trace: 0af7651916cd43dd8448eb211c80319c\r\n\r\n",
  "latin1",
);
const BODY = Buffer.alloc(1024, "j");

/** What a backend's exchange writes for the upstream's 1 KiB JSON answer (fields as relayed). */
function answer(res) {
  res.writeHead(200, {
    "content-type": "application/json",
    "content-length": "1024",
    etag: 'W/"400-abc"',
    "x-request-id": "6d3f1c9e-2b7a-4c1d-9e8f-0a1b2c3d4e5f",
  });
  res.end(BODY);
}

/** A socket as far as a lane connection and its response use one; writes go nowhere. */
class StandInSocket extends EventEmitter {
  destroyed = false;
  writableCorked = 0;
  writableLength = 0;
  writableHighWaterMark = 256 * 1024;
  writableFinished = false;
  remoteAddress = "127.0.0.1";
  bytes = 0;
  write(data, encoding, cb) {
    this.bytes += data.length;
    if (typeof encoding === "function") cb = encoding;
    if (cb) process.nextTick(cb);
    return true;
  }
  cork() {
    this.writableCorked++;
  }
  uncork() {
    if (this.writableCorked) this.writableCorked--;
  }
  pause() {}
  resume() {}
  end() {}
  destroy() {
    this.destroyed = true;
  }
  setNoDelay() {}
}

async function load(dist) {
  const d = resolve(dist);
  const { LaneConnection } = await import(join(d, "http1/server/connection.js"));
  const { Deadlines } = await import(join(d, "http1/deadlines.js"));
  const socket = new StandInSocket();
  const host = {
    deadlines: new Deadlines(1000),
    headersTimeoutMs: 60_000,
    keepAliveTimeoutMs: 65_000,
    served: 0,
    serve(req, res) {
      this.served++;
      answer(res);
      return true;
    },
    handOff() {
      throw new Error("handed off");
    },
    reject(_s, status) {
      throw new Error(`rejected ${status}`);
    },
    released() {},
  };
  new LaneConnection(socket, host);
  return { dist, socket, host };
}

function burst(t, n) {
  const t0 = process.cpuUsage();
  for (let i = 0; i < n; i++) t.socket.emit("data", REQUEST);
  const u = process.cpuUsage(t0);
  return (u.user + u.system) / n;
}

const targets = await Promise.all(dists.map(load));
const n = Number(opt.requests);
for (let i = 0; i < 50; i++) for (const t of targets) burst(t, n); // warm-up: JIT
const ratios = [];
const us = targets.map(() => []);
for (let b = 0; b < Number(opt.bursts); b++) {
  const order = b % 2 ? [1, 0] : [0, 1];
  const r = [];
  for (const i of order) r[i] = burst(targets[i], n);
  ratios.push(r[0] / r[1]);
  r.forEach((v, i) => us[i].push(v));
  await new Promise((res) => setImmediate(res)); // the ticks the responses scheduled
}
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
for (const [i, t] of targets.entries())
  console.log(
    `${t.dist}: median ${median(us[i]).toFixed(2)} µs CPU/req, ${t.host.served} served, ${t.socket.bytes} bytes written`,
  );
const q = [...ratios].sort((x, y) => x - y);
console.log(
  `A ÷ B per burst: median ${median(ratios).toFixed(3)} (quartiles ${q[Math.floor(q.length / 4)].toFixed(3)}–${q[Math.floor((3 * q.length) / 4)].toFixed(3)}, ${ratios.length} bursts of ${n})`,
);
console.log(`A − B: ${(median(us[0]) - median(us[1])).toFixed(2)} µs/req (difference of the medians)`);
